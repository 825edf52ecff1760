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
} from "./group.js";
export type {
  PeerCallOptions,
  PeerClient,
  PeerGetOptions,
  PeerPicker,
  Placement,
} from "./peers.js";
