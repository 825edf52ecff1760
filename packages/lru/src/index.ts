export {
  ENTRY_OVERHEAD_BYTES,
  type EvictionReason,
  LRU,
  type LRUOptions,
  type LRUStats,
  type SetOptions,
  utf8ByteLength,
} from "./lru.js";
