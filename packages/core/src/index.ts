// @distcache/core's public surface: groups and what their callers handle,
// and the peer interfaces a transport implements.

// A load past `loadTimeout` rejects with singleflight's TimeoutError; a
// Cancel is GetOptions' and peer Gets' cheaper cancellation than an
// AbortSignal, the Leave helpers watch either, and a Receiver takes a
// result without a promise (for transports).
export {
  Cancel,
  hasLeft,
  isCancel,
  type Leave,
  type Receiver,
  TimeoutError,
  unwatchLeave,
  watchLeave,
} from "@distcache/singleflight";
export { ByteView } from "./byteview.js";
export { InvalidKeyError, NotFoundError, RemoteLoadError } from "./errors.js";
export { type GetOptions, Group } from "./group.js";
export { type GroupStats, LOAD_SECONDS_BUCKETS, type LoadSeconds } from "./group-stats.js";
export {
  LoadLimiter,
  type LoadLimiterStats,
  LoadsOverloadedError,
} from "./load-limiter.js";
export type { Getter, GetterContext, GetterResult, GroupOptions } from "./local-group.js";
export type {
  AttachedGroup,
  ClientHandler,
  PeerCallOptions,
  PeerClient,
  PeerGetOptions,
  PeerGetRequest,
  PeerHandler,
  PeerPicker,
  PeerRemoveOptions,
  PeerRemoveRequest,
  PeerStoreOptions,
  PeerStoreRequest,
  PeerStoreResult,
  PeerValue,
  Placement,
  RemoveResult,
} from "./peers.js";
export {
  type NotCached,
  PropagationError,
  type PropagationResult,
  type SetResult,
} from "./propagation.js";
export { getGroup, newGroup, removeGroup } from "./registry.js";
export { Incarnation, MAX_STAMP_PART, type Stamp, validStamp } from "./stamps.js";
