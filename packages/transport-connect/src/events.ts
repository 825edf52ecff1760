// The events a ConnectPool emits once per state change (for logs and alerts),
// and the typed emitter behind `pool.on` / `pool.off`.
import { EventEmitter } from "node:events";
import type { BreakerState } from "./client/circuit-breaker.js";

/** What each {@link ConnectPool} event carries. */
export interface PoolEvents {
  /** `serve()` bound its port; `address` is `host:port` as bound. */
  listening: { readonly address: string };
  /** The member list changed (the first `setPeers` included); `version` as in `PoolStats.membershipVersion`. */
  members: { readonly members: readonly string[]; readonly version: string };
  /** A peer's circuit breaker changed state. */
  breaker: { readonly peer: string; readonly state: BreakerState };
  /**
   * The server started (`active: true`) or stopped shedding requests for
   * `reason` (`"in-flight"`: `server.maxRequestsInFlight` reached;
   * `"event-loop-delay"`: `server.maxEventLoopDelayMs` passed). Stopped: no
   * request shed for that reason during a whole second.
   */
  shedding: { readonly reason: ShedReason; readonly active: boolean };
  /** `close()` began: health went NOT_SERVING, readiness 503; calls in flight are finishing. */
  draining: Record<string, never>;
  /** `close()` finished: sessions, peers and the admin listener are closed. */
  stopped: Record<string, never>;
}

/** Why the server answered a request at once instead of serving it. */
export type ShedReason = "in-flight" | "event-loop-delay";

/** A listener of event `E`. */
export type PoolListener<E extends keyof PoolEvents> = (event: PoolEvents[E]) => void;

/**
 * An EventEmitter typed by {@link PoolEvents}. A listener that throws does
 * not break the pool: the error is reported on `process` as a warning.
 */
export class PoolEmitter {
  private readonly emitter = new EventEmitter();

  on<E extends keyof PoolEvents>(event: E, listener: PoolListener<E>): void {
    this.emitter.on(event, listener);
  }

  off<E extends keyof PoolEvents>(event: E, listener: PoolListener<E>): void {
    this.emitter.off(event, listener);
  }

  emit<E extends keyof PoolEvents>(event: E, payload: PoolEvents[E]): void {
    for (const listener of this.emitter.listeners(event)) {
      try {
        (listener as PoolListener<E>)(payload);
      } catch (error) {
        // The pool's state change happened; a broken log line must not undo it.
        process.emitWarning(
          `ConnectPool "${event}" listener threw: ${error instanceof Error ? error.message : String(error)}`,
        );
      }
    }
  }
}
