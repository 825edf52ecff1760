export {
  type DoOptions,
  SingleFlight,
  type SingleFlightOptions,
  TimeoutError,
  type Work,
} from "./singleflight.js";
