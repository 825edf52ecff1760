export { Cancel, isCancel } from "./cancel.js";
export {
  type CancellableWork,
  type DoOptions,
  type Leave,
  SingleFlight,
  type SingleFlightOptions,
  TimeoutError,
  type Work,
} from "./singleflight.js";
