// A group's part on this node: its cache, its two singleflights, loads with
// this node's getter (and the replication push after one), the write clock and
// stale guard, fill tokens and counters. Nothing here asks another node for a value.
import {
  BYTE_ENTRY_OVERHEAD_BYTES,
  ByteLRU,
  chargedValueBytes,
  utf8ByteLength,
} from "@distcache/lru";
import { SingleFlight } from "@distcache/singleflight";
import { ByteView, describe } from "./byteview.js";
import { type FillToken, FillTokens } from "./fill-tokens.js";
import { GroupCounters, type GroupStats } from "./group-stats.js";
import { LoadLimiter, withLoadSlots } from "./load-limiter.js";
import type { PeerClient, PeerPicker } from "./peers.js";
import type { NotCached, PropagationResult } from "./propagation.js";
import { Incarnation, StaleGuard, type Stamp, WriteClock } from "./stamps.js";

/** What a getter may return: bytes, or a string stored as UTF-8. */
export type GetterResult = Uint8Array | string;

/** Passed to a getter with each key. */
export interface GetterContext {
  /**
   * Aborts when every caller waiting on this load has gone (their deadlines
   * passed or they were cancelled) or the group's load timeout passed. Pass it
   * to the data source so abandoned work stops.
   */
  readonly signal: AbortSignal;
}

/**
 * Loads a key from the source of truth on a miss. Throw {@link NotFoundError}
 * when the source has no such key. Errors are returned to the callers and
 * never cached.
 */
export type Getter = (key: string, context: GetterContext) => Promise<GetterResult> | GetterResult;

/** Options for {@link newGroup} and the {@link Group} constructor. */
export interface GroupOptions {
  /** Replace a registered group of the same name instead of throwing. Default `false`. */
  replace?: boolean;
  /**
   * Milliseconds a getter call may take before it is abandoned: its signal
   * aborts and every waiter gets a `TimeoutError`. Default `10_000`; `0`
   * disables the bound (a getter that never settles then wedges its key).
   */
  loadTimeout?: number;
  /** Time to live of cached entries in milliseconds. Default `0`: no expiry. */
  ttl?: number;
  /**
   * Whether the key's owner waits for its replicas to take a freshly loaded
   * value before answering. Default `false`: it answers at once, and the
   * pushes leave in the same event-loop turn's `StoreMany` batch to each
   * replica (a caller may see a value a moment before the replicas hold it;
   * if the owner dies in that moment, the next read loads the key again).
   * `true`: a value a caller has seen is on every reachable replica, at the
   * cost of a peer round trip on every cold load (see docs/architecture.md).
   */
  awaitReplicas?: boolean;
  /**
   * Getter calls of this group running at once on this node (origin
   * protection; distinct keys, since a key loads once at a time). Loads past
   * it wait in a queue, in order, as long as their callers wait (deadline,
   * cancellation, `loadTimeout`). Default `64`: a database connection pool's
   * worth. `0`: no bound.
   */
  maxLoadsInFlight?: number;
  /**
   * Loads that may wait for a slot of `maxLoadsInFlight`; one more fails at
   * once with {@link LoadsOverloadedError} (a Get answers it as an error; a
   * transport maps it to RESOURCE_EXHAUSTED). Default `1_024`. `0`: none wait.
   */
  maxLoadsQueued?: number;
}

/** Who announced a write of a key, and its stamp. */
export interface Announced {
  readonly from: string;
  readonly stamp: Stamp;
}

const DEFAULT_LOAD_TIMEOUT_MS = 10_000;
const DEFAULT_MAX_LOADS_IN_FLIGHT = 64;
const DEFAULT_MAX_LOADS_QUEUED = 1_024;

/** A group's state on this node; shared by its application API and its peer handler. */
export class LocalGroup {
  /** Values in slab pages; a hit hands out a view of its page (see ByteView.adoptRange). */
  readonly cache: ByteLRU<ByteView>;
  /** Loads on behalf of a caller of `get`: may ask peers. */
  readonly readFlight = new SingleFlight<ByteView>();
  /** Loads with this node's getter: never asks a peer, so peers never wait on each other. */
  readonly loadFlight: SingleFlight<ByteView>;
  readonly fills = new FillTokens();
  /**
   * Orders this node's writes; its stamp goes out with every copy this node
   * hands out. Its epoch is the cluster's incarnation of this node
   * (`PeerPicker.epoch`), or this group's own until peers are registered.
   */
  readonly clock = new WriteClock(() => this.peers?.epoch?.() ?? this.ownEpoch.current);
  private readonly ownEpoch = new Incarnation();
  /** The latest writes owners announced, so late copies older than them are refused. */
  readonly guard = new StaleGuard();
  readonly counters = new GroupCounters();
  /** The cluster, once registered. */
  peers: PeerPicker | undefined;
  /** See {@link GroupOptions.awaitReplicas}. */
  private readonly awaitReplicas: boolean;
  /** Counts a push a replica did not take (one function for every push left to run on its own). */
  private readonly pushFailed = (): void => {
    this.counters.replicationFailures++;
  };
  /** This group's bound on getter calls, then any shared (node-wide) ones: a call holds a slot of each. */
  readonly loadLimiters: LoadLimiter[];

  constructor(
    readonly name: string,
    cacheBytes: number,
    private readonly getter: Getter,
    options: GroupOptions,
  ) {
    this.cache = new ByteLRU<ByteView>({
      maxBytes: cacheBytes,
      view: ByteView.adoptRange,
      ttl: options.ttl ?? 0,
    });
    this.loadFlight = new SingleFlight<ByteView>({
      timeout: options.loadTimeout ?? DEFAULT_LOAD_TIMEOUT_MS,
    });
    this.awaitReplicas = options.awaitReplicas ?? false;
    this.loadLimiters = [
      new LoadLimiter(
        options.maxLoadsInFlight ?? DEFAULT_MAX_LOADS_IN_FLIGHT,
        options.maxLoadsQueued ?? DEFAULT_MAX_LOADS_QUEUED,
        `group "${name}"`,
      ),
    ];
  }

  /** The value of `key` with this node's getter (one load per key at a time). */
  load(key: string, signal?: AbortSignal): Promise<ByteView> {
    // Refused before a flight (its controller and timer) is set up, when no flight can start.
    if (!this.loadFlight.has(key)) {
      for (const limiter of this.loadLimiters) {
        const refused = limiter.refusal();
        if (refused !== undefined) return Promise.reject(refused);
      }
    }
    return this.loadFlight.do(key, (loadSignal) => this.loadLocally(key, loadSignal), { signal });
  }

  /**
   * Calls the getter, caches the value unless the key was invalidated
   * meanwhile, and copies it to the key's replicas (awaited only with
   * {@link GroupOptions.awaitReplicas}).
   */
  async loadLocally(key: string, signal: AbortSignal): Promise<ByteView> {
    const token = this.fills.begin(key);
    // Replicas refuse this copy if a write of the key reaches them stamped later.
    const stamp = this.clock.now();
    try {
      this.counters.localLoads++;
      let result: unknown;
      const started = performance.now();
      try {
        // Origin protection: a slot of each limiter (a queued load is still one flight per key).
        result = await withLoadSlots(this.loadLimiters, signal, () => this.getter(key, { signal }));
      } catch (error) {
        this.counters.localLoadErrors++;
        throw error;
      } finally {
        this.counters.loadTimes.observe((performance.now() - started) / 1_000);
      }
      if (!(result instanceof Uint8Array) && typeof result !== "string") {
        this.counters.localLoadErrors++;
        throw new TypeError(
          `getter of group "${this.name}" returned ${describe(result)} for key "${key}"; expected a Uint8Array or a string`,
        );
      }
      const view = ByteView.from(result);
      const replicas = this.peers?.placement(key).replicas;
      if (this.fill(key, view, token) && replicas !== undefined && replicas.length > 0) {
        if (this.awaitReplicas) {
          // Replicas hold the value before any caller sees it, so losing this node loses nothing.
          const pushes = await Promise.allSettled(
            replicas.map((peer) => this.push(peer, key, view, stamp, false)),
          );
          for (const push of pushes)
            if (push.status === "rejected") this.counters.replicationFailures++;
        } else {
          // Queued in this turn's batch to each replica; the answer does not wait for it.
          // The stamp still orders it: a replica refuses it after a later write of the key.
          for (const peer of replicas)
            this.push(peer, key, view, stamp, false).then(undefined, this.pushFailed);
        }
      }
      return view;
    } finally {
      this.fills.end(key, token);
    }
  }

  /** Copies `view` to `peer` as the key's owner, stamped `stamp`. */
  push(
    peer: PeerClient,
    key: string,
    view: ByteView,
    stamp: Stamp,
    write: boolean,
  ): Promise<PropagationResult | undefined> {
    return peer.store(this.name, key, ByteView.unwrap(view), { replicate: false, stamp, write });
  }

  /**
   * Replaces this node's copy of `key` with `view` (a write).
   * @returns whether the cache kept it (`false`: over the budget, see {@link notCached}).
   */
  storeView(key: string, view: ByteView): boolean {
    this.removeLocal(key);
    return this.cache.set(key, ByteView.unwrap(view));
  }

  /**
   * Why this node's cache cannot keep `view` under `key` (its entry alone is
   * over the budget, which the cache refuses), or `undefined` when it can.
   * The charge is the cache's own (`ByteLRU.set`).
   */
  notCached(key: string, view: ByteView): NotCached | undefined {
    const budget = this.cache.maxBytes;
    if (budget === 0) return undefined;
    const valueBytes = view.length;
    const entryBytes =
      utf8ByteLength(key) + chargedValueBytes(valueBytes) + BYTE_ENTRY_OVERHEAD_BYTES;
    if (entryBytes <= budget) return undefined;
    return {
      valueBytes,
      entryBytes,
      budget,
      message: `value of ${valueBytes} bytes not cached: over the group's ${budget}-byte budget (the entry is charged ${entryBytes} bytes with key and overhead)`,
    };
  }

  /** Caches `view` unless the key was invalidated since `token` began. */
  fill(key: string, view: ByteView, token: FillToken): boolean {
    if (token.stale) return false;
    return this.cache.set(key, ByteView.unwrap(view));
  }

  /**
   * Whether a copy `from` read at `stamp` may be kept (no later write of the
   * key announced by `from`); a refused copy is counted.
   */
  admits(key: string, from: string, stamp: Stamp | undefined): boolean {
    if (stamp === undefined || this.guard.admits(key, from, stamp)) return true;
    this.counters.staleCopiesRefused++;
    return false;
  }

  /**
   * Drops this node's copy of `key` and voids loads of it in flight here.
   * `announced` is the owner's stamp of the write, when the owner sent it:
   * copies of the key it handed out before are refused from now on.
   *
   * @returns when the owner's stamp is behind what this node has seen from it
   *   (see `StaleGuard.record`), the stamp the key is now held at, for the
   *   owner to move past; otherwise `undefined`.
   */
  removeLocal(key: string, announced?: Announced): Stamp | undefined {
    this.clock.tick();
    const ahead =
      announced === undefined ? undefined : this.guard.record(key, announced.from, announced.stamp);
    this.cache.delete(key);
    this.fills.invalidate(key);
    // Callers arriving from now on must not join a load that started before.
    this.readFlight.forget(key);
    this.loadFlight.forget(key);
    return ahead;
  }

  /** This group's load limiter's gauges. */
  private loadLimits(): Pick<GroupStats, "getterCallsInFlight" | "loadsQueued" | "loadsRejected"> {
    const own = this.loadLimiters[0]!.stats();
    return {
      getterCallsInFlight: own.inFlight,
      loadsQueued: own.queued,
      loadsRejected: own.rejected,
    };
  }

  /** A snapshot of the counters and gauges. */
  stats(): GroupStats {
    const cache = this.cache.stats();
    const { loadTimes, ...counts } = this.counters;
    return {
      ...counts,
      loadSeconds: loadTimes.snapshot(),
      loadsInFlight: this.readFlight.size + this.loadFlight.size,
      ...this.loadLimits(),
      evictions: cache.evictions,
      bytes: cache.bytes,
      items: cache.items,
    };
  }
}
