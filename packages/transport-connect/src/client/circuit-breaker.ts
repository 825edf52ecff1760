// The circuit breaker kept per peer: closed, open or half-open, and the
// tickets through which each call reports how it ended.

/** Options for {@link CircuitBreaker}. */
export interface CircuitBreakerOptions {
  /** Failures in a row that open the breaker. Default `3`. */
  failureThreshold?: number;
  /** First backoff after opening, in ms. Default `250`. */
  baseBackoffMs?: number;
  /** Longest backoff, in ms. Default `10_000`. */
  maxBackoffMs?: number;
  /** Clock in ms (tests). Default `performance.now`. */
  now?: () => number;
  /** Uniform random in [0, 1) for jitter (tests). Default `Math.random`. */
  random?: () => number;
}

/** The breaker's state, as {@link CircuitBreaker.state} reports it. */
export type BreakerState = "closed" | "open" | "half-open";

/** One call let through by {@link CircuitBreaker.admit}; report how it ended. */
export interface BreakerTicket {
  /** The peer answered (whatever the answer). */
  succeeded(): void;
  /** The peer could not be reached, or did not answer in time. */
  failed(): void;
  /** The caller gave up before an answer: says nothing about the peer. */
  abandoned(): void;
}

const NOOP = () => {};

/**
 * Remembers that a peer is failing, so callers stop paying a connection
 * failure or a whole timeout on every call to it.
 *
 * Closed: calls go through; `failureThreshold` failures in a row open it.
 * Open: calls are refused at once for a backoff that doubles on every failed
 * probe (from `baseBackoffMs` to `maxBackoffMs`, with ±20% jitter so nodes do
 * not probe a recovering peer in step). Half-open: once the backoff has
 * passed, one call goes through as a probe; its success closes the breaker,
 * its failure opens it again for a longer backoff.
 *
 * Some calls must be tried even while the breaker is open (an invalidation:
 * skipping it would leave a live node serving a deleted value).
 * {@link CircuitBreaker.admitAlways} lets them through; one that succeeds
 * closes the breaker, one that fails changes nothing.
 */
export class CircuitBreaker {
  private readonly failureThreshold: number;
  private readonly baseBackoffMs: number;
  private readonly maxBackoffMs: number;
  private readonly now: () => number;
  private readonly random: () => number;
  private failuresInRow = 0;
  private openedTimes = 0;
  private retryAt = 0;
  private probing = false;
  /** Calls refused while open, since the breaker was made. */
  refused = 0;
  /** Times the breaker opened, since it was made. */
  opened = 0;
  /**
   * Called on every change of {@link state} the breaker makes itself: opened,
   * probe let through (half-open), closed. Set by the pool for its events.
   */
  onChange: ((state: BreakerState) => void) | undefined;

  constructor(options: CircuitBreakerOptions = {}) {
    this.failureThreshold = options.failureThreshold ?? 3;
    this.baseBackoffMs = options.baseBackoffMs ?? 250;
    this.maxBackoffMs = options.maxBackoffMs ?? 10_000;
    this.now = options.now ?? (() => performance.now());
    this.random = options.random ?? Math.random;
    if (!Number.isInteger(this.failureThreshold) || this.failureThreshold < 1) {
      throw new RangeError(
        `failureThreshold must be an integer >= 1, got ${this.failureThreshold}`,
      );
    }
  }

  get state(): BreakerState {
    if (this.openedTimes === 0) return "closed";
    return this.probing || this.now() >= this.retryAt ? "half-open" : "open";
  }

  /** Milliseconds until a probe may go (0 when calls go through). */
  retryInMs(): number {
    return this.openedTimes === 0 ? 0 : Math.max(0, Math.ceil(this.retryAt - this.now()));
  }

  /**
   * Lets one call through and returns its ticket, or `undefined` when the
   * breaker is open (or half-open with its probe already out).
   */
  admit(): BreakerTicket | undefined {
    if (this.openedTimes === 0) return this.closedTicket;
    if (this.probing || this.now() < this.retryAt) {
      this.refused++;
      return undefined;
    }
    this.probing = true;
    this.onChange?.("half-open");
    return this.probeTicket;
  }

  /**
   * Lets a call through whatever the state. Its success closes the breaker;
   * its failure counts only while the breaker is closed.
   */
  admitAlways(): BreakerTicket {
    return this.openedTimes === 0 ? this.closedTicket : this.forcedTicket;
  }

  private readonly forcedTicket: BreakerTicket = {
    succeeded: () => {
      this.failuresInRow = 0;
      if (this.openedTimes === 0) return;
      this.openedTimes = 0;
      this.onChange?.("closed");
    },
    failed: NOOP,
    abandoned: NOOP,
  };

  private readonly closedTicket: BreakerTicket = {
    succeeded: () => {
      this.failuresInRow = 0;
    },
    failed: () => {
      // A late failure of a call admitted before the breaker opened changes nothing.
      if (this.openedTimes > 0) return;
      if (++this.failuresInRow >= this.failureThreshold) this.open();
    },
    abandoned: NOOP,
  };

  private readonly probeTicket: BreakerTicket = {
    succeeded: () => {
      this.probing = false;
      this.failuresInRow = 0;
      // A forced call may have closed it while the probe was out.
      if (this.openedTimes === 0) return;
      this.openedTimes = 0;
      this.onChange?.("closed");
    },
    failed: () => {
      this.probing = false;
      this.open();
    },
    abandoned: () => {
      this.probing = false;
    },
  };

  private open(): void {
    this.opened++;
    const backoff = Math.min(this.maxBackoffMs, this.baseBackoffMs * 2 ** this.openedTimes);
    this.openedTimes++;
    this.retryAt = this.now() + backoff * (0.8 + 0.4 * this.random());
    this.onChange?.("open");
  }
}
