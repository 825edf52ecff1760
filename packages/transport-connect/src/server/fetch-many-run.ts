// One `PeerService/FetchMany` being served: the checks, the per-key lookups
// and the queue of results. Shared by the Connect handler (peer-service.ts)
// and the gRPC fast path (fast-path/fetch-many.ts), so both answer alike.
import type { MessageInitShape } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { NotFoundError, type PeerGetRequest, type PeerValue } from "@distcache/core";
import { errorMessage } from "../error-message.js";
import { FetchOutcome, type FetchResultSchema } from "../gen/distcache/peer/v1/peer_pb.js";
import type { FetchManyRequestFields, FetchResultFields } from "../grpc/peer-codec.js";
import { toWire } from "../peer-wire.js";
import type { ServiceContext } from "./host.js";
import { checkPeerKey, FETCH_MANY_MAX_KEYS, noteSender, peerGroup } from "./validation.js";

/**
 * Value bytes past which a `FetchMany` message carries no further result:
 * results that complete together share a message up to about this size (a
 * larger value goes in a message of its own).
 */
const FETCH_MANY_MESSAGE_BYTES = 1 << 20;

const CACHE_ONLY: PeerGetRequest = Object.freeze({ cacheOnly: true });

/** One key's result of a `FetchMany` as Connect's handler yields it. */
export type FetchResultInit = MessageInitShape<typeof FetchResultSchema>;

/** `result` as Connect's handler yields it (the fast path encodes {@link FetchResultFields} itself). */
export function toResultInit(result: FetchResultFields): FetchResultInit {
  return { ...result, stamp: toWire(result.stamp) };
}

/**
 * One `FetchMany` being served: the request is checked, then every key is
 * served as `Fetch` serves it, and results queue as they settle, so hits
 * (settled at once) leave together and a key that loads does not hold them
 * back.
 */
export class FetchManyRun {
  private readonly ready: FetchResultFields[] = [];
  private unsettled = 0;
  /** Where this run's keys are counted in flight, each until its result settles. */
  private readonly admission: ServiceContext["admission"];

  /**
   * Counts the call, checks it and starts every key.
   *
   * @param peerHeader the call's `distcache-peer` header (see noteSender).
   * @param signal the signal that aborts the loads this call waits on (the
   *   caller left or its deadline passed). Asked for only when a key loads,
   *   so a call whose keys are all hits makes none.
   * @param onReady called when results are queued, never during this
   *   constructor: once (in a microtask) for the keys that were hits, then
   *   once per key as its result settles.
   * @throws ConnectError INVALID_ARGUMENT (no sender, no keys, too many keys,
   *   an empty or oversized key: nothing is served), FAILED_PRECONDITION
   *   (unknown group) or RESOURCE_EXHAUSTED (its keys would pass the
   *   node's in-flight limit).
   */
  constructor(
    services: ServiceContext,
    request: FetchManyRequestFields,
    peerHeader: string | null | undefined,
    signal: () => AbortSignal,
    private readonly onReady: () => void,
  ) {
    const { limits, received } = services;
    received.fetchMany++;
    noteSender(services, request.sender, peerHeader);
    const group = peerGroup(services.host, request.group);
    const { keys } = request;
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
    // A repeated key is served once and answered once, at its first index:
    // one 5 KB request naming a 1 MB key 1,024 times must not queue 1 GB of answers.
    const first = new Map<string, number>();
    for (let index = 0; index < keys.length; index++) {
      if (!first.has(keys[index]!)) first.set(keys[index]!, index);
    }
    // Each distinct key is a lookup that may load: it counts against the
    // in-flight budget until it settles (settle releases one each).
    const refused = services.admission?.chargeKeys(first.size);
    if (refused !== undefined) throw new ConnectError(refused, Code.ResourceExhausted);
    this.admission = services.admission;
    received.fetchManyKeys += keys.length;
    // A cache-only lookup never loads, so it needs no signal.
    const asked: PeerGetRequest = request.cacheOnly
      ? CACHE_ONLY
      : {
          cacheOnly: false,
          get signal() {
            return signal();
          },
        };
    const handler = group.peerHandler;
    let hits = 0;
    for (const [key, index] of first) {
      // A hit is queued at once, with no promise per key: most keys of a batch are hits.
      const cached = handler.getCached?.(key);
      if (cached !== undefined) {
        this.ready.push({
          index,
          outcome: FetchOutcome.FOUND,
          data: cached.value,
          stamp: cached.stamp,
        });
        hits++;
        continue;
      }
      handler.get(key, asked).then(
        (found) => this.found(index, found),
        (error: unknown) =>
          this.settle({
            index,
            outcome:
              error instanceof NotFoundError ? FetchOutcome.NOT_FOUND : FetchOutcome.LOAD_FAILED,
            error: errorMessage(error),
          }),
      );
    }
    this.unsettled = first.size - hits;
    if (hits > 0) {
      this.admission?.releaseKeys(hits);
      // As for a result that settles later: the caller registers this run first.
      queueMicrotask(onReady);
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
  take(): FetchResultFields[] {
    const ready = this.ready;
    let bytes = 0;
    let count = 0;
    while (count < ready.length && (count === 0 || bytes < FETCH_MANY_MESSAGE_BYTES)) {
      bytes += ready[count]!.data?.byteLength ?? 0;
      count++;
    }
    return ready.splice(0, count);
  }

  private found(index: number, found: PeerValue | undefined): void {
    if (found === undefined) {
      this.settle({ index, outcome: FetchOutcome.NOT_CACHED });
      return;
    }
    this.settle({ index, outcome: FetchOutcome.FOUND, data: found.value, stamp: found.stamp });
  }

  private settle(result: FetchResultFields): void {
    this.ready.push(result);
    this.unsettled--;
    this.admission?.releaseKeys(1);
    this.onReady();
  }
}
