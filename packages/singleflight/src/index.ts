export { Cancel, isCancel } from "./cancel.js";
export { hasLeft, type Leave, unwatchLeave, watchLeave } from "./leave.js";
export {
  type CancellableWork,
  type DoOptions,
  SingleFlight,
  type SingleFlightOptions,
  TimeoutError,
  type Work,
} from "./singleflight.js";
