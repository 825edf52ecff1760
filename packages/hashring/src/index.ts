export {
  DEFAULT_VIRTUAL_NODES,
  HashRing,
  type HashRingOptions,
  hashBytes,
  hashString,
} from "./hashring.js";
