// The node-to-node `distcache.peer.v1.PeerService` over Connect: every call is
// handed to the named group's peerHandler (answered on this node, never
// forwarded), with stamps and failure lists converted by peer-wire.ts.
import { Code, ConnectError, type ConnectRouter, type HandlerContext } from "@connectrpc/connect";
import { InvalidKeyError, NotFoundError } from "@distcache/core";
import { PEER_HEADER } from "../auth/peer-token.js";
import { errorMessage } from "../error-message.js";
import { FetchOutcome, PeerService } from "../gen/distcache/peer/v1/peer_pb.js";
import { failuresToWire, fromWire, toWire } from "../peer-wire.js";
import { FetchManyRun, toResultInit } from "./fetch-many-run.js";
import type { ServiceContext } from "./host.js";
import { storeMany } from "./store-many-run.js";
import {
  checkPeerKey,
  checkValue,
  noteSender,
  peerGroup,
  rethrowIfCancelled,
} from "./validation.js";

/**
 * The signal a fan-out runs under: the call's own, cut a margin before the
 * caller's deadline, so the owner answers in time and names a slow member in
 * `failed` instead of the caller giving up on the owner.
 */
function relayBudget(context: HandlerContext): AbortSignal {
  const left = context.timeoutMs();
  if (left === undefined) return context.signal;
  const budget = Math.max(0, left - Math.min(RELAY_MARGIN_MS, left / 4));
  return AbortSignal.any([context.signal, AbortSignal.timeout(budget)]);
}

/** Kept free before the caller's deadline for the owner's answer to travel back. */
const RELAY_MARGIN_MS = 200;

/** Registers `distcache.peer.v1.PeerService` on `router`, serving `services.host`'s groups. */
export function registerPeerService(router: ConnectRouter, services: ServiceContext): void {
  const { host, limits, received } = services;
  router.service(PeerService, {
    async fetch(request, context) {
      received.fetch++;
      noteSender(services, request.sender, context.requestHeader.get(PEER_HEADER));
      const group = peerGroup(host, request.group);
      checkPeerKey(request.key, limits);
      try {
        const found = await group.peerHandler.get(request.key, {
          cacheOnly: request.cacheOnly,
          signal: context.signal,
        });
        if (found === undefined) return { outcome: FetchOutcome.NOT_CACHED };
        return { outcome: FetchOutcome.FOUND, data: found.value, stamp: toWire(found.stamp) };
      } catch (error) {
        rethrowIfCancelled(error, context);
        if (error instanceof InvalidKeyError) {
          throw new ConnectError(error.message, Code.InvalidArgument);
        }
        const outcome =
          error instanceof NotFoundError ? FetchOutcome.NOT_FOUND : FetchOutcome.LOAD_FAILED;
        return { outcome, error: errorMessage(error) };
      }
    },

    async *fetchMany(request, context) {
      let wake: (() => void) | undefined;
      const peer = context.requestHeader.get(PEER_HEADER);
      const run = new FetchManyRun(
        services,
        request,
        peer,
        () => context.signal,
        () => wake?.(),
      );
      while (!run.finished) {
        if (!run.pending) {
          await new Promise<void>((resolve) => {
            wake = resolve;
          });
          wake = undefined;
        }
        // The caller left (or its deadline passed): loads it asked for were
        // released with it, and nobody reads what is left.
        if (context.signal.aborted) throw new ConnectError("the caller left", Code.Canceled);
        yield { results: run.take().map(toResultInit) };
      }
    },

    async store(request, context) {
      received.store++;
      const from = noteSender(services, request.sender, context.requestHeader.get(PEER_HEADER));
      const group = peerGroup(host, request.group);
      checkPeerKey(request.key, limits);
      checkValue(request.data, limits);
      const { failed, refused, ahead } = await group.peerHandler.store(request.key, request.data, {
        from,
        replicate: request.replicate,
        stamp: fromWire(request.stamp),
        write: request.write,
      });
      return { failed: failuresToWire(failed), refused: refused === true, ahead: toWire(ahead) };
    },

    async storeMany(request, context) {
      const peer = context.requestHeader.get(PEER_HEADER);
      return { ahead: toWire(await storeMany(services, request, peer)) };
    },

    async invalidate(request, context) {
      received.invalidate++;
      const from = noteSender(services, request.sender, context.requestHeader.get(PEER_HEADER));
      const group = peerGroup(host, request.group);
      checkPeerKey(request.key, limits);
      // As the owner (fan_out) this answers with its stamp and the members it
      // could not reach; otherwise with neither.
      const { stamp, failed, ahead } = await group.peerHandler.remove(request.key, {
        from,
        stamp: fromWire(request.stamp),
        fanOut: request.fanOut,
        signal: request.fanOut ? relayBudget(context) : context.signal,
      });
      return { stamp: toWire(stamp), failed: failuresToWire(failed), ahead: toWire(ahead) };
    },

    async introduce(request, context) {
      received.introduce++;
      const from = noteSender(services, request.sender, context.requestHeader.get(PEER_HEADER));
      return { epochSeen: BigInt(host.epochSeen(from)) };
    },
  });
}
