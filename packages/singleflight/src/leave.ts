// How a waiter leaves a wait: an AbortSignal or a Cancel, watched alike, so
// every layer that passes "stop waiting" on (singleflight, a transport's
// batcher) takes either without a branch of its own.
import { unwatchAbort, watchAbort } from "./abort-watch.js";
import { type Cancel, isCancel } from "./cancel.js";

/** How a waiter can leave: an AbortSignal, or a cheaper {@link Cancel}. */
export type Leave = AbortSignal | Cancel;

/** Whether `leave` has fired (aborted, or cancelled); its `reason` says why. */
export function hasLeft(leave: Leave): boolean {
  return isCancel(leave) ? leave.cancelled : leave.aborted;
}

/**
 * Calls `callback` once when `leave` fires, unless {@link unwatchLeave} is
 * called first. An AbortSignal gets one listener for all its callbacks
 * (abort-watch.ts). `leave` must not have fired yet: check {@link hasLeft}.
 */
export function watchLeave(leave: Leave, callback: () => void): void {
  if (isCancel(leave)) leave.onCancel(callback);
  else watchAbort(leave, callback);
}

/** Stops watching `leave` for `callback` (a no-op once it fired or was unwatched). */
export function unwatchLeave(leave: Leave, callback: () => void): void {
  if (isCancel(leave)) leave.offCancel(callback);
  else unwatchAbort(leave, callback);
}
