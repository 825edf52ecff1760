// Types of attacks.mjs, written by hand so that TypeScript tests can import
// the plain-JS attack clients that the bench shares.

/** The loopback address attackers connect from (the good client uses 127.0.0.1). */
export const ATTACKER_ADDRESS: string;

/** A running attack; `stop()` destroys every connection it opened. */
export interface Attack {
  readonly streams: number;
  stop(): void;
}

/** The attacks by name: `(url, group, overrides)` starts one. */
export const ATTACKS: Readonly<
  Record<
    string,
    (url: string, group: string, overrides?: Record<string, unknown>) => Promise<Attack>
  >
>;

/** What the good client saw. */
export interface GoodClientResult {
  total: number;
  ok: number;
  successRate: number;
  p50: number;
  p99: number;
  /** Failed Gets by reason ("timeout", "grpc-status 8: ...", "reset N"). */
  failures: Record<string, number>;
}

export interface GoodClient {
  stop(): Promise<void>;
  result(): GoodClientResult;
}

/** gRPC Gets of `key` in `concurrency` loops on one session (or a fresh connection each with `fresh`). */
export function goodClient(
  url: string,
  options: {
    group: string;
    key: string;
    concurrency?: number;
    timeoutMs?: number;
    fresh?: boolean;
  },
): GoodClient;

/** The resident set size of process `pid` in bytes (Linux /proc), or undefined. */
export function rssOf(pid: number): Promise<number | undefined>;

/** `FetchManyRequest { sender { address }, group, keys }`, encoded. */
export function fetchManyRequest(sender: string, group: string, keys: readonly string[]): Buffer;
