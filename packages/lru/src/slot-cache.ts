// SlotCache, what LRU and ByteLRU share: string keys mapped to numbered slots, the recency
// list, per-slot expiry, the byte total and the counters (and their types). A subclass keeps
// the values.
/** Why an entry left the cache, as passed to `onEvicted`. */
export type EvictionReason = "evict" | "delete" | "expire" | "replace";

/** Counters and gauges of either cache; see `LRU.stats` (`ByteLRU.stats` adds to them). */
export interface LRUStats {
  /** `get` calls that found a live entry. */
  hits: number;
  /** `get` calls that found nothing (or an expired entry). */
  misses: number;
  /** Entries removed to make room. */
  evictions: number;
  /** Entries removed because their time to live had passed. */
  expirations: number;
  /** Bytes charged for the entries held now. */
  bytes: number;
  /** Entries held now. */
  items: number;
}

const INITIAL_CAPACITY = 16;

/** Options both caches validate the same way. */
export interface SlotCacheOptions {
  maxBytes: number;
  ttl?: number | undefined;
  now?: (() => number) | undefined;
}

/**
 * The slot machinery under both caches. Entries live in parallel arrays
 * indexed by slot number and are chained in a doubly linked list through two
 * typed arrays, so a hit costs one `Map.get` and four integer writes — no
 * object per entry, no allocation and no `Map` re-insertion. A subclass
 * decides how a slot's value is read, released and charged, and how `set`
 * places a new one.
 */
export abstract class SlotCache<V> {
  /** The byte budget this cache was made with (`0`: unbounded). */
  readonly maxBytes: number;
  protected readonly defaultTtl: number;
  protected readonly now: () => number;

  protected readonly index = new Map<string, number>();
  /** Keys per slot; sized with the typed arrays, so it grows with them and no more. */
  protected keyOf: (string | undefined)[] = new Array(INITIAL_CAPACITY);
  /** List links per slot; slot 0 is the sentinel: `next[0]` oldest, `prev[0]` newest. */
  protected next = new Uint32Array(INITIAL_CAPACITY);
  protected prev = new Uint32Array(INITIAL_CAPACITY);
  /** Absolute expiry per slot, 0 for never; allocated on the first entry with a ttl. */
  protected expires: Float64Array | undefined;
  /** Freed slots, chained through `next`; 0 ends the chain. */
  private freeSlot = 0;
  protected capacity = INITIAL_CAPACITY;
  private used = 1; // slot 0 is the sentinel

  protected totalBytes = 0;
  protected hitCount = 0;
  protected missCount = 0;
  private evictionCount = 0;
  private expirationCount = 0;

  /** @param name the class name, for error messages. */
  constructor(name: string, options: SlotCacheOptions) {
    const { maxBytes } = options;
    if (!Number.isFinite(maxBytes) || maxBytes < 0) {
      throw new RangeError(
        `${name}: maxBytes must be a finite number >= 0 (0 = unbounded), got ${maxBytes}`,
      );
    }
    const ttl = options.ttl ?? 0;
    if (!Number.isFinite(ttl) || ttl < 0) {
      throw new RangeError(`${name}: ttl must be a finite number >= 0, got ${ttl}`);
    }
    this.maxBytes = maxBytes;
    this.defaultTtl = ttl;
    this.now = options.now ?? Date.now;
  }

  /** The value held in slot `i`. */
  protected abstract read(i: number): V;
  /**
   * Lets go of slot `i`'s value and its charge (subtract it from
   * `totalBytes`). Returns what {@link removed} needs to report it.
   */
  protected abstract release(i: number): unknown;
  /** Reports a removal (to `onEvicted`), once the slot is free again. */
  protected abstract removed(key: string, released: unknown, reason: EvictionReason): void;
  /** Grows the subclass's own per-slot arrays to `capacity` slots. */
  protected abstract growSlots(capacity: number): void;

  /** Number of entries held (expired entries not yet read count until removed). */
  get length(): number {
    return this.index.size;
  }

  /** Bytes charged for the entries held. Never more than `maxBytes` when bounded. */
  get bytes(): number {
    return this.totalBytes;
  }

  /** The value for `key`, marked most recently used; `undefined` if absent or expired. */
  get(key: string): V | undefined {
    const i = this.index.get(key);
    if (i === undefined) {
      this.missCount++;
      return undefined;
    }
    if (this.expires !== undefined && this.isStale(i)) {
      this.removeSlot(i, "expire");
      this.missCount++;
      return undefined;
    }
    if (this.prev[0] !== i) this.moveToNewest(i);
    this.hitCount++;
    return this.read(i);
  }

  /** The value for `key` without changing its recency or the hit counters. */
  peek(key: string): V | undefined {
    const i = this.liveSlot(key);
    return i === undefined ? undefined : this.read(i);
  }

  /** Whether a live entry for `key` is held, without changing its recency. */
  has(key: string): boolean {
    return this.liveSlot(key) !== undefined;
  }

  /** Removes `key`. Returns whether a live entry was removed. */
  delete(key: string): boolean {
    const i = this.liveSlot(key);
    if (i === undefined) return false;
    this.removeSlot(i, "delete");
    return true;
  }

  /** Removes every expired entry now. Returns how many were removed. */
  purgeStale(): number {
    if (this.expires === undefined) return 0;
    let removed = 0;
    for (let i = this.next[0]!; i !== 0; ) {
      const after = this.next[i]!;
      if (this.isStale(i)) {
        this.removeSlot(i, "expire");
        removed++;
      }
      i = after;
    }
    return removed;
  }

  /** Live entries from the least to the most recently used. Does not change recency. */
  *entries(): IterableIterator<[string, V]> {
    for (let i = this.next[0]!; i !== 0; i = this.next[i]!) {
      if (this.expires !== undefined && this.isStale(i)) continue;
      yield [this.keyOf[i]!, this.read(i)];
    }
  }

  /** Live keys from the least to the most recently used. */
  *keys(): IterableIterator<string> {
    for (let i = this.next[0]!; i !== 0; i = this.next[i]!) {
      if (this.expires !== undefined && this.isStale(i)) continue;
      yield this.keyOf[i]!;
    }
  }

  /** Live values from the least to the most recently used. */
  *values(): IterableIterator<V> {
    for (const [, value] of this.entries()) yield value;
  }

  [Symbol.iterator](): IterableIterator<[string, V]> {
    return this.entries();
  }

  /** The counters and gauges both caches report. */
  protected counters(): LRUStats {
    return {
      hits: this.hitCount,
      misses: this.missCount,
      evictions: this.evictionCount,
      expirations: this.expirationCount,
      bytes: this.totalBytes,
      items: this.index.size,
    };
  }

  /** The slot of `key` if it holds a live entry (an expired one is removed). */
  private liveSlot(key: string): number | undefined {
    const i = this.index.get(key);
    if (i === undefined) return undefined;
    if (this.expires !== undefined && this.isStale(i)) {
      this.removeSlot(i, "expire");
      return undefined;
    }
    return i;
  }

  /** The slot of every entry, expired ones included, oldest first (for `clear` to report them). */
  protected slotsInOrder(): number[] {
    const slots: number[] = [];
    for (let i = this.next[0]!; i !== 0; i = this.next[i]!) slots.push(i);
    return slots;
  }

  /** Forgets every slot; the subclass resets its own storage. Counters are kept. */
  protected resetSlots(): void {
    this.index.clear();
    this.keyOf = new Array(INITIAL_CAPACITY);
    this.capacity = INITIAL_CAPACITY;
    this.next = new Uint32Array(INITIAL_CAPACITY);
    this.prev = new Uint32Array(INITIAL_CAPACITY);
    this.expires = undefined;
    this.freeSlot = 0;
    this.used = 1;
    this.totalBytes = 0;
  }

  /** Sets slot `i`'s expiry from `ttl` (ms; 0 = never). */
  protected setExpiry(i: number, ttl: number): void {
    if (ttl > 0) {
      if (this.expires === undefined) this.expires = new Float64Array(this.capacity);
      this.expires[i] = this.now() + ttl;
    } else if (this.expires !== undefined) {
      this.expires[i] = 0;
    }
  }

  /** Evicts the oldest entries while the total is over `limit`. */
  protected evictDownTo(limit: number): void {
    while (this.totalBytes > limit) this.removeSlot(this.next[0]!, "evict");
  }

  protected isStale(i: number): boolean {
    const expiry = this.expires![i]!;
    return expiry !== 0 && expiry <= this.now();
  }

  protected moveToNewest(i: number): void {
    const next = this.next;
    const prev = this.prev;
    const p = prev[i]!;
    const n = next[i]!;
    next[p] = n;
    prev[n] = p;
    const newest = prev[0]!;
    next[newest] = i;
    prev[i] = newest;
    next[i] = 0;
    prev[0] = i;
  }

  /** A free slot for `key`, linked as the newest and indexed. */
  protected addSlot(key: string): number {
    let i = this.freeSlot;
    if (i !== 0) {
      this.freeSlot = this.next[i]!;
    } else {
      if (this.used === this.capacity) this.grow();
      i = this.used++;
    }
    this.keyOf[i] = key;
    this.index.set(key, i);
    const newest = this.prev[0]!;
    this.next[newest] = i;
    this.prev[i] = newest;
    this.next[i] = 0;
    this.prev[0] = i;
    return i;
  }

  protected removeSlot(i: number, reason: EvictionReason): void {
    const key = this.keyOf[i]!;
    const p = this.prev[i]!;
    const n = this.next[i]!;
    this.next[p] = n;
    this.prev[n] = p;
    this.index.delete(key);
    const released = this.release(i);
    this.keyOf[i] = undefined;
    if (this.expires !== undefined) this.expires[i] = 0;
    this.next[i] = this.freeSlot;
    this.freeSlot = i;
    if (reason === "evict") this.evictionCount++;
    else if (reason === "expire") this.expirationCount++;
    this.removed(key, released, reason);
  }

  /** Grows every per-slot array by half (at least 16 slots): less slack than doubling. */
  private grow(): void {
    const capacity = grownCapacity(this.capacity);
    this.next = grown(this.next, capacity);
    this.prev = grown(this.prev, capacity);
    const keyOf = new Array<string | undefined>(capacity);
    for (let i = 0; i < this.used; i++) keyOf[i] = this.keyOf[i];
    this.keyOf = keyOf;
    if (this.expires !== undefined) {
      const expires = new Float64Array(capacity);
      expires.set(this.expires);
      this.expires = expires;
    }
    this.growSlots(capacity);
    this.capacity = capacity;
  }
}

/** The next size of a growing array: +50%, at least +16. */
export function grownCapacity(capacity: number): number {
  return capacity + Math.max(16, capacity >>> 1);
}

/** `array` copied into a new array of `capacity` elements. */
export function grown<A extends Uint32Array | Float64Array>(array: A, capacity: number): A {
  const bigger = new (array.constructor as new (length: number) => A)(capacity);
  bigger.set(array);
  return bigger;
}
