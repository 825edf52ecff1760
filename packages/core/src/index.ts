export { ByteView } from "./byteview.js";
export { InvalidKeyError, NotFoundError, RemoteLoadError } from "./errors.js";
export {
  type GetOptions,
  type Getter,
  type GetterContext,
  type GetterResult,
  Group,
  type GroupOptions,
  type GroupStats,
  getGroup,
  newGroup,
  PropagationError,
  type PropagationResult,
  removeGroup,
  type StoreLocalOptions,
} from "./group.js";
export type {
  PeerCallOptions,
  PeerClient,
  PeerGetOptions,
  PeerPicker,
  PeerRemoveOptions,
  PeerStoreOptions,
  PeerValue,
  Placement,
  RemoveResult,
} from "./peers.js";
export {
  DEFAULT_GUARD_KEYS,
  StaleGuard,
  type Stamp,
  stampBefore,
  WriteClock,
} from "./stamps.js";
