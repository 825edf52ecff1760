/**
 * A byte-bounded least-recently-used cache.
 *
 * Entries live in parallel arrays indexed by a slot number and are chained in
 * a doubly linked list through two typed arrays, so a hit costs one `Map.get`
 * and four integer writes — no allocation and no `Map` re-insertion. Slot 0 is
 * the list's sentinel: `next[0]` is the oldest entry, `prev[0]` the newest.
 */

/** Why an entry left the cache, as passed to {@link LRUOptions.onEvicted}. */
export type EvictionReason = "evict" | "delete" | "expire" | "replace";

/**
 * Bytes charged for every entry on top of its key and value: the slot in the
 * key index plus the list links, size and expiry kept per entry. It makes a
 * budget of many tiny entries mean something. Counted in {@link LRU.bytes}.
 */
export const ENTRY_OVERHEAD_BYTES = 64;

/** Options for {@link LRU}. */
export interface LRUOptions<V> {
  /**
   * Budget in bytes for all entries (key UTF-8 bytes + value bytes +
   * {@link ENTRY_OVERHEAD_BYTES} each). `0` means unbounded: nothing is ever
   * evicted for size. Required, so that "no limit" is always a decision.
   */
  maxBytes: number;
  /**
   * Size in bytes of a value. Default: `byteLength` of a `Uint8Array`, UTF-8
   * length of a string; any other value type needs this option.
   * Called once per `set`.
   */
  sizeOf?: (value: V) => number;
  /**
   * Called after an entry has left the cache, with the reason. Default: none.
   * It runs synchronously inside the call that removed the entry; it must not
   * call back into this cache.
   */
  onEvicted?: (key: string, value: V, reason: EvictionReason) => void;
  /**
   * Default time to live in milliseconds for entries set without their own
   * `ttl`. Default `0`: entries never expire. Expiry is checked when an entry
   * is read (`get`, `peek`, `has`), so an expired entry holds its bytes until
   * it is read, evicted or swept by {@link LRU.purgeStale}.
   */
  ttl?: number;
  /** Clock in milliseconds used for expiry. Default `Date.now`; for tests. */
  now?: () => number;
}

/** Per-entry options for {@link LRU.set}. */
export interface SetOptions {
  /** Time to live in milliseconds; `0` means never expires. Default: the cache's `ttl`. */
  ttl?: number;
}

/** Counters and gauges; see {@link LRU.stats}. */
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

/** Length in bytes of `s` encoded as UTF-8 (lone surrogates count as U+FFFD, 3 bytes). */
export function utf8ByteLength(s: string): number {
  let bytes = s.length;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) continue;
    if (c < 0x800) {
      bytes += 1;
    } else if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
      const d = s.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) {
        bytes += 2; // a pair: two UTF-16 units become four bytes
        i++;
        continue;
      }
      bytes += 2;
    } else {
      bytes += 2;
    }
  }
  return bytes;
}

function defaultSizeOf(value: unknown): number {
  if (value instanceof Uint8Array) return value.byteLength;
  if (typeof value === "string") return utf8ByteLength(value);
  throw new TypeError("LRU: values other than Uint8Array or string need the sizeOf option");
}

/**
 * A least-recently-used cache of string keys bounded by bytes.
 *
 * ```ts
 * const cache = new LRU<Uint8Array>({ maxBytes: 64 << 20 });
 * cache.set("k", new Uint8Array(10));
 * cache.get("k"); // Uint8Array(10), now the most recently used
 * ```
 */
export class LRU<V> {
  /** The byte budget this cache was made with (`0`: unbounded). */
  readonly maxBytes: number;
  private readonly sizeOf: (value: V) => number;
  private readonly onEvicted: ((key: string, value: V, reason: EvictionReason) => void) | undefined;
  private readonly defaultTtl: number;
  private readonly now: () => number;

  private readonly index = new Map<string, number>();
  private keyOf: (string | undefined)[] = [undefined];
  private valueOf: (V | undefined)[] = [undefined];
  private next: Uint32Array;
  private prev: Uint32Array;
  private sizes: Float64Array;
  /** Absolute expiry per slot, 0 for never; allocated on the first entry with a ttl. */
  private expires: Float64Array | undefined;
  private free: number[] = [];
  private capacity = INITIAL_CAPACITY;
  private used = 1; // slot 0 is the sentinel

  private totalBytes = 0;
  private hitCount = 0;
  private missCount = 0;
  private evictionCount = 0;
  private expirationCount = 0;

  constructor(options: LRUOptions<V>) {
    const { maxBytes } = options;
    if (!Number.isFinite(maxBytes) || maxBytes < 0) {
      throw new RangeError(
        `LRU: maxBytes must be a finite number >= 0 (0 = unbounded), got ${maxBytes}`,
      );
    }
    const ttl = options.ttl ?? 0;
    if (!Number.isFinite(ttl) || ttl < 0) {
      throw new RangeError(`LRU: ttl must be a finite number >= 0, got ${ttl}`);
    }
    this.maxBytes = maxBytes;
    this.sizeOf = options.sizeOf ?? (defaultSizeOf as (value: V) => number);
    this.onEvicted = options.onEvicted;
    this.defaultTtl = ttl;
    this.now = options.now ?? Date.now;
    this.next = new Uint32Array(INITIAL_CAPACITY);
    this.prev = new Uint32Array(INITIAL_CAPACITY);
    this.sizes = new Float64Array(INITIAL_CAPACITY);
  }

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
    return this.valueOf[i];
  }

  /** The value for `key` without changing its recency or the hit counters. */
  peek(key: string): V | undefined {
    const i = this.index.get(key);
    if (i === undefined) return undefined;
    if (this.expires !== undefined && this.isStale(i)) {
      this.removeSlot(i, "expire");
      return undefined;
    }
    return this.valueOf[i];
  }

  /** Whether a live entry for `key` is held, without changing its recency. */
  has(key: string): boolean {
    const i = this.index.get(key);
    if (i === undefined) return false;
    if (this.expires !== undefined && this.isStale(i)) {
      this.removeSlot(i, "expire");
      return false;
    }
    return true;
  }

  /**
   * Stores `value` under `key` as the most recently used entry, evicting the
   * least recently used entries until the budget holds.
   *
   * @returns `false` when the entry alone is larger than `maxBytes`: it is not
   *   stored, and any previous entry for `key` is removed (reason `delete`), so
   *   the cache never answers with a value the caller has just replaced.
   */
  set(key: string, value: V, options?: SetOptions): boolean {
    const size = utf8ByteLength(key) + this.sizeOf(value) + ENTRY_OVERHEAD_BYTES;
    let i = this.index.get(key);
    if (this.maxBytes !== 0 && size > this.maxBytes) {
      if (i !== undefined) this.removeSlot(i, "delete");
      return false;
    }
    const ttl = options?.ttl ?? this.defaultTtl;
    let replaced: V | undefined;
    let wasReplaced = false;
    if (i !== undefined) {
      replaced = this.valueOf[i];
      wasReplaced = true;
      this.totalBytes += size - this.sizes[i]!;
      this.sizes[i] = size;
      this.valueOf[i] = value;
      if (this.prev[0] !== i) this.moveToNewest(i);
    } else {
      i = this.allocateSlot();
      this.keyOf[i] = key;
      this.valueOf[i] = value;
      this.sizes[i] = size;
      this.index.set(key, i);
      this.linkNewest(i);
      this.totalBytes += size;
    }
    if (ttl > 0) {
      if (this.expires === undefined) this.expires = new Float64Array(this.capacity);
      this.expires[i] = this.now() + ttl;
    } else if (this.expires !== undefined) {
      this.expires[i] = 0;
    }
    if (this.maxBytes !== 0) {
      // The new entry is the newest and fits alone, so it is never the one evicted.
      while (this.totalBytes > this.maxBytes) this.removeSlot(this.next[0]!, "evict");
    }
    if (wasReplaced && this.onEvicted !== undefined && replaced !== value) {
      this.onEvicted(key, replaced as V, "replace");
    }
    return true;
  }

  /** Removes `key`. Returns whether a live entry was removed. */
  delete(key: string): boolean {
    const i = this.index.get(key);
    if (i === undefined) return false;
    if (this.expires !== undefined && this.isStale(i)) {
      this.removeSlot(i, "expire");
      return false;
    }
    this.removeSlot(i, "delete");
    return true;
  }

  /** Removes every entry (each reported to `onEvicted` as `delete`). Counters are kept. */
  clear(): void {
    const onEvicted = this.onEvicted;
    const removed: [string, V][] = [];
    if (onEvicted !== undefined) {
      for (let i = this.next[0]!; i !== 0; i = this.next[i]!) {
        removed.push([this.keyOf[i]!, this.valueOf[i] as V]);
      }
    }
    this.index.clear();
    this.keyOf = [undefined];
    this.valueOf = [undefined];
    this.capacity = INITIAL_CAPACITY;
    this.next = new Uint32Array(INITIAL_CAPACITY);
    this.prev = new Uint32Array(INITIAL_CAPACITY);
    this.sizes = new Float64Array(INITIAL_CAPACITY);
    this.expires = undefined;
    this.free = [];
    this.used = 1;
    this.totalBytes = 0;
    if (onEvicted !== undefined) for (const [k, v] of removed) onEvicted(k, v, "delete");
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
      yield [this.keyOf[i]!, this.valueOf[i] as V];
    }
  }

  /** Live keys from the least to the most recently used. */
  *keys(): IterableIterator<string> {
    for (const [key] of this.entries()) yield key;
  }

  /** Live values from the least to the most recently used. */
  *values(): IterableIterator<V> {
    for (const [, value] of this.entries()) yield value;
  }

  [Symbol.iterator](): IterableIterator<[string, V]> {
    return this.entries();
  }

  /** A snapshot of the counters and gauges. */
  stats(): LRUStats {
    return {
      hits: this.hitCount,
      misses: this.missCount,
      evictions: this.evictionCount,
      expirations: this.expirationCount,
      bytes: this.totalBytes,
      items: this.index.size,
    };
  }

  private isStale(i: number): boolean {
    const expiry = this.expires![i]!;
    return expiry !== 0 && expiry <= this.now();
  }

  private moveToNewest(i: number): void {
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

  private linkNewest(i: number): void {
    const newest = this.prev[0]!;
    this.next[newest] = i;
    this.prev[i] = newest;
    this.next[i] = 0;
    this.prev[0] = i;
  }

  private allocateSlot(): number {
    const reused = this.free.pop();
    if (reused !== undefined) return reused;
    if (this.used === this.capacity) this.grow();
    return this.used++;
  }

  private grow(): void {
    const capacity = this.capacity * 2;
    const next = new Uint32Array(capacity);
    next.set(this.next);
    this.next = next;
    const prev = new Uint32Array(capacity);
    prev.set(this.prev);
    this.prev = prev;
    const sizes = new Float64Array(capacity);
    sizes.set(this.sizes);
    this.sizes = sizes;
    if (this.expires !== undefined) {
      const expires = new Float64Array(capacity);
      expires.set(this.expires);
      this.expires = expires;
    }
    this.capacity = capacity;
  }

  private removeSlot(i: number, reason: EvictionReason): void {
    const key = this.keyOf[i]!;
    const value = this.valueOf[i] as V;
    const p = this.prev[i]!;
    const n = this.next[i]!;
    this.next[p] = n;
    this.prev[n] = p;
    this.index.delete(key);
    this.totalBytes -= this.sizes[i]!;
    this.sizes[i] = 0;
    this.keyOf[i] = undefined;
    this.valueOf[i] = undefined;
    if (this.expires !== undefined) this.expires[i] = 0;
    this.free.push(i);
    if (reason === "evict") this.evictionCount++;
    else if (reason === "expire") this.expirationCount++;
    this.onEvicted?.(key, value, reason);
  }
}
