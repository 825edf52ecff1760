import { setMaxListeners } from "node:events";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { Code, ConnectError, type ConnectRouter, type HandlerContext } from "@connectrpc/connect";
import {
  ByteView,
  type Group,
  InvalidKeyError,
  NotFoundError,
  PropagationError,
  type Stamp,
} from "@distcache/core";
import { CacheService } from "./gen/distcache/cache_pb.js";
import {
  type FetchManyRequest,
  FetchOutcome,
  type FetchResultSchema,
  PeerService,
  type Sender,
  type Stamp as WireStamp,
} from "./gen/distcache/peer/v1/peer_pb.js";
import { fromWire, toWire } from "./stamp-wire.js";

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
  /** `FetchMany` calls (batches of keys). */
  fetchMany: number;
  /** Keys asked in those calls. */
  fetchManyKeys: number;
  store: number;
  /** `StoreMany` calls (batches of replication pushes). */
  storeMany: number;
  /** Items pushed in those calls. */
  storeManyItems: number;
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
  /**
   * A peer request from `address` arrived: that member is alive and working
   * (its fetches from here are not given up while it keeps sending).
   */
  heardFrom?(address: string): void;
}

const encoder = new TextEncoder();

export function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** Validates a key that came over the wire; throws INVALID_ARGUMENT past the limit. */
export function checkKey(key: string, limits: ServiceLimits): void {
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

/** Most keys one `FetchMany` may ask; more is INVALID_ARGUMENT (see peer.proto). */
export const FETCH_MANY_MAX_KEYS = 1_024;
/** Most items one `StoreMany` may carry; more is INVALID_ARGUMENT (see peer.proto). */
export const STORE_MANY_MAX_ITEMS = 1_024;

/**
 * Value bytes past which a `FetchMany` message carries no further result:
 * results that complete together share a message up to about this size (a
 * larger value goes in a message of its own).
 */
const FETCH_MANY_MESSAGE_BYTES = 1 << 20;

/** One key's result of a `FetchMany`, as {@link FetchManyRun} hands it out. */
export type FetchResultInit = MessageInitShape<typeof FetchResultSchema>;

/**
 * One `FetchMany` being served: the request is checked, then every key is
 * served as `Fetch` serves it, and results queue as they settle, so hits
 * (settled at once) leave together and a key that loads does not hold them
 * back. Used by the Connect handler and by the gRPC fast path
 * (fetch-many-fast-path.ts), so both answer alike.
 */
export class FetchManyRun {
  private readonly ready: FetchResultInit[] = [];
  private unsettled: number;

  /**
   * Counts the call, checks it and starts every key.
   *
   * @param signal aborts the loads this call waits on (the caller left or its deadline passed).
   * @param onReady called each time a key's result is queued.
   * @throws ConnectError INVALID_ARGUMENT (no sender, no keys, too many keys,
   *   an empty or oversized key: nothing is served) or FAILED_PRECONDITION
   *   (unknown group).
   */
  constructor(
    host: ServiceHost,
    request: FetchManyRequest,
    signal: AbortSignal,
    private readonly onReady: () => void,
  ) {
    const { limits, received } = host;
    received.fetchMany++;
    noteSender(host, request.sender);
    const group = peerGroup(host, request.group);
    const { keys, cacheOnly } = request;
    if (keys.length === 0) {
      throw new ConnectError("FetchMany without keys", Code.InvalidArgument);
    }
    if (keys.length > FETCH_MANY_MAX_KEYS) {
      throw new ConnectError(
        `FetchMany of ${keys.length} keys; at most ${FETCH_MANY_MAX_KEYS}`,
        Code.InvalidArgument,
      );
    }
    // All keys are checked before any is served: a bad batch serves nothing.
    for (const key of keys) checkPeerKey(key, limits);
    received.fetchManyKeys += keys.length;
    // Every key that loads listens on the call's signal until it settles.
    setMaxListeners(keys.length + 10, signal);
    this.unsettled = keys.length;
    let lastStamp: Stamp | undefined;
    let lastWire: WireStamp | undefined;
    for (let index = 0; index < keys.length; index++) {
      // Read before the value, per key: a write applied after it gets a later stamp.
      const stamp = group.writeStamp();
      if (
        lastStamp === undefined ||
        stamp.epoch !== lastStamp.epoch ||
        stamp.seq !== lastStamp.seq
      ) {
        lastStamp = stamp;
        lastWire = toWire(stamp);
      }
      const wire = lastWire;
      group.getLocal(keys[index]!, { cacheOnly, signal }).then(
        (view) =>
          this.settle(
            view === undefined
              ? { index, outcome: FetchOutcome.NOT_CACHED }
              : { index, outcome: FetchOutcome.FOUND, data: ByteView.unwrap(view), stamp: wire },
          ),
        (error: unknown) =>
          this.settle({
            index,
            outcome:
              error instanceof NotFoundError ? FetchOutcome.NOT_FOUND : FetchOutcome.LOAD_FAILED,
            error: message(error),
          }),
      );
    }
  }

  /** Results wait to be taken. */
  get pending(): boolean {
    return this.ready.length > 0;
  }

  /** Every key's result has been taken: the call can end with status OK. */
  get finished(): boolean {
    return this.unsettled === 0 && this.ready.length === 0;
  }

  /**
   * Removes and returns the results for one message, in the order they
   * settled: all that wait, up to about {@link FETCH_MANY_MESSAGE_BYTES} of
   * values (at least one).
   */
  take(): FetchResultInit[] {
    const ready = this.ready;
    let bytes = 0;
    let count = 0;
    while (count < ready.length && (count === 0 || bytes < FETCH_MANY_MESSAGE_BYTES)) {
      bytes += ready[count]!.data?.byteLength ?? 0;
      count++;
    }
    return ready.splice(0, count);
  }

  private settle(result: FetchResultInit): void {
    this.ready.push(result);
    this.unsettled--;
    this.onReady();
  }
}

/** Counts a peer request's membership mismatch; throws INVALID_ARGUMENT without a sender. */
function noteSender(host: ServiceHost, sender: Sender | undefined): string {
  if (sender === undefined) {
    throw new ConnectError("peer request without a sender", Code.InvalidArgument);
  }
  if (sender.membershipVersion !== host.membershipVersion()) host.received.membershipMismatches++;
  host.heardFrom?.(sender.address);
  return sender.address;
}

/** `distcache.peer.v1.PeerService`: answered locally, never forwarded. */
export function registerPeerService(router: ConnectRouter, host: ServiceHost): void {
  const { limits, received } = host;
  router.service(PeerService, {
    async fetch(request, context) {
      received.fetch++;
      noteSender(host, request.sender);
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

    async *fetchMany(request, context) {
      let wake: (() => void) | undefined;
      const run = new FetchManyRun(host, request, context.signal, () => wake?.());
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
        yield { results: run.take() };
      }
    },

    async store(request) {
      received.store++;
      const from = noteSender(host, request.sender);
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

    async storeMany(request) {
      received.storeMany++;
      const from = noteSender(host, request.sender);
      const group = peerGroup(host, request.group);
      const { items } = request;
      if (items.length === 0) {
        throw new ConnectError("StoreMany without items", Code.InvalidArgument);
      }
      if (items.length > STORE_MANY_MAX_ITEMS) {
        throw new ConnectError(
          `StoreMany of ${items.length} items; at most ${STORE_MANY_MAX_ITEMS}`,
          Code.InvalidArgument,
        );
      }
      // All items are checked before any is kept: a bad batch keeps nothing.
      for (const item of items) {
        checkPeerKey(item.key, limits);
        checkValue(item.data, limits);
      }
      received.storeManyItems += items.length;
      // Started in request order (a push is kept before storeLocal first
      // awaits), so of two pushes of one key the later one stays.
      await Promise.all(
        items.map((item) =>
          group.storeLocal(item.key, item.data, {
            replicate: false,
            from,
            stamp: fromWire(item.stamp),
          }),
        ),
      );
      return {};
    },

    async invalidate(request, context) {
      received.invalidate++;
      const from = noteSender(host, request.sender);
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
