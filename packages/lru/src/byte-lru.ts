// ByteLRU: the cache of byte values kept in slab memory (size classes, pages, compaction,
// copy-on-write of pages handed out), its options and stats, and what an entry is charged.
import { utf8ByteLength } from "./lru.js";
import {
  type EvictionReason,
  grown,
  grownCapacity,
  type LRUStats,
  SlotCache,
} from "./slot-cache.js";

/*
 * Why slabs: {@link LRU} holds one JavaScript object per value; for a
 * `Uint8Array` that is a typed array, an `ArrayBuffer` and a native backing
 * store, several hundred bytes per entry before the value's own bytes.
 * `ByteLRU` copies each value into a chunk of a shared page instead, so an
 * entry costs its key, its chunk and a few slots of typed arrays.
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

/**
 * Bytes charged for every entry on top of its key's UTF-8 bytes and its
 * value's chunk ({@link chargedValueBytes}): the key's `Map` entry and string
 * header, the slot's typed-array words, and the share of growth slack and page
 * bookkeeping. Measured, not estimated: `bench/memory.mjs` fills a `Group`
 * with 16-byte keys and 100-byte values and divides the process's RSS growth
 * by the entries (figures in docs/benchmarks.md; the cost moves with entry
 * count because V8's `Map` doubles its table at powers of two). The charge
 * takes the upper end of the range, so a budget bounds the memory it stands for.
 */
export const BYTE_ENTRY_OVERHEAD_BYTES = 128;

/**
 * Bytes charged, on top of their length, for a value larger than
 * {@link MAX_CHUNK_BYTES}, which gets its own `Uint8Array`: typed array,
 * `ArrayBuffer`, native backing store and allocator overhead: the measured
 * RSS per such value (docs/benchmarks.md), including the entry's own
 * bookkeeping (which {@link BYTE_ENTRY_OVERHEAD_BYTES} pays for), rounded up.
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

/** {@link LRUStats} plus the slab store's gauges; see {@link ByteLRU.stats}. */
export interface ByteLRUStats extends LRUStats {
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
 * With a `view` factory reads copy nothing, e.g. `@distcache/core`'s
 * `new ByteLRU<ByteView>({ maxBytes, view: ByteView.adoptRange })`.
 */
export class ByteLRU<V = Uint8Array> extends SlotCache<V> {
  private readonly view: ByteViewFactory<V>;
  /** Whether reads hand out pages (a `view` option): then a read marks its page shared. */
  private readonly handsOutPages: boolean;
  private readonly onEvicted: ((key: string, reason: EvictionReason) => void) | undefined;

  /**
   * Two words per slot, read together on a hit: the value's chunk index in its
   * class (or its index among large values), then the info word: size class,
   * length (0 for a large value: its array has it) and the key's UTF-8 bytes.
   */
  private loc: Uint32Array;
  private classes: SizeClass[];
  private large: Uint8Array[] = [];
  private largeOwners: number[] = [];

  private chunkBytes = 0;
  private storeBytes = 0;

  constructor(options: ByteLRUOptions<V>) {
    super("ByteLRU", options);
    const view = (options as { view?: ByteViewFactory<V> }).view;
    this.view = view ?? (copyOut as unknown as ByteViewFactory<V>);
    this.handsOutPages = view !== undefined;
    this.onEvicted = options.onEvicted;
    this.loc = new Uint32Array(this.capacity * 2);
    this.classes = ByteLRU.makeClasses();
  }

  private static makeClasses(): SizeClass[] {
    const classes: SizeClass[] = [];
    // Index 0 is never used (the empty value has no chunk); it keeps the array dense.
    for (let c = 0; c <= SLAB_CLASSES; c++) classes.push(new SizeClass(c === 0 ? 8 : classSize(c)));
    return classes;
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
    const replaced = i !== undefined;
    if (i !== undefined) {
      this.totalBytes += size - this.chargeOf(i);
      this.replaceValue(i, value);
      if (this.prev[0] !== i) this.moveToNewest(i);
    } else {
      // Evict first, so the new value can take a chunk the evicted ones freed.
      if (this.maxBytes !== 0) this.evictDownTo(this.maxBytes - size);
      i = this.addSlot(key);
      this.loc[(i << 1) + 1] = Math.min(keyBytes, LONG_KEY);
      this.writeValue(i, value);
      this.totalBytes += size;
    }
    this.setExpiry(i, options?.ttl ?? this.defaultTtl);
    // A replacement may have grown the entry; it is the newest and fits alone.
    if (this.maxBytes !== 0) this.evictDownTo(this.maxBytes);
    if (replaced) this.onEvicted?.(key, "replace");
    return true;
  }

  /** Removes every entry (each reported to `onEvicted` as `delete`). Counters are kept. */
  clear(): void {
    const removed =
      this.onEvicted === undefined ? [] : this.slotsInOrder().map((i) => this.keyOf[i]!);
    this.resetSlots();
    this.loc = new Uint32Array(this.capacity * 2);
    // Values handed out keep the pages they use; the cache lets go of all of them.
    this.classes = ByteLRU.makeClasses();
    this.large = [];
    this.largeOwners = [];
    this.chunkBytes = 0;
    this.storeBytes = 0;
    for (const key of removed) this.onEvicted!(key, "delete");
  }

  /** A snapshot of the counters and gauges. */
  stats(): ByteLRUStats {
    return {
      ...this.counters(),
      chunkBytes: this.chunkBytes,
      storeBytes: this.storeBytes,
    };
  }

  // --- values in chunks ---------------------------------------------------------

  /** Hands out slot `i`'s value through the view factory. */
  protected override read(i: number): V {
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
      const bigger = new Uint8Array(Math.min(fullPage, old.byteLength * 2));
      bigger.set(old);
      // The old page is never written again: values handed out from it stay as they are.
      cls.pages[0] = bigger;
      cls.shared[0] = 0;
      this.storeBytes += bigger.byteLength - old.byteLength;
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

  // --- the slots ---------------------------------------------------------------

  protected override release(i: number): undefined {
    this.totalBytes -= this.chargeOf(i);
    this.releaseValue(i);
    return undefined;
  }

  protected override removed(key: string, _released: unknown, reason: EvictionReason): void {
    this.onEvicted?.(key, reason);
  }

  protected override growSlots(capacity: number): void {
    this.loc = grown(this.loc, capacity * 2);
  }
}

/** Chunks in a class's first page: about {@link FIRST_PAGE_BYTES}, a power of two. */
function firstPageChunks(size: number): number {
  return 1 << (31 - Math.clz32(Math.max(1, Math.floor(FIRST_PAGE_BYTES / size))));
}
