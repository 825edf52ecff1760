/**
 * A byte-bounded LRU cache of byte values kept in slab memory.
 *
 * {@link LRU} holds one JavaScript object per value; for a `Uint8Array` that
 * is a typed array, an `ArrayBuffer` and a native backing store, several
 * hundred bytes per entry before the value's own bytes. `ByteLRU` copies each
 * value into a chunk of a shared page instead, so an entry costs its key, its
 * chunk and a few slots of typed arrays.
 *
 * - **Size classes.** A value of 1–4096 bytes goes to the smallest class that
 *   fits it: every 8 bytes up to 256, then 8 classes per doubling (at most
 *   12.5% rounding). Each class keeps pages of about 8–16 KiB carved into equal
 *   chunks. Larger values get an array of their own; empty ones take nothing.
 * - **Dense classes.** A freed chunk becomes a hole that the class's next value
 *   reuses. When a class has more holes than one page's worth and than 1/32 of
 *   its live chunks, its last chunks are moved into the holes and emptied
 *   pages are released (one spare page is kept). So a class holds at most its
 *   live chunks + 1/32 + three pages: see {@link ByteLRUStats.storeBytes}.
 * - **Values handed out never change.** A read either copies the value out
 *   (the default) or hands the page itself to {@link ByteLRUOptions.view} and
 *   marks the page shared. Before the cache writes into a shared page (a new
 *   value, a move, a replacement) it replaces the page with a copy and leaves
 *   the old one to the values already handed out. Nothing writes an old page
 *   again; the garbage collector frees it with the last value that uses it.
 * - **Entries** are chained in LRU order through slot numbers. The links are
 *   two `Uint32Array`s (a hit relinks its neighbours, and dense link arrays
 *   stay in the CPU cache better than one record per slot); chunk, size
 *   class, length and key length are two words per slot in a third.
 */

import { type EvictionReason, utf8ByteLength } from "./lru.js";

/**
 * Bytes charged for every entry on top of its key's UTF-8 bytes and its
 * value's chunk ({@link chargedValueBytes}): the key's `Map` entry and string
 * header, the slot's typed-array words, and the share of growth slack and page
 * bookkeeping. Measured, not estimated: `bench/memory.mjs` fills a `Group`
 * with 16-byte keys and 100-byte values and divides the process's RSS growth
 * by the entries. Beyond the 16 + 104 bytes charged for key and chunk, that
 * came to 89-97 bytes at 1M entries and up to 126 between 300k and 1.1M
 * entries (V8's `Map` doubles its table at powers of two). The charge takes
 * the upper end, so a budget bounds the memory it stands for.
 */
export const BYTE_ENTRY_OVERHEAD_BYTES = 128;

/**
 * Bytes charged, on top of their length, for a value larger than
 * {@link MAX_CHUNK_BYTES}, which gets its own `Uint8Array`: typed array,
 * `ArrayBuffer`, native backing store and allocator overhead. Measured at
 * 400-500 bytes of RSS per value of 4-20 KiB including the entry's own
 * bookkeeping (which {@link BYTE_ENTRY_OVERHEAD_BYTES} pays for); rounded up.
 */
export const LARGE_VALUE_OVERHEAD_BYTES = 512;

/** The largest value kept in a slab chunk; larger ones get their own array. */
export const MAX_CHUNK_BYTES = 4096;

/** Target size of a slab page: each class's pages hold 2^k chunks, 8–16 KiB. */
const PAGE_BYTES = 16 * 1024;
/** First page of a class starts at about this size and doubles up to a full page. */
const FIRST_PAGE_BYTES = 1024;
/** Size classes up to 256 bytes: one every 8 bytes. */
const FINE_CLASSES = 32;
/** Size classes 1..64 live in slabs; 0 is the empty value, 65 a value with its own array. */
const SLAB_CLASSES = 64;
const EMPTY = 0;
const LARGE = SLAB_CLASSES + 1;
/** A slot's info word: size class (7 bits) | value length (13 bits) | key UTF-8 bytes (12 bits). */
const CLASS_SHIFT = 25;
const LENGTH_SHIFT = 12;
const LENGTH_MASK = 0x1fff;
const KEY_MASK = 0xfff;
/** In the key field: the key is longer; its UTF-8 length is computed again when needed. */
const LONG_KEY = KEY_MASK;
const INITIAL_CAPACITY = 16;
const EMPTY_BYTES = new Uint8Array(0);

/** Size class (1..64) of a value of 1..4096 bytes. */
function classOfLength(length: number): number {
  if (length <= 256) return (length + 7) >>> 3;
  const e = 31 - Math.clz32(length - 1); // 2^e < length <= 2^(e+1), e in 8..11
  const step = e - 3; // 8 classes per doubling: steps of 2^(e-3)
  return FINE_CLASSES + (e - 8) * 8 + ((length - (1 << e) + (1 << step) - 1) >>> step);
}

/** Chunk size in bytes of size class `c` (1..64). */
function classSize(c: number): number {
  if (c <= FINE_CLASSES) return c * 8;
  const k = c - FINE_CLASSES - 1;
  const e = 8 + (k >>> 3);
  return (1 << e) + ((k & 7) + 1) * (1 << (e - 3));
}

/**
 * Bytes a value of `length` bytes is charged in a {@link ByteLRU}: its chunk
 * (the length rounded up to its size class: to a multiple of 8 up to 256
 * bytes, by at most 12.5% up to 4096), or for a larger value its length plus
 * {@link LARGE_VALUE_OVERHEAD_BYTES}. `0` for an empty value.
 */
export function chargedValueBytes(length: number): number {
  if (length === 0) return 0;
  if (length <= MAX_CHUNK_BYTES) return CLASS_SIZES[classOfLength(length)]!;
  return length + LARGE_VALUE_OVERHEAD_BYTES;
}

/** Chunk size per size class, 1..64 (index 0 unused). */
const CLASS_SIZES = new Uint16Array(SLAB_CLASSES + 1);
for (let c = 1; c <= SLAB_CLASSES; c++) CLASS_SIZES[c] = classSize(c);

/**
 * Makes what a read returns from the value's bytes: `bytes[offset, offset +
 * length)`. Those bytes never change afterwards, however the cache changes;
 * the function must not write to `bytes` (it may hold other entries' values)
 * and may keep it as long as it likes.
 */
export type ByteViewFactory<V> = (bytes: Uint8Array, offset: number, length: number) => V;

interface ByteLRUBaseOptions {
  /**
   * Budget in bytes for all entries (key UTF-8 bytes + {@link chargedValueBytes}
   * + {@link BYTE_ENTRY_OVERHEAD_BYTES} each). `0` means unbounded. Required.
   */
  maxBytes: number;
  /**
   * Called after an entry has left the cache, with the reason. Default: none.
   * It runs synchronously inside the call that removed the entry; it must not
   * call back into this cache. The value is gone by then.
   */
  onEvicted?: (key: string, reason: EvictionReason) => void;
  /**
   * Default time to live in milliseconds; `0` (default) never expires.
   * Checked when an entry is read, as in {@link LRU}.
   */
  ttl?: number;
  /** Clock in milliseconds used for expiry. Default `Date.now`; for tests. */
  now?: () => number;
}

/**
 * Options for {@link ByteLRU}. `view` is required unless reads return plain
 * `Uint8Array` copies.
 */
export type ByteLRUOptions<V = Uint8Array> = ByteLRUBaseOptions &
  (Uint8Array extends V
    ? {
        /**
         * How a read hands out a value, without copying it. Default: a copy
         * (`bytes.slice(offset, offset + length)`), which the caller owns.
         */
        view?: ByteViewFactory<V>;
      }
    : {
        /** How a read hands out a value, without copying it. */
        view: ByteViewFactory<V>;
      });

/** Counters and gauges; see {@link ByteLRU.stats}. */
export interface ByteLRUStats {
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
  /** Bytes of the live values' chunks (and own arrays of large values). */
  chunkBytes: number;
  /**
   * Bytes of value storage this cache holds now: its slab pages (live chunks,
   * holes, the unused rest of each class's last page and one spare page) and
   * large values' arrays. Pages it replaced while values handed out still use
   * them are not counted: they belong to those values.
   */
  storeBytes: number;
}

/** One size class: equal chunks in pages of 2^shift chunks, dense from index 0. */
class SizeClass {
  readonly size: number;
  readonly shift: number;
  readonly mask: number;
  pages: Uint8Array[] = [];
  /** Per page: 1 once a read handed the page out; the next write copies the page first. */
  shared: number[] = [];
  /** Per chunk index: the slot that owns it, 0 for a hole (slot 0 is the list sentinel). */
  owners = new Uint32Array(0);
  /** Chunk indices in use, live or holes: [0, count). */
  count = 0;
  live = 0;
  /** Holes below `count`, reused first. */
  holes: number[] = [];

  constructor(size: number) {
    this.size = size;
    this.shift = 31 - Math.clz32(Math.max(1, Math.floor(PAGE_BYTES / size)));
    this.mask = (1 << this.shift) - 1;
  }
}

function copyOut(bytes: Uint8Array, offset: number, length: number): Uint8Array {
  return bytes.slice(offset, offset + length);
}

/**
 * A least-recently-used cache of string keys to byte values, bounded by bytes,
 * that stores values in slab pages instead of one object each.
 *
 * ```ts
 * const cache = new ByteLRU({ maxBytes: 256 << 20 });
 * cache.set("k", new Uint8Array([1, 2, 3]));
 * cache.get("k"); // Uint8Array [1, 2, 3], a copy, now the most recently used
 * ```
 *
 * With a `view` factory reads copy nothing:
 * `new ByteLRU<ByteView>({ maxBytes, view: ByteView.adoptRange })`.
 */
export class ByteLRU<V = Uint8Array> {
  /** The byte budget this cache was made with (`0`: unbounded). */
  readonly maxBytes: number;
  private readonly view: ByteViewFactory<V>;
  /** Whether reads hand out pages (a `view` option): then a read marks its page shared. */
  private readonly handsOutPages: boolean;
  private readonly onEvicted: ((key: string, reason: EvictionReason) => void) | undefined;
  private readonly defaultTtl: number;
  private readonly now: () => number;

  private readonly index = new Map<string, number>();
  /** Keys per slot; sized with the typed arrays, so it grows with them and no more. */
  private keyOf: (string | undefined)[] = new Array(INITIAL_CAPACITY);
  /** List links per slot; slot 0 is the sentinel: `next[0]` oldest, `prev[0]` newest. */
  private next: Uint32Array;
  private prev: Uint32Array;
  /**
   * Two words per slot, read together on a hit: the value's chunk index in its
   * class (or its index among large values), then the info word: size class,
   * length (0 for a large value: its array has it) and the key's UTF-8 bytes.
   */
  private loc: Uint32Array;
  /** Absolute expiry per slot, 0 for never; allocated on the first entry with a ttl. */
  private expires: Float64Array | undefined;
  /** Freed slots, chained through `next`; 0 ends the chain. */
  private freeSlot = 0;
  private capacity = INITIAL_CAPACITY;
  private used = 1;

  private classes: SizeClass[];
  private large: Uint8Array[] = [];
  private largeOwners: number[] = [];

  private totalBytes = 0;
  private chunkBytes = 0;
  private storeBytes = 0;
  private hitCount = 0;
  private missCount = 0;
  private evictionCount = 0;
  private expirationCount = 0;

  constructor(options: ByteLRUOptions<V>) {
    const { maxBytes } = options;
    if (!Number.isFinite(maxBytes) || maxBytes < 0) {
      throw new RangeError(
        `ByteLRU: maxBytes must be a finite number >= 0 (0 = unbounded), got ${maxBytes}`,
      );
    }
    const ttl = options.ttl ?? 0;
    if (!Number.isFinite(ttl) || ttl < 0) {
      throw new RangeError(`ByteLRU: ttl must be a finite number >= 0, got ${ttl}`);
    }
    this.maxBytes = maxBytes;
    const view = (options as { view?: ByteViewFactory<V> }).view;
    this.view = view ?? (copyOut as unknown as ByteViewFactory<V>);
    this.handsOutPages = view !== undefined;
    this.onEvicted = options.onEvicted;
    this.defaultTtl = ttl;
    this.now = options.now ?? Date.now;
    this.next = new Uint32Array(INITIAL_CAPACITY);
    this.prev = new Uint32Array(INITIAL_CAPACITY);
    this.loc = new Uint32Array(INITIAL_CAPACITY * 2);
    this.classes = ByteLRU.makeClasses();
  }

  private static makeClasses(): SizeClass[] {
    const classes: SizeClass[] = [];
    // Index 0 is never used (the empty value has no chunk); it keeps the array dense.
    for (let c = 0; c <= SLAB_CLASSES; c++) classes.push(new SizeClass(c === 0 ? 8 : classSize(c)));
    return classes;
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
    return this.read(i);
  }

  /** The value for `key` without changing its recency or the hit counters. */
  peek(key: string): V | undefined {
    const i = this.index.get(key);
    if (i === undefined) return undefined;
    if (this.expires !== undefined && this.isStale(i)) {
      this.removeSlot(i, "expire");
      return undefined;
    }
    return this.read(i);
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
   * Copies `value` into the cache under `key` as the most recently used entry,
   * evicting the least recently used entries until the budget holds. The
   * caller keeps `value` and may change it afterwards.
   *
   * @returns `false` when the entry alone is larger than `maxBytes`: it is not
   *   stored, and any previous entry for `key` is removed (reason `delete`).
   */
  set(key: string, value: Uint8Array, options?: { ttl?: number }): boolean {
    if (!(value instanceof Uint8Array)) {
      throw new TypeError("ByteLRU: values must be Uint8Array");
    }
    const keyBytes = utf8ByteLength(key);
    const size = keyBytes + chargedValueBytes(value.byteLength) + BYTE_ENTRY_OVERHEAD_BYTES;
    let i = this.index.get(key);
    if (this.maxBytes !== 0 && size > this.maxBytes) {
      if (i !== undefined) this.removeSlot(i, "delete");
      return false;
    }
    const ttl = options?.ttl ?? this.defaultTtl;
    const replaced = i !== undefined;
    if (i !== undefined) {
      this.totalBytes += size - this.chargeOf(i);
      this.replaceValue(i, value);
      if (this.prev[0] !== i) this.moveToNewest(i);
    } else {
      // Evict first, so the new value can take a chunk the evicted ones freed.
      if (this.maxBytes !== 0) {
        while (this.totalBytes + size > this.maxBytes) this.removeSlot(this.next[0]!, "evict");
      }
      i = this.allocateSlot();
      this.keyOf[i] = key;
      this.loc[(i << 1) + 1] = Math.min(keyBytes, LONG_KEY);
      this.writeValue(i, value);
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
      // A replacement may have grown the entry; it is the newest and fits alone.
      while (this.totalBytes > this.maxBytes) this.removeSlot(this.next[0]!, "evict");
    }
    if (replaced) this.onEvicted?.(key, "replace");
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
    const removed: string[] = [];
    if (this.onEvicted !== undefined) {
      for (let i = this.next[0]!; i !== 0; i = this.next[i]!) {
        removed.push(this.keyOf[i]!);
      }
    }
    this.index.clear();
    this.keyOf = new Array(INITIAL_CAPACITY);
    this.capacity = INITIAL_CAPACITY;
    this.next = new Uint32Array(INITIAL_CAPACITY);
    this.prev = new Uint32Array(INITIAL_CAPACITY);
    this.loc = new Uint32Array(INITIAL_CAPACITY * 2);
    this.expires = undefined;
    this.freeSlot = 0;
    this.used = 1;
    // Values handed out keep the pages they use; the cache lets go of all of them.
    this.classes = ByteLRU.makeClasses();
    this.large = [];
    this.largeOwners = [];
    this.totalBytes = 0;
    this.chunkBytes = 0;
    this.storeBytes = 0;
    for (const key of removed) this.onEvicted!(key, "delete");
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

  /** A snapshot of the counters and gauges. */
  stats(): ByteLRUStats {
    return {
      hits: this.hitCount,
      misses: this.missCount,
      evictions: this.evictionCount,
      expirations: this.expirationCount,
      bytes: this.totalBytes,
      items: this.index.size,
      chunkBytes: this.chunkBytes,
      storeBytes: this.storeBytes,
    };
  }

  // --- values in chunks ---------------------------------------------------------

  /** Hands out slot `i`'s value through the view factory. */
  private read(i: number): V {
    const info = this.loc[(i << 1) + 1]!;
    const c = info >>> CLASS_SHIFT;
    const chunk = this.loc[i << 1]!;
    if (c > EMPTY && c < LARGE) {
      const cls = this.classes[c]!;
      const p = chunk >>> cls.shift;
      if (this.handsOutPages) cls.shared[p] = 1;
      const length = (info >>> LENGTH_SHIFT) & LENGTH_MASK;
      return this.view(cls.pages[p]!, (chunk & cls.mask) * cls.size, length);
    }
    if (c === EMPTY) return this.view(EMPTY_BYTES, 0, 0);
    const bytes = this.large[chunk]!;
    return this.view(bytes, 0, bytes.byteLength);
  }

  /** The charge of slot `i`'s entry, from its key bytes and its value's length. */
  private chargeOf(i: number): number {
    const info = this.loc[(i << 1) + 1]!;
    let keyBytes = info & KEY_MASK;
    if (keyBytes === LONG_KEY) keyBytes = utf8ByteLength(this.keyOf[i]!);
    const c = info >>> CLASS_SHIFT;
    const value =
      c === EMPTY
        ? 0
        : c === LARGE
          ? this.large[this.loc[i << 1]!]!.byteLength + LARGE_VALUE_OVERHEAD_BYTES
          : CLASS_SIZES[c]!;
    return keyBytes + value + BYTE_ENTRY_OVERHEAD_BYTES;
  }

  /** Copies `value` into a new chunk for slot `i` (which has none). */
  private writeValue(i: number, value: Uint8Array): void {
    const length = value.byteLength;
    if (length === 0) {
      this.loc[i << 1] = 0;
      this.setInfo(i, EMPTY, 0);
      return;
    }
    if (length > MAX_CHUNK_BYTES) {
      this.loc[i << 1] = this.large.length;
      this.setInfo(i, LARGE, 0);
      // `new Uint8Array(value)` copies; `value.slice()` would not for a Buffer.
      this.large.push(new Uint8Array(value));
      this.largeOwners.push(i);
      this.chunkBytes += length;
      this.storeBytes += length;
      return;
    }
    const c = classOfLength(length);
    const cls = this.classes[c]!;
    const chunk = this.allocateChunk(cls, i);
    this.writablePage(cls, chunk >>> cls.shift).set(value, (chunk & cls.mask) * cls.size);
    this.loc[i << 1] = chunk;
    this.setInfo(i, c, length);
  }

  /** Sets slot `i`'s size class and length, keeping its key field. */
  private setInfo(i: number, c: number, length: number): void {
    const at = (i << 1) + 1;
    this.loc[at] =
      ((c << CLASS_SHIFT) | (length << LENGTH_SHIFT) | (this.loc[at]! & KEY_MASK)) >>> 0;
  }

  /** Replaces slot `i`'s value: in place when the size class is the same. */
  private replaceValue(i: number, value: Uint8Array): void {
    const length = value.byteLength;
    const c = this.loc[(i << 1) + 1]! >>> CLASS_SHIFT;
    if (c > EMPTY && c < LARGE && length > 0 && length <= MAX_CHUNK_BYTES) {
      if (classOfLength(length) === c) {
        const cls = this.classes[c]!;
        const chunk = this.loc[i << 1]!;
        this.writablePage(cls, chunk >>> cls.shift).set(value, (chunk & cls.mask) * cls.size);
        this.setInfo(i, c, length);
        return;
      }
    }
    this.releaseValue(i);
    this.writeValue(i, value);
  }

  /** Frees slot `i`'s chunk (or large array). */
  private releaseValue(i: number): void {
    const c = this.loc[(i << 1) + 1]! >>> CLASS_SHIFT;
    const chunk = this.loc[i << 1]!;
    if (c === EMPTY) return;
    if (c === LARGE) {
      const bytes = this.large[chunk]!;
      this.chunkBytes -= bytes.byteLength;
      this.storeBytes -= bytes.byteLength;
      // Keep the large arrays dense: the last one takes the freed place.
      const last = this.large.length - 1;
      if (chunk !== last) {
        const owner = this.largeOwners[last]!;
        this.large[chunk] = this.large[last]!;
        this.largeOwners[chunk] = owner;
        this.loc[owner << 1] = chunk;
      }
      this.large.pop();
      this.largeOwners.pop();
      return;
    }
    const cls = this.classes[c]!;
    cls.owners[chunk] = 0;
    cls.live--;
    this.chunkBytes -= cls.size;
    if (chunk === cls.count - 1) {
      cls.count--;
    } else {
      cls.holes.push(chunk);
      if (cls.holes.length > Math.max(cls.mask + 1, cls.live >>> 5)) this.compact(cls);
    }
    this.trimPages(cls);
  }

  /** A chunk of `cls` for slot `owner`: a hole if there is one, else the next index. */
  private allocateChunk(cls: SizeClass, owner: number): number {
    this.chunkBytes += cls.size;
    cls.live++;
    const hole = cls.holes.pop();
    if (hole !== undefined) {
      cls.owners[hole] = owner;
      return hole;
    }
    const chunk = cls.count;
    const p = chunk >>> cls.shift;
    const fullPage = (cls.mask + 1) * cls.size;
    if (p === cls.pages.length) {
      // A class's first page starts small and doubles, so small caches stay small.
      const bytes = p === 0 ? Math.min(fullPage, cls.size * firstPageChunks(cls.size)) : fullPage;
      cls.pages.push(new Uint8Array(bytes));
      cls.shared.push(0);
      this.storeBytes += bytes;
    } else if (p === 0 && (chunk + 1) * cls.size > cls.pages[0]!.byteLength) {
      const old = cls.pages[0]!;
      const grown = new Uint8Array(Math.min(fullPage, old.byteLength * 2));
      grown.set(old);
      // The old page is never written again: values handed out from it stay as they are.
      cls.pages[0] = grown;
      cls.shared[0] = 0;
      this.storeBytes += grown.byteLength - old.byteLength;
    }
    if (chunk >= cls.owners.length) {
      const owners = new Uint32Array(Math.max(cls.mask + 1, grownCapacity(cls.owners.length)));
      owners.set(cls.owners);
      cls.owners = owners;
    }
    cls.owners[chunk] = owner;
    cls.count++;
    return chunk;
  }

  /** Page `p` of `cls`, ready to be written: copied first if a read handed it out. */
  private writablePage(cls: SizeClass, p: number): Uint8Array {
    let page = cls.pages[p]!;
    if (cls.shared[p] !== 0) {
      page = page.slice();
      cls.pages[p] = page;
      cls.shared[p] = 0;
    }
    return page;
  }

  /** Moves the last chunks of `cls` into its holes until it has none. */
  private compact(cls: SizeClass): void {
    const owners = cls.owners;
    const holes = cls.holes;
    while (holes.length > 0) {
      while (cls.count > 0 && owners[cls.count - 1] === 0) cls.count--;
      const hole = holes.pop()!;
      if (hole >= cls.count) continue; // a trailing hole, dropped just above
      const last = cls.count - 1;
      this.moveChunk(cls, last, hole);
      const owner = owners[last]!;
      owners[hole] = owner;
      owners[last] = 0;
      this.loc[owner << 1] = hole;
      cls.count--;
    }
    while (cls.count > 0 && owners[cls.count - 1] === 0) cls.count--;
  }

  private moveChunk(cls: SizeClass, from: number, to: number): void {
    const size = cls.size;
    const target = this.writablePage(cls, to >>> cls.shift);
    const source = cls.pages[from >>> cls.shift]!;
    const sourceAt = (from & cls.mask) * size;
    const targetAt = (to & cls.mask) * size;
    if (source === target) target.copyWithin(targetAt, sourceAt, sourceAt + size);
    else target.set(source.subarray(sourceAt, sourceAt + size), targetAt);
  }

  /** Releases pages past the class's last chunk, keeping one spare page. */
  private trimPages(cls: SizeClass): void {
    const needed = (cls.count + cls.mask) >>> cls.shift;
    while (cls.pages.length > needed + 1) {
      this.storeBytes -= cls.pages.pop()!.byteLength;
      cls.shared.pop();
    }
    if (cls.owners.length > 64 && cls.owners.length >= 4 * cls.count) {
      cls.owners = cls.owners.slice(0, Math.max(16, 2 * cls.count));
    }
  }

  // --- the list and the slots ---------------------------------------------------

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
    const reused = this.freeSlot;
    if (reused !== 0) {
      this.freeSlot = this.next[reused]!;
      return reused;
    }
    if (this.used === this.capacity) this.grow();
    return this.used++;
  }

  /** Grows the slot arrays by half: less slack than doubling for large caches. */
  private grow(): void {
    const capacity = grownCapacity(this.capacity);
    this.next = grown(this.next, capacity);
    this.prev = grown(this.prev, capacity);
    this.loc = grown(this.loc, capacity * 2);
    const keyOf = new Array<string | undefined>(capacity);
    for (let i = 0; i < this.used; i++) keyOf[i] = this.keyOf[i];
    this.keyOf = keyOf;
    if (this.expires !== undefined) {
      const expires = new Float64Array(capacity);
      expires.set(this.expires);
      this.expires = expires;
    }
    this.capacity = capacity;
  }

  private removeSlot(i: number, reason: EvictionReason): void {
    const key = this.keyOf[i]!;
    const p = this.prev[i]!;
    const n = this.next[i]!;
    this.next[p] = n;
    this.prev[n] = p;
    this.index.delete(key);
    this.totalBytes -= this.chargeOf(i);
    this.releaseValue(i);
    this.keyOf[i] = undefined;
    if (this.expires !== undefined) this.expires[i] = 0;
    this.next[i] = this.freeSlot;
    this.freeSlot = i;
    if (reason === "evict") this.evictionCount++;
    else if (reason === "expire") this.expirationCount++;
    this.onEvicted?.(key, reason);
  }
}

/** Chunks in a class's first page: about {@link FIRST_PAGE_BYTES}, a power of two. */
/** The next size of a growing array: +50%, at least +16. */
function grownCapacity(capacity: number): number {
  return capacity + Math.max(16, capacity >>> 1);
}

function grown(array: Uint32Array, capacity: number): Uint32Array {
  const bigger = new Uint32Array(capacity);
  bigger.set(array);
  return bigger;
}

function firstPageChunks(size: number): number {
  return 1 << (31 - Math.clz32(Math.max(1, Math.floor(FIRST_PAGE_BYTES / size))));
}
