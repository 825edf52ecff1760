// The package's public surface: LRU<V> and ByteLRU with their options, stats and charges
// (SlotCache, their shared machinery, stays internal).
export {
  BYTE_ENTRY_OVERHEAD_BYTES,
  ByteLRU,
  type ByteLRUOptions,
  type ByteLRUStats,
  type ByteViewFactory,
  chargedValueBytes,
  LARGE_VALUE_OVERHEAD_BYTES,
  MAX_CHUNK_BYTES,
} from "./byte-lru.js";
export {
  ENTRY_OVERHEAD_BYTES,
  LRU,
  type LRUOptions,
  type SetOptions,
  utf8ByteLength,
} from "./lru.js";
export type { EvictionReason, LRUStats } from "./slot-cache.js";
