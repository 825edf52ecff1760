// A group's counters on this node, and the snapshot `Group.stats()` returns.

/**
 * Upper bounds, in seconds, of the getter-duration buckets of
 * {@link GroupStats.loadSeconds}: Prometheus's default buckets.
 */
export const LOAD_SECONDS_BUCKETS: readonly number[] = Object.freeze([
  0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
]);

/** How long this node's getter calls took, in the fixed buckets of {@link LOAD_SECONDS_BUCKETS}. */
export interface LoadSeconds {
  /** Calls per bucket, not cumulative: `counts[i]` took at most `LOAD_SECONDS_BUCKETS[i]` s and more than the bound before; the last entry counts the slower ones. */
  readonly counts: readonly number[];
  /** Seconds all of them took together. */
  readonly sum: number;
  /** Calls timed (ended, with a value or an error). */
  readonly count: number;
}

/** Counters and gauges of one group; see {@link Group.stats}. */
export interface GroupStats {
  /** `get` calls, hits and misses included. */
  gets: number;
  /** `get` calls answered from this node's cache. */
  hits: number;
  /** `get` calls that had to load (from a peer or the getter). */
  misses: number;
  /** Misses that started a load. */
  loads: number;
  /** Misses that joined a load already in flight for the same key. */
  loadsDeduped: number;
  /** Getter calls on this node. */
  localLoads: number;
  /** Getter calls on this node that failed (thrown, timed out or returned a non-bytes value). */
  localLoadErrors: number;
  /** Values fetched from another node (owner or replica). */
  peerLoads: number;
  /** Peer calls that failed at the transport (peer down, timed out). */
  peerErrors: number;
  /**
   * Copies from the owner refused because the owner had announced a later
   * write of the key (a replication push or Fetch answer that arrived after an
   * invalidation or Set it predates).
   */
  staleCopiesRefused: number;
  /** Replication pushes after a load that a replica did not take (down, timed out, breaker open). */
  replicationFailures: number;
  /** Loads in flight on this node now (reads that may ask peers, and getter calls). */
  loadsInFlight: number;
  /** Getter calls of this group running now (bounded by `maxLoadsInFlight`). */
  getterCallsInFlight: number;
  /** Loads waiting for a getter slot now (bounded by `maxLoadsQueued`). */
  loadsQueued: number;
  /** Loads refused because this group's queue was full (a shared limiter counts its own: ConnectPool stats). */
  loadsRejected: number;
  /** Entries evicted to stay within the budget. */
  evictions: number;
  /** `get` calls that rejected (invalid key, not found, load failed, timed out, cancelled). */
  getErrors: number;
  /** `get` calls that missed and then resolved with a value. */
  missesLoaded: number;
  /** Durations of this node's getter calls. */
  loadSeconds: LoadSeconds;
  /** Bytes held by this node's cache (keys + values + per-entry overhead). */
  bytes: number;
  /** Entries held by this node's cache. */
  items: number;
}

/** The counted part of {@link GroupStats}: events since the group was made. */
export type GroupCounts = Omit<
  GroupStats,
  | "loadsInFlight"
  | "getterCallsInFlight"
  | "loadsQueued"
  | "loadsRejected"
  | "evictions"
  | "bytes"
  | "items"
  | "loadSeconds"
>;

/** A group's event counters, one object shared by its read path, writes and peer handler. */
export class GroupCounters implements GroupCounts {
  gets = 0;
  hits = 0;
  misses = 0;
  loads = 0;
  loadsDeduped = 0;
  localLoads = 0;
  localLoadErrors = 0;
  peerLoads = 0;
  peerErrors = 0;
  staleCopiesRefused = 0;
  replicationFailures = 0;
  getErrors = 0;
  missesLoaded = 0;
  /** Getter durations: a fixed array of counts, so timing a load allocates nothing. */
  readonly loadTimes = new LoadTimes();
}

/** The live histogram behind {@link GroupStats.loadSeconds}. */
export class LoadTimes {
  private readonly counts = new Array<number>(LOAD_SECONDS_BUCKETS.length + 1).fill(0);
  private sum = 0;
  private count = 0;

  observe(seconds: number): void {
    let bucket = 0;
    while (bucket < LOAD_SECONDS_BUCKETS.length && seconds > LOAD_SECONDS_BUCKETS[bucket]!)
      bucket++;
    this.counts[bucket]!++;
    this.sum += seconds;
    this.count++;
  }

  snapshot(): LoadSeconds {
    return { counts: [...this.counts], sum: this.sum, count: this.count };
  }
}
