// One "abort" listener per AbortSignal, however many waiters watch it: many
// concurrent calls sharing one request signal (the usual request-handler
// pattern) add no listener each, so Node never warns of a listener leak.

interface Watched {
  readonly callbacks: Set<() => void>;
  readonly onAbort: () => void;
}

const watched = new WeakMap<AbortSignal, Watched>();

/**
 * Calls `callback` once when `signal` aborts, unless {@link unwatchAbort} is
 * called first. The signal gets one listener for all its callbacks; it is
 * removed when the last callback is unwatched. `signal` must not be aborted yet.
 */
export function watchAbort(signal: AbortSignal, callback: () => void): void {
  let entry = watched.get(signal);
  if (entry === undefined) {
    const callbacks = new Set<() => void>();
    const onAbort = () => {
      watched.delete(signal);
      for (const each of callbacks) each();
    };
    entry = { callbacks, onAbort };
    watched.set(signal, entry);
    signal.addEventListener("abort", onAbort, { once: true });
  }
  entry.callbacks.add(callback);
}

/** Stops watching `signal` for `callback` (a no-op once it aborted or was unwatched). */
export function unwatchAbort(signal: AbortSignal, callback: () => void): void {
  const entry = watched.get(signal);
  if (entry === undefined || !entry.callbacks.delete(callback)) return;
  if (entry.callbacks.size === 0) {
    watched.delete(signal);
    signal.removeEventListener("abort", entry.onAbort);
  }
}
