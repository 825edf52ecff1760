export { Cancel, isCancel } from "./cancel.js";
export { hasLeft, type Leave, unwatchLeave, watchLeave } from "./leave.js";
export { type Receiver, reportTo } from "./receiver.js";
export {
  type CancellableWork,
  type DoOptions,
  type ReceivingWork,
  SingleFlight,
  type SingleFlightOptions,
  TimeoutError,
  type Work,
} from "./singleflight.js";
