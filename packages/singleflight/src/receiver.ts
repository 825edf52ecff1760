// Receiver: where a result goes when the caller passes an object instead of
// awaiting a promise; lets a layer that serves many calls hand on a result
// without a promise, a microtask and closures per call per layer.

/**
 * Takes the outcome of one call: exactly one of `resolve` and `reject` is
 * called, once. Called synchronously by whoever settles the call, so a
 * receiver must not throw and should return quickly (an answer's write, a
 * counter); the layers that call receivers do not guard against throws.
 */
export interface Receiver<T> {
  resolve(value: T): void;
  reject(error: unknown): void;
}

/** Hands `promise`'s outcome to `receiver`: where promise-based work meets a receiver. */
export function reportTo<T>(promise: PromiseLike<T>, receiver: Receiver<T>): void {
  promise.then(
    (value) => receiver.resolve(value),
    (error: unknown) => receiver.reject(error),
  );
}
