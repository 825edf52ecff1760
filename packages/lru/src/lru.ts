// LRU<V>: the cache for any value type, holding each value as the object given and charging
// it by `sizeOf`; and utf8ByteLength, which both caches charge keys with. The slots, recency
// list, expiry and the types both caches share live in slot-cache.ts.
import { type EvictionReason, grown, type LRUStats, SlotCache } from "./slot-cache.js";

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
export class LRU<V> extends SlotCache<V> {
  private readonly sizeOf: (value: V) => number;
  private readonly onEvicted: ((key: string, value: V, reason: EvictionReason) => void) | undefined;
  private slotValues: (V | undefined)[] = [undefined];
  /** The charge of each slot's entry. */
  private sizes = new Float64Array(this.capacity);

  constructor(options: LRUOptions<V>) {
    super("LRU", options);
    this.sizeOf = options.sizeOf ?? (defaultSizeOf as (value: V) => number);
    this.onEvicted = options.onEvicted;
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
    let replaced: V | undefined;
    let wasReplaced = false;
    if (i !== undefined) {
      replaced = this.slotValues[i];
      wasReplaced = true;
      this.totalBytes += size - this.sizes[i]!;
      if (this.prev[0] !== i) this.moveToNewest(i);
    } else {
      i = this.addSlot(key);
      this.totalBytes += size;
    }
    this.sizes[i] = size;
    this.slotValues[i] = value;
    this.setExpiry(i, options?.ttl ?? this.defaultTtl);
    // The new entry is the newest and fits alone, so it is never the one evicted.
    if (this.maxBytes !== 0) this.evictDownTo(this.maxBytes);
    if (wasReplaced && this.onEvicted !== undefined && replaced !== value) {
      this.onEvicted(key, replaced as V, "replace");
    }
    return true;
  }

  /** Removes every entry (each reported to `onEvicted` as `delete`). Counters are kept. */
  clear(): void {
    const onEvicted = this.onEvicted;
    const removed: [string, V][] = [];
    if (onEvicted !== undefined) {
      for (const i of this.slotsInOrder()) removed.push([this.keyOf[i]!, this.slotValues[i] as V]);
    }
    this.resetSlots();
    this.slotValues = [undefined];
    this.sizes = new Float64Array(this.capacity);
    if (onEvicted !== undefined) for (const [k, v] of removed) onEvicted(k, v, "delete");
  }

  /** A snapshot of the counters and gauges. */
  stats(): LRUStats {
    return this.counters();
  }

  protected override read(i: number): V {
    return this.slotValues[i] as V;
  }

  protected override release(i: number): V {
    const value = this.slotValues[i] as V;
    this.totalBytes -= this.sizes[i]!;
    this.sizes[i] = 0;
    this.slotValues[i] = undefined;
    return value;
  }

  protected override removed(key: string, released: unknown, reason: EvictionReason): void {
    this.onEvicted?.(key, released as V, reason);
  }

  protected override growSlots(capacity: number): void {
    this.sizes = grown(this.sizes, capacity);
  }
}
