// What a peer client does when a peer lacks a method (a node of an older
// version answers UNIMPLEMENTED): use the older method for a while, then try
// the newer one again.
import { Code, ConnectError } from "@connectrpc/connect";

/**
 * How long a peer that answered a method with UNIMPLEMENTED is sent the
 * older method instead (`Fetch` per key for `FetchMany`, `Store` per push for
 * `StoreMany`) before the newer one is tried again: long enough not to pay a
 * refused call per turn, short enough to pick up the peer once it is upgraded.
 */
export const FALLBACK_RETRY_MS = 60_000;

/** Remembers, for one method of one peer, that the peer lacks it. */
export class MethodFallback {
  /** `performance.now()` before which the peer is not sent the method. */
  private until = 0;

  constructor(private readonly retryMs = FALLBACK_RETRY_MS) {}

  /** Whether to send the older method now: the peer lacked this one less than `retryMs` ago. */
  active(): boolean {
    return performance.now() < this.until;
  }

  /**
   * Whether `error` says the peer lacks the method. If so, {@link active}
   * holds for the next `retryMs`.
   */
  lacks(error: unknown): boolean {
    if (!(error instanceof ConnectError) || error.code !== Code.Unimplemented) return false;
    this.until = performance.now() + this.retryMs;
    return true;
  }
}
