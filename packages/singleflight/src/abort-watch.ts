// One "abort" listener per AbortSignal, however many waiters watch it: many
// concurrent calls sharing one request signal (the usual request-handler
// pattern) add no listener each, so Node never warns of a listener leak.

type Callback = () => void;

interface Watched {
  /** The one callback, as nearly always (a request's signal, one waiter); a set while several watch. */
  callbacks: Callback | Set<Callback>;
  readonly onAbort: () => void;
}

const watched = new WeakMap<AbortSignal, Watched>();

/**
 * Calls `callback` once when `signal` aborts, unless {@link unwatchAbort} is
 * called first. The signal gets one listener for all its callbacks; it is
 * removed when the last callback is unwatched. `signal` must not be aborted yet.
 */
export function watchAbort(signal: AbortSignal, callback: Callback): void {
  const entry = watched.get(signal);
  if (entry === undefined) {
    const watch: Watched = {
      callbacks: callback,
      onAbort: () => {
        watched.delete(signal);
        const callbacks = watch.callbacks;
        if (typeof callbacks === "function") callbacks();
        else for (const each of callbacks) each();
      },
    };
    watched.set(signal, watch);
    signal.addEventListener("abort", watch.onAbort, { once: true });
  } else if (typeof entry.callbacks === "function") {
    entry.callbacks = new Set([entry.callbacks, callback]);
  } else {
    entry.callbacks.add(callback);
  }
}

/** Stops watching `signal` for `callback` (a no-op once it aborted or was unwatched). */
export function unwatchAbort(signal: AbortSignal, callback: Callback): void {
  const entry = watched.get(signal);
  if (entry === undefined) return;
  const callbacks = entry.callbacks;
  if (typeof callbacks === "function") {
    if (callbacks !== callback) return;
  } else if (!callbacks.delete(callback) || callbacks.size > 0) {
    return;
  }
  watched.delete(signal);
  signal.removeEventListener("abort", entry.onAbort);
}
