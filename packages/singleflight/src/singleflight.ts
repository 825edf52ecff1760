// SingleFlight: collapses concurrent calls for the same key into one — the
// first caller starts the work, later callers wait on the same promise, and
// the key is forgotten as soon as the work settles (a deduplicator, not a cache).
import { unwatchAbort, watchAbort } from "./abort-watch.js";
import { Cancel } from "./cancel.js";

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
 * The work a {@link SingleFlight.join} call runs; `cancel` fires when no
 * waiter is left or on timeout (its `signal` is made only if read).
 */
export type CancellableWork<T> = (cancel: Cancel) => Promise<T> | T;

/** How a waiter can leave: an AbortSignal, or a cheaper {@link Cancel}. */
export type Leave = AbortSignal | Cancel;

interface Flight<T> {
  readonly promise: Promise<T>;
  /** Fires when every waiter that could leave has left, or on timeout. */
  readonly cancel: Cancel;
  /** Waiters that can still leave; `Infinity` once one that cannot has joined. */
  waiters: number;
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
    if (leave !== undefined && isLeft(leave)) return Promise.reject(leave.reason);
    let flight = this.flights.get(key);
    if (flight === undefined) flight = this.start(key, work);
    if (leave === undefined) {
      flight.waiters = Number.POSITIVE_INFINITY;
      return flight.promise;
    }
    flight.waiters++;
    return this.waitOrLeave(key, flight, leave);
  }

  /**
   * Forgets the call in flight for `key`: its waiters still get its result,
   * but the next `do` starts a new call. Use it when the result of a call
   * already running is known to be stale (the key was just invalidated).
   */
  forget(key: string): void {
    this.flights.delete(key);
  }

  private start(key: string, work: CancellableWork<T>): Flight<T> {
    const cancel = new Cancel();
    let timer: ReturnType<typeof setTimeout> | undefined;
    let run: Promise<T>;
    if (this.timeout === 0) {
      // No timeout: the work's own promise, no wrapper (a group's read of a
      // key from its peers runs here once per miss).
      try {
        run = Promise.resolve(work(cancel));
      } catch (error) {
        run = Promise.reject(error);
      }
    } else {
      run = new Promise<T>((resolve, reject) => {
        timer = setTimeout(() => {
          const error = new TimeoutError(`call did not settle within ${this.timeout} ms`);
          cancel.cancel(error);
          reject(error);
        }, this.timeout);
        // Settle through then() rather than resolve(promise): resolving with a
        // promise would lock this one to it, and the timeout could not reject.
        try {
          Promise.resolve(work(cancel)).then(resolve, reject);
        } catch (error) {
          reject(error);
        }
      });
    }
    // The key is forgotten as the call settles, before any waiter hears of it.
    const settled = () => {
      if (timer !== undefined) clearTimeout(timer);
      if (this.flights.get(key) === flight) this.flights.delete(key);
    };
    const flight: Flight<T> = {
      promise: run.then(
        (value) => {
          settled();
          return value;
        },
        (error: unknown) => {
          settled();
          throw error;
        },
      ),
      cancel,
      waiters: 0,
    };
    // When every waiter has left nobody observes the result: not an unhandled rejection.
    flight.promise.catch(() => {});
    this.flights.set(key, flight);
    return flight;
  }

  private waitOrLeave(key: string, flight: Flight<T>, leave: Leave): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const onLeave = () => {
        reject(leave.reason);
        flight.waiters--;
        if (flight.waiters === 0) {
          if (this.flights.get(key) === flight) this.flights.delete(key);
          flight.cancel.cancel(leave.reason);
        }
      };
      // An AbortSignal gets one listener for all its waiters (abort-watch.ts).
      if (leave instanceof Cancel) leave.onCancel(onLeave);
      else watchAbort(leave, onLeave);
      flight.promise.then(
        (value) => {
          stopWatching(leave, onLeave);
          resolve(value);
        },
        (error: unknown) => {
          stopWatching(leave, onLeave);
          reject(error);
        },
      );
    });
  }
}

function isLeft(leave: Leave): boolean {
  return leave instanceof Cancel ? leave.cancelled : leave.aborted;
}

function stopWatching(leave: Leave, onLeave: () => void): void {
  if (leave instanceof Cancel) leave.offCancel(onLeave);
  else unwatchAbort(leave, onLeave);
}
