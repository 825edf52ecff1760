// SingleFlight: collapses concurrent calls for the same key into one — the
// first caller starts the work, later callers wait on the same promise, and
// the key is forgotten as soon as the work settles (a deduplicator, not a cache).
import { Cancel } from "./cancel.js";
import { hasLeft, type Leave, unwatchLeave, watchLeave } from "./leave.js";
import type { Receiver } from "./receiver.js";

/** Options for {@link SingleFlight}. */
export interface SingleFlightOptions {
  /**
   * Milliseconds after which a call that has not settled is abandoned: its
   * signal aborts with a `TimeoutError`, every waiter rejects with it, and the
   * key is free for a new call. Default `0`: no timeout (a call that never
   * settles wedges its key until {@link SingleFlight.forget}). Costs one timer
   * per call when set.
   */
  timeout?: number;
}

/** Per-caller options for {@link SingleFlight.do}. */
export interface DoOptions {
  /**
   * Aborts this caller's wait only: it rejects at once with the signal's
   * reason (an `AbortError` by default) while the shared call goes on for
   * the others. When every waiter of a call has aborted, the call's own
   * signal aborts too and the key is forgotten.
   */
  signal?: AbortSignal;
}

/** The work a call runs; `signal` aborts when no waiter is left or on timeout. */
export type Work<T> = (signal: AbortSignal) => Promise<T> | T;

/**
 * The work a {@link SingleFlight.join} call runs for `key`; `cancel` fires
 * when no waiter is left or on timeout (its `signal` is made only if read).
 * `key` is passed so that one function can serve every key.
 */
export type CancellableWork<T> = (cancel: Cancel, key: string) => Promise<T> | T;

/**
 * The work a {@link SingleFlight.joinTo} call runs for `key`: it reports its
 * outcome to `done`, at once or later, instead of returning a promise.
 * `cancel` is as {@link CancellableWork}'s. A throw counts as `done.reject`.
 */
export type ReceivingWork<T> = (cancel: Cancel, key: string, done: Receiver<T>) => void;

/**
 * A waiter: settled by its call, or (with a `leave`) by leaving first. A
 * waiter without `leave` is one of {@link SingleFlight.joinTo}'s that cannot leave.
 */
interface Waiter<T> {
  readonly receiver: Receiver<T>;
  readonly leave: Leave | undefined;
  readonly onLeave: (() => void) | undefined;
}

/** One call in flight for a key, and who waits on it; also the receiver its work reports to. */
class Flight<T> implements Receiver<T> {
  phase: "running" | "settled" = "running";
  /** Fires when every waiter that could leave has left, or on timeout. */
  readonly cancel = new Cancel();
  /** Waiters that can still leave; `Infinity` once one that cannot has joined. */
  leavable = 0;
  /** The waiters (every one of `joinTo`'s, and `join`'s that can leave): one, as nearly always, or several. */
  waiters: Waiter<T> | Waiter<T>[] | undefined;
  /** The waiters that cannot leave share one promise, made when the first joins. */
  shared:
    | { promise: Promise<T>; resolve(value: T): void; reject(error: unknown): void }
    | undefined;
  timer: ReturnType<typeof setTimeout> | undefined;

  constructor(
    readonly key: string,
    /** Its SingleFlight's flights, to forget its key when it settles. */
    private readonly flights: Map<string, Flight<T>>,
  ) {}

  resolve(value: T): void {
    this.settle(true, value);
  }

  reject(error: unknown): void {
    this.settle(false, error);
  }

  /**
   * The call's outcome (or its timeout): the key is forgotten, then every
   * waiter still waiting hears of it. A later outcome (the work settling
   * after its timeout) is ignored.
   */
  settle(ok: boolean, outcome: unknown): void {
    if (this.phase === "settled") return;
    this.phase = "settled";
    if (this.timer !== undefined) clearTimeout(this.timer);
    if (this.flights.get(this.key) === this) this.flights.delete(this.key);
    const waiters = this.waiters;
    this.waiters = undefined;
    const shared = this.shared;
    if (shared !== undefined) {
      if (ok) shared.resolve(outcome as T);
      else shared.reject(outcome);
    }
    if (waiters === undefined) return;
    if (!Array.isArray(waiters)) {
      settleWaiter(waiters, ok, outcome);
      return;
    }
    // Every waiter is told even if a receiver throws (a bug in it must not
    // leave the others waiting); the first error is thrown after them.
    let failure: { error: unknown } | undefined;
    for (const waiter of waiters) {
      try {
        settleWaiter(waiter, ok, outcome);
      } catch (error) {
        failure ??= { error };
      }
    }
    if (failure !== undefined) throw failure.error;
  }
}

/** The error a call rejects with when {@link SingleFlightOptions.timeout} passes. */
export class TimeoutError extends Error {
  override readonly name = "TimeoutError";
}

/**
 * Concurrent calls for one key share one execution.
 *
 * ```ts
 * const flight = new SingleFlight<Uint8Array>({ timeout: 5_000 });
 * const value = await flight.do(key, (signal) => db.load(key, { signal }));
 * ```
 */
export class SingleFlight<T> {
  private readonly flights = new Map<string, Flight<T>>();
  private readonly timeout: number;

  constructor(options: SingleFlightOptions = {}) {
    const timeout = options.timeout ?? 0;
    if (!Number.isFinite(timeout) || timeout < 0) {
      throw new RangeError(`SingleFlight: timeout must be a finite number >= 0, got ${timeout}`);
    }
    this.timeout = timeout;
  }

  /** Number of keys with a call in flight. */
  get size(): number {
    return this.flights.size;
  }

  /** Whether a call for `key` is in flight (a `do` now would join it). */
  has(key: string): boolean {
    return this.flights.has(key);
  }

  /**
   * Runs `work` for `key`, or joins the call already in flight for it.
   * Every caller gets the shared result or error.
   */
  do(key: string, work: Work<T>, options?: DoOptions): Promise<T> {
    return this.join(key, (cancel) => work(cancel.signal), options?.signal);
  }

  /**
   * As {@link SingleFlight.do}, for callers that pass cancellation as a
   * {@link Cancel}: `work` gets the call's `Cancel` (no AbortSignal unless it
   * reads `cancel.signal`), and `leave` (a `Cancel` or an AbortSignal)
   * abandons this caller's wait only, as `do`'s `signal` does.
   */
  join(key: string, work: CancellableWork<T>, leave?: Leave): Promise<T> {
    if (leave !== undefined && hasLeft(leave)) return Promise.reject(leave.reason);
    let flight = this.flights.get(key);
    if (flight === undefined) flight = this.start(key, work);
    if (leave === undefined) {
      flight.leavable = Number.POSITIVE_INFINITY;
      if (flight.shared === undefined) flight.shared = sharedPromise<T>();
      return flight.shared.promise;
    }
    flight.leavable++;
    return this.wait(flight, leave);
  }

  /**
   * As {@link SingleFlight.join}, with the outcome reported to `receiver`
   * instead of a promise: for servers that answer many calls, each without a
   * promise of its own. `receiver` is called synchronously when the call
   * settles (or at once, if `leave` has fired or `work` reports at once).
   * A call started here runs `work` as a {@link ReceivingWork}.
   */
  joinTo(key: string, work: ReceivingWork<T>, receiver: Receiver<T>, leave?: Leave): void {
    if (leave !== undefined && hasLeft(leave)) {
      receiver.reject(leave.reason);
      return;
    }
    const running = this.flights.get(key);
    const flight = running ?? this.newFlight(key);
    const waiter: Waiter<T> =
      leave === undefined
        ? { receiver, leave, onLeave: undefined }
        : { receiver, leave, onLeave: () => this.leave(flight, waiter) };
    if (leave === undefined) flight.leavable = Number.POSITIVE_INFINITY;
    else flight.leavable++;
    addWaiter(flight, waiter);
    // The waiter is in place before the work runs: it may report at once.
    if (running === undefined) {
      try {
        work(flight.cancel, key, flight);
      } catch (error) {
        flight.reject(error);
      }
    }
    if (leave !== undefined && flight.phase === "running") watchLeave(leave, waiter.onLeave!);
  }

  /**
   * Forgets the call in flight for `key`: its waiters still get its result,
   * but the next `do` starts a new call. Use it when the result of a call
   * already running is known to be stale (the key was just invalidated).
   */
  forget(key: string): void {
    this.flights.delete(key);
  }

  /** A flight for `key`, registered, its timeout running (if set); its work not started. */
  private newFlight(key: string): Flight<T> {
    const flight = new Flight<T>(key, this.flights);
    this.flights.set(key, flight);
    if (this.timeout > 0) {
      flight.timer = setTimeout(() => {
        const error = new TimeoutError(`call did not settle within ${this.timeout} ms`);
        flight.cancel.cancel(error);
        flight.reject(error);
      }, this.timeout);
    }
    return flight;
  }

  private start(key: string, work: CancellableWork<T>): Flight<T> {
    const flight = this.newFlight(key);
    let run: Promise<T>;
    try {
      run = Promise.resolve(work(flight.cancel, key));
    } catch (error) {
      // Settled in a microtask like any outcome: the caller is not a waiter yet.
      run = Promise.reject(error);
    }
    run.then(
      (value) => flight.resolve(value),
      (error: unknown) => flight.reject(error),
    );
    return flight;
  }

  /** A waiter that can leave: its own promise, settled by the call or by `leave`. */
  private wait(flight: Flight<T>, leave: Leave): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const waiter: Waiter<T> = {
        receiver: { resolve, reject },
        leave,
        onLeave: () => this.leave(flight, waiter),
      };
      addWaiter(flight, waiter);
      watchLeave(leave, waiter.onLeave!);
    });
  }

  /** `waiter` left: it rejects now; the last to leave cancels the call and frees the key. */
  private leave(flight: Flight<T>, waiter: Waiter<T>): void {
    const waiters = flight.waiters;
    if (waiters === waiter) {
      flight.waiters = undefined;
    } else if (Array.isArray(waiters)) {
      const at = waiters.indexOf(waiter);
      if (at < 0) return;
      waiters.splice(at, 1);
    } else {
      return; // settled already
    }
    const reason = waiter.leave!.reason;
    waiter.receiver.reject(reason);
    flight.leavable--;
    if (flight.leavable === 0) {
      if (this.flights.get(flight.key) === flight) this.flights.delete(flight.key);
      flight.cancel.cancel(reason);
    }
  }
}

function addWaiter<T>(flight: Flight<T>, waiter: Waiter<T>): void {
  const waiters = flight.waiters;
  if (waiters === undefined) flight.waiters = waiter;
  else if (Array.isArray(waiters)) waiters.push(waiter);
  else flight.waiters = [waiters, waiter];
}

function settleWaiter<T>(waiter: Waiter<T>, ok: boolean, outcome: unknown): void {
  if (waiter.leave !== undefined) unwatchLeave(waiter.leave, waiter.onLeave!);
  if (ok) waiter.receiver.resolve(outcome as T);
  else waiter.receiver.reject(outcome);
}

/** One promise and its settle functions, for the waiters that cannot leave. */
function sharedPromise<T>(): NonNullable<Flight<T>["shared"]> {
  let resolve!: (value: T) => void;
  let reject!: (error: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  // A caller that drops its promise (fire and forget) causes no unhandled rejection.
  promise.catch(() => {});
  return { promise, resolve, reject };
}
