// Cancel: a one-shot cancellation for code that passes "stop waiting" from
// layer to layer, without the EventTarget, Event and listener records an
// AbortController costs; an AbortSignal is made only for an API that asks.

type Callback = () => void;

/**
 * A cancellation that fires once, with a reason, and calls the callbacks
 * registered with {@link Cancel.onCancel}. Where an API needs an
 * `AbortSignal`, {@link Cancel.signal} makes one, on first read, that aborts
 * with it.
 *
 * Why: a forwarded cache miss passes cancellation through several layers
 * (the request, the shared load, the peer batch). An AbortController per
 * hop, with an "abort" listener each, is most of what such a miss allocates.
 * A `Cancel` is one small object and, nearly always, one callback.
 *
 * ```ts
 * const cancel = new Cancel();
 * const value = flight.join(key, (shared) => load(key, shared), cancel);
 * cancel.cancel(new Error("the client left")); // this caller stops waiting
 * ```
 */
export class Cancel {
  private phase: "open" | "cancelled" = "open";
  private why: unknown;
  /** The one callback, as nearly always; a set while several wait (one Cancel shared by many calls). */
  private callbacks: Callback | Set<Callback> | undefined;
  private controller: AbortController | undefined;

  /** Whether {@link Cancel.cancel} was called. */
  get cancelled(): boolean {
    return this.phase === "cancelled";
  }

  /** The reason given to {@link Cancel.cancel}; `undefined` while open. */
  get reason(): unknown {
    return this.why;
  }

  /** An AbortSignal that aborts with this (already aborted if this is), made on first read. */
  get signal(): AbortSignal {
    let controller = this.controller;
    if (controller === undefined) {
      controller = new AbortController();
      this.controller = controller;
      if (this.phase === "cancelled") controller.abort(this.why);
    }
    return controller.signal;
  }

  /**
   * Fires: records `reason` (default: an `AbortError` DOMException, as
   * `AbortController.abort()` gives), aborts {@link Cancel.signal} if it was
   * made, then calls each registered callback once. Later calls do nothing.
   *
   * @throws the first error a callback threw, once every callback has run.
   */
  cancel(reason?: unknown): void {
    if (this.phase === "cancelled") return;
    this.phase = "cancelled";
    this.why =
      reason === undefined ? new DOMException("This operation was aborted", "AbortError") : reason;
    const callbacks = this.callbacks;
    this.callbacks = undefined;
    this.controller?.abort(this.why);
    if (typeof callbacks === "function") {
      callbacks();
    } else if (callbacks !== undefined) {
      // Every callback runs even if one throws (one caller's failure must not
      // keep the others waiting); the first error is thrown after them.
      let failure: { error: unknown } | undefined;
      for (const each of callbacks) {
        try {
          each();
        } catch (error) {
          failure ??= { error };
        }
      }
      if (failure !== undefined) throw failure.error;
    }
  }

  /**
   * Calls `callback` once when this fires, unless {@link Cancel.offCancel}
   * removes it first; adding one already added does nothing (as
   * `addEventListener`). Must not be cancelled already: check
   * {@link Cancel.cancelled} first.
   */
  onCancel(callback: Callback): void {
    if (this.phase === "cancelled") throw new Error("Cancel: already cancelled");
    const callbacks = this.callbacks;
    if (callbacks === undefined) this.callbacks = callback;
    else if (typeof callbacks === "function") {
      if (callbacks !== callback) this.callbacks = new Set([callbacks, callback]);
    } else callbacks.add(callback);
  }

  /** Removes `callback` (a no-op if it was not added, or once fired). */
  offCancel(callback: Callback): void {
    const callbacks = this.callbacks;
    if (callbacks === callback) {
      this.callbacks = undefined;
    } else if (
      typeof callbacks === "object" &&
      callbacks.delete(callback) &&
      callbacks.size === 0
    ) {
      this.callbacks = undefined;
    }
  }
}

/**
 * Whether `value` is a {@link Cancel}, by its shape rather than `instanceof`,
 * so a Cancel made by another copy of this package (two versions installed
 * side by side) still counts; an AbortSignal does not.
 */
export function isCancel(value: unknown): value is Cancel {
  return (
    typeof value === "object" &&
    value !== null &&
    typeof (value as Partial<Cancel>).onCancel === "function" &&
    typeof (value as Partial<Cancel>).offCancel === "function"
  );
}
