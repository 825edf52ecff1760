import { Code, ConnectError, type ConnectRouter, type HandlerContext } from "@connectrpc/connect";
import {
  ByteView,
  type Group,
  InvalidKeyError,
  NotFoundError,
  PropagationError,
} from "@distcache/core";
import { CacheService } from "./gen/distcache/cache_pb.js";
import { FetchOutcome, PeerService, type Sender } from "./gen/distcache/peer/v1/peer_pb.js";
import { fromWire, toWire } from "./peer-client.js";

/** Limits and switches the services enforce on every request. */
export interface ServiceLimits {
  /** Longest key in UTF-8 bytes; longer is INVALID_ARGUMENT. */
  readonly maxKeyBytes: number;
  /** Largest value a Set or Store may carry; larger is INVALID_ARGUMENT. */
  readonly maxValueBytes: number;
  /** Whether clients may call CacheService.Set. */
  readonly allowClientSet: boolean;
}

/** Counters of peer requests this node has served. */
export interface PeerRequestCounts {
  fetch: number;
  store: number;
  invalidate: number;
  /** Peer requests whose sender saw another membership than this node. */
  membershipMismatches: number;
}

/** What the services need from their pool. */
export interface ServiceHost {
  readonly limits: ServiceLimits;
  readonly received: PeerRequestCounts;
  membershipVersion(): bigint;
  /** The group named `name` on this node. */
  group(name: string): Group | undefined;
}

const encoder = new TextEncoder();

function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** Validates a key that came over the wire; throws INVALID_ARGUMENT past the limit. */
function checkKey(key: string, limits: ServiceLimits): void {
  // A UTF-16 length within a third of the limit cannot exceed it in UTF-8.
  if (key.length * 3 > limits.maxKeyBytes && encoder.encode(key).byteLength > limits.maxKeyBytes) {
    throw new ConnectError(`key is longer than ${limits.maxKeyBytes} bytes`, Code.InvalidArgument);
  }
}

function checkValue(data: Uint8Array, limits: ServiceLimits): void {
  if (data.byteLength > limits.maxValueBytes) {
    throw new ConnectError(
      `value of ${data.byteLength} bytes is over the ${limits.maxValueBytes}-byte limit`,
      Code.InvalidArgument,
    );
  }
}

/** Re-throws an error caused by the caller going away; other errors are answered in-band. */
function rethrowIfCancelled(error: unknown, context: HandlerContext): void {
  if (context.signal.aborted) throw ConnectError.from(error, Code.Canceled);
}

/** The client-facing, reference-compatible `distcache.CacheService`. */
export function registerCacheService(router: ConnectRouter, host: ServiceHost): void {
  const { limits } = host;
  router.service(CacheService, {
    async get(request, context) {
      const group = host.group(request.group);
      if (group === undefined) return { found: false, err: `no such group: ${request.group}` };
      if (request.key === "") return { found: false, err: "key is required" };
      checkKey(request.key, limits);
      try {
        const view = await group.get(request.key, { signal: context.signal });
        return { data: ByteView.unwrap(view), found: true };
      } catch (error) {
        rethrowIfCancelled(error, context);
        return { found: false, err: message(error) };
      }
    },

    async set(request, context) {
      if (!limits.allowClientSet) {
        throw new ConnectError("Set is disabled on this node", Code.PermissionDenied);
      }
      const group = host.group(request.group);
      if (group === undefined) return { success: false, err: `no such group: ${request.group}` };
      if (request.key === "") return { success: false, err: "key is required" };
      checkKey(request.key, limits);
      checkValue(request.data, limits);
      return propagate(
        () => group.set(request.key, request.data, { signal: context.signal }),
        context,
      );
    },

    async delete(request, context) {
      const group = host.group(request.group);
      if (group === undefined) return { success: false, err: `no such group: ${request.group}` };
      if (request.key === "") return { success: false, err: "key is required" };
      checkKey(request.key, limits);
      return propagate(() => group.delete(request.key, { signal: context.signal }), context);
    },
  });
}

async function propagate(
  operation: () => ReturnType<Group["delete"]>,
  context: HandlerContext,
): Promise<{ success: boolean; err: string }> {
  try {
    const { failed } = await operation();
    const err = failed.map((f) => `${f.peer}: ${f.reason}`).join("; ");
    return { success: true, err: err === "" ? "" : `not acknowledged by ${err}` };
  } catch (error) {
    rethrowIfCancelled(error, context);
    if (error instanceof PropagationError || error instanceof InvalidKeyError) {
      return { success: false, err: error.message };
    }
    throw error;
  }
}

/** Peers never send an empty key; one that does is refused like an oversized one. */
function checkPeerKey(key: string, limits: ServiceLimits): void {
  if (key === "") throw new ConnectError("key is required", Code.InvalidArgument);
  checkKey(key, limits);
}

/** Looks up the group a peer request names; a peer naming an unknown group is misconfigured. */
function peerGroup(host: ServiceHost, name: string): Group {
  const group = host.group(name);
  if (group === undefined)
    throw new ConnectError(`no such group: ${name}`, Code.FailedPrecondition);
  return group;
}

/** `distcache.peer.v1.PeerService`: answered locally, never forwarded. */
export function registerPeerService(router: ConnectRouter, host: ServiceHost): void {
  const { limits, received } = host;
  const noteSender = (sender: Sender | undefined): string => {
    if (sender === undefined) {
      throw new ConnectError("peer request without a sender", Code.InvalidArgument);
    }
    if (sender.membershipVersion !== host.membershipVersion()) received.membershipMismatches++;
    return sender.address;
  };
  router.service(PeerService, {
    async fetch(request, context) {
      received.fetch++;
      noteSender(request.sender);
      const group = peerGroup(host, request.group);
      checkPeerKey(request.key, limits);
      try {
        // Read before the value: a write applied after it gets a later stamp.
        const stamp = toWire(group.writeStamp());
        const view = await group.getLocal(request.key, {
          cacheOnly: request.cacheOnly,
          signal: context.signal,
        });
        if (view === undefined) return { outcome: FetchOutcome.NOT_CACHED };
        return { outcome: FetchOutcome.FOUND, data: ByteView.unwrap(view), stamp };
      } catch (error) {
        rethrowIfCancelled(error, context);
        if (error instanceof InvalidKeyError)
          throw new ConnectError(error.message, Code.InvalidArgument);
        const outcome =
          error instanceof NotFoundError ? FetchOutcome.NOT_FOUND : FetchOutcome.LOAD_FAILED;
        return { outcome, error: message(error) };
      }
    },

    async store(request) {
      received.store++;
      const from = noteSender(request.sender);
      const group = peerGroup(host, request.group);
      checkPeerKey(request.key, limits);
      checkValue(request.data, limits);
      const { failed } = await group.storeLocal(request.key, request.data, {
        replicate: request.replicate,
        from,
        stamp: fromWire(request.stamp),
        write: request.write,
      });
      return { failed: failed.map((f) => ({ address: f.peer, reason: f.reason })) };
    },

    async invalidate(request, context) {
      received.invalidate++;
      const from = noteSender(request.sender);
      const group = peerGroup(host, request.group);
      checkPeerKey(request.key, limits);
      if (request.fanOut) {
        const { stamp, failed } = await group.invalidateAsOwner(request.key, {
          except: from,
          signal: context.signal,
        });
        return {
          stamp: toWire(stamp),
          failed: failed.map((f) => ({ address: f.peer, reason: f.reason })),
        };
      }
      const stamp = fromWire(request.stamp);
      group.removeLocal(request.key, stamp === undefined ? undefined : { from, stamp });
      return {};
    },
  });
}
