// Counts and times of the calls this node makes to one peer, by method and
// status code: what `distcache_peer_requests_total` and
// `distcache_peer_request_duration_seconds` report, read at scrape time.
import { Code, ConnectError } from "@connectrpc/connect";
import { codeToString } from "@connectrpc/connect/protocol-connect";

/** PeerService methods as the metrics name them. */
export type PeerMethod = "Fetch" | "FetchMany" | "Store" | "StoreMany" | "Invalidate";

/** Upper bounds, in seconds, of the peer-call duration buckets. */
export const PEER_SECONDS_BUCKETS: readonly number[] = Object.freeze([
  0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
]);

/** Calls of one method: per status code, and their durations in {@link PEER_SECONDS_BUCKETS}. */
export interface PeerMethodCalls {
  /** Calls by Connect code name (`"ok"`, `"unavailable"`, `"deadline_exceeded"`, ...). */
  readonly codes: ReadonlyMap<string, number>;
  /** Calls per bucket, not cumulative; the last entry counts the slower ones. */
  readonly counts: readonly number[];
  readonly sum: number;
  readonly count: number;
}

class MethodCalls implements PeerMethodCalls {
  readonly codes = new Map<string, number>();
  readonly counts = new Array<number>(PEER_SECONDS_BUCKETS.length + 1).fill(0);
  sum = 0;
  count = 0;
}

/** The peer calls of one peer client. Calls the breaker refused are not calls and are not counted. */
export class PeerCalls {
  private readonly methods = new Map<PeerMethod, MethodCalls>();

  /** Records one call of `method` that took `seconds` and ended with `error` (none: OK). */
  record(method: PeerMethod, seconds: number, error?: unknown): void {
    let calls = this.methods.get(method);
    if (calls === undefined) {
      calls = new MethodCalls();
      this.methods.set(method, calls);
    }
    const code = error === undefined ? "ok" : codeToString(codeOf(error));
    calls.codes.set(code, (calls.codes.get(code) ?? 0) + 1);
    let bucket = 0;
    while (bucket < PEER_SECONDS_BUCKETS.length && seconds > PEER_SECONDS_BUCKETS[bucket]!)
      bucket++;
    calls.counts[bucket]!++;
    calls.sum += seconds;
    calls.count++;
  }

  /** The calls so far, by method (live objects: read, do not keep). */
  byMethod(): ReadonlyMap<PeerMethod, PeerMethodCalls> {
    return this.methods;
  }
}

function codeOf(error: unknown): Code {
  if (error instanceof ConnectError) return error.code;
  if (error instanceof Error && error.name === "AbortError") return Code.Canceled;
  return ConnectError.from(error).code;
}
