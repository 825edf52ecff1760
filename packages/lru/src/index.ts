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
  type EvictionReason,
  LRU,
  type LRUOptions,
  type LRUStats,
  type SetOptions,
  utf8ByteLength,
} from "./lru.js";
