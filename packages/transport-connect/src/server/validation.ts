// What the services check on every request before serving it (keys and
// values against the limits, a peer request's sender and group), and how they
// turn an error into an answer.
import { Code, ConnectError, type HandlerContext } from "@connectrpc/connect";
import type { Group } from "@distcache/core";
import type { SenderFields } from "../grpc/peer-codec.js";
import type { ServiceContext, ServiceHost, ServiceLimits } from "./host.js";

/** Most keys one `FetchMany` may ask; more is INVALID_ARGUMENT (see peer.proto). */
export const FETCH_MANY_MAX_KEYS = 1_024;
/** Most items one `StoreMany` may carry; more is INVALID_ARGUMENT (see peer.proto). */
export const STORE_MANY_MAX_ITEMS = 1_024;
/** Longest `Sender.address` a peer may send, in UTF-8 bytes; longer is INVALID_ARGUMENT. */
export const MAX_SENDER_ADDRESS_BYTES = 256;
/** Longest group name a peer request may name, in UTF-8 bytes; longer is INVALID_ARGUMENT. */
export const MAX_PEER_GROUP_BYTES = 256;

const encoder = new TextEncoder();

/** Whether `text` is longer than `limit` bytes in UTF-8. */
function utf8Longer(text: string, limit: number): boolean {
  // Every UTF-16 unit is at least one UTF-8 byte, and at most three.
  if (text.length > limit) return true;
  return text.length * 3 > limit && encoder.encode(text).byteLength > limit;
}

/** Validates a key that came over the wire; throws INVALID_ARGUMENT past the limit. */
export function checkKey(key: string, limits: ServiceLimits): void {
  if (utf8Longer(key, limits.maxKeyBytes)) {
    throw new ConnectError(`key is longer than ${limits.maxKeyBytes} bytes`, Code.InvalidArgument);
  }
}

/** Validates a value that came over the wire; throws INVALID_ARGUMENT past the limit. */
export function checkValue(data: Uint8Array, limits: ServiceLimits): void {
  if (data.byteLength > limits.maxValueBytes) {
    throw new ConnectError(
      `value of ${data.byteLength} bytes is over the ${limits.maxValueBytes}-byte limit`,
      Code.InvalidArgument,
    );
  }
}

/** Peers never send an empty key; one that does is refused like an oversized one. */
export function checkPeerKey(key: string, limits: ServiceLimits): void {
  if (key === "") throw new ConnectError("key is required", Code.InvalidArgument);
  checkKey(key, limits);
}

/** Looks up the group a peer request names; a peer naming an unknown group is misconfigured. */
export function peerGroup(host: ServiceHost, name: string): Group {
  if (utf8Longer(name, MAX_PEER_GROUP_BYTES)) {
    throw new ConnectError(
      `group name is longer than ${MAX_PEER_GROUP_BYTES} bytes`,
      Code.InvalidArgument,
    );
  }
  const group = host.group(name);
  if (group === undefined) {
    throw new ConnectError(`no such group: ${name}`, Code.FailedPrecondition);
  }
  return group;
}

/**
 * Checks a peer request's sender and notes it: the host hears from it, and a
 * sender on another membership is counted. Returns its address.
 * `peerHeader` is the request's `distcache-peer` header (see peer-identity.ts).
 * @throws ConnectError INVALID_ARGUMENT without a sender; PERMISSION_DENIED
 *   for a sender that is not a member or not the authenticated peer.
 */
export function noteSender(
  services: ServiceContext,
  sender: SenderFields | undefined,
  peerHeader: string | null | undefined,
): string {
  if (sender === undefined) {
    throw new ConnectError("peer request without a sender", Code.InvalidArgument);
  }
  // Kept per key by the stale guard: bounded, so no request can grow it by more.
  if (sender.address === "" || utf8Longer(sender.address, MAX_SENDER_ADDRESS_BYTES)) {
    throw new ConnectError(
      `sender address must be 1 to ${MAX_SENDER_ADDRESS_BYTES} bytes`,
      Code.InvalidArgument,
    );
  }
  const { host } = services;
  if (sender.membershipVersion !== host.membershipVersion()) {
    services.received.membershipMismatches++;
  }
  services.identity.checkSender(sender.address, peerHeader);
  host.heardFrom(sender.address);
  return sender.address;
}

/** Re-throws an error caused by the caller going away; other errors are answered in-band. */
export function rethrowIfCancelled(error: unknown, context: HandlerContext): void {
  if (context.signal.aborted) throw ConnectError.from(error, Code.Canceled);
}
