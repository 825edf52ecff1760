// Origin protection: a bound on getter calls in flight (per group, and
// node-wide through a limiter the groups share), with a bounded FIFO queue
// whose waiters leave when their signal aborts.

/** Thrown to a load refused because the limiter's queue is full. */
export class LoadsOverloadedError extends Error {
  override readonly name = "LoadsOverloadedError";
}

/** Counters and gauges of one {@link LoadLimiter}. */
export interface LoadLimiterStats {
  /** Getter calls running now. */
  readonly inFlight: number;
  /** Loads waiting for a slot now. */
  readonly queued: number;
  /** Loads refused because the queue was full. */
  readonly rejected: number;
}

/** A queued load; `grant` is cleared once it is granted or has left. */
interface Waiter {
  grant: (() => void) | undefined;
}

/**
 * At most `maxInFlight` holders at once; up to `maxQueued` more wait in
 * arrival order, and one past that is refused with
 * {@link LoadsOverloadedError}. `maxInFlight` `0` means no bound.
 *
 * {@link acquire} returns `undefined` when a slot is free (no promise on the
 * common path), else a promise of the slot; every slot taken is given back
 * with exactly one {@link release}.
 */
export class LoadLimiter {
  private running = 0;
  private rejected = 0;
  private readonly waiting: Waiter[] = [];
  /** Waiters in `waiting` that left (their grant is cleared). */
  private left = 0;
  /**
   * The refusal, made once: a flood of refused loads must stay cheap (no
   * stack trace per refusal), and its message names only the fixed limits.
   */
  private readonly overloaded: LoadsOverloadedError;

  /**
   * @param maxInFlight getter calls at once; `0`: no bound.
   * @param maxQueued loads waiting at most; `0`: none wait (refused at once).
   * @param label names the limit in the refusal message.
   * @throws RangeError for a bound that is not an integer >= 0.
   */
  constructor(
    readonly maxInFlight: number,
    readonly maxQueued: number,
    label: string,
  ) {
    for (const [name, value] of [
      ["maxInFlight", maxInFlight],
      ["maxQueued", maxQueued],
    ] as const) {
      if (!Number.isInteger(value) || value < 0) {
        throw new RangeError(`${name} must be an integer >= 0, got ${value}`);
      }
    }
    this.overloaded = new LoadsOverloadedError(
      `overloaded: ${label} loads at their limit (${maxInFlight} running, ${maxQueued} queued)`,
    );
  }

  /**
   * The refusal a load would get now (every slot taken and the queue full),
   * counted, or `undefined`: lets a caller refuse before it sets up a load.
   */
  refusal(): LoadsOverloadedError | undefined {
    if (this.maxInFlight === 0 || this.running < this.maxInFlight) return undefined;
    if (this.waiting.length - this.left < this.maxQueued) return undefined;
    this.rejected++;
    return this.overloaded;
  }

  /**
   * Takes a slot: `undefined` when taken at once, else a promise that
   * resolves once taken, or rejects with `signal`'s reason when it aborts
   * first, or at once with {@link LoadsOverloadedError} when the queue is full.
   */
  acquire(signal?: AbortSignal): Promise<void> | undefined {
    if (this.maxInFlight === 0 || this.running < this.maxInFlight) {
      this.running++;
      return undefined;
    }
    if (signal?.aborted) return Promise.reject(signal.reason);
    if (this.waiting.length - this.left >= this.maxQueued) {
      this.rejected++;
      return Promise.reject(this.overloaded);
    }
    return new Promise<void>((resolve, reject) => {
      const onAbort = () => {
        if (waiter.grant === undefined) return;
        waiter.grant = undefined;
        this.left++;
        reject(signal!.reason);
      };
      const waiter: Waiter = {
        grant: () => {
          signal?.removeEventListener("abort", onAbort);
          resolve();
        },
      };
      signal?.addEventListener("abort", onAbort, { once: true });
      this.waiting.push(waiter);
    });
  }

  /** Gives a slot back: the next waiter (if any) takes it. */
  release(): void {
    while (this.waiting.length > 0) {
      const next = this.waiting.shift()!;
      const grant = next.grant;
      if (grant === undefined) {
        this.left--;
        continue;
      }
      next.grant = undefined;
      grant(); // the slot passes on: `running` stays
      return;
    }
    this.running--;
  }

  stats(): LoadLimiterStats {
    return {
      inFlight: this.running,
      queued: this.waiting.length - this.left,
      rejected: this.rejected,
    };
  }
}

/**
 * Runs `load` holding a slot of each limiter in `limiters` (taken in order,
 * given back in reverse), so a getter call counts against its group's bound
 * and the node-wide one.
 */
export async function withLoadSlots<T>(
  limiters: readonly LoadLimiter[],
  signal: AbortSignal,
  load: () => Promise<T> | T,
): Promise<T> {
  let held = 0;
  try {
    for (const limiter of limiters) {
      const wait = limiter.acquire(signal);
      if (wait !== undefined) await wait;
      held++;
    }
    return await load();
  } finally {
    for (let i = held - 1; i >= 0; i--) limiters[i]!.release();
  }
}
