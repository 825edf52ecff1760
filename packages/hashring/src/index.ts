export {
  DEFAULT_REPLICAS,
  HashRing,
  type HashRingOptions,
  hashBytes,
  hashString,
} from "./hashring.js";
