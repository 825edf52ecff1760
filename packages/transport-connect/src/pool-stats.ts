// What ConnectPool.stats() returns: the pool's counters and membership, as plain data.
import type { LoadLimiterStats } from "@distcache/core";
import type { BreakerState } from "./client/circuit-breaker.js";
import type { ServerGuardStats } from "./server/guard.js";
import type { PeerRequestCounts } from "./server/host.js";
import type { AuthStats } from "./server/peer-identity.js";

/** Counters of one pool; see {@link ConnectPool.stats}. Plain data: `JSON.stringify` takes it. */
export interface PoolStats {
  /** Peer requests this node has served, by method. */
  readonly received: Readonly<PeerRequestCounts>;
  /** Members, this node included. */
  readonly members: readonly string[];
  /** This node's membership version (FNV-1a 64 of the sorted members), 16 hex digits. */
  readonly membershipVersion: string;
  /** Each peer's circuit breaker. */
  readonly peers: readonly PeerHealth[];
  /** What the server shed or refused: requests in flight, overload answers, connections. */
  readonly guard: ServerGuardStats;
  /** Calls refused for want of credentials (UNAUTHENTICATED) or permission (PERMISSION_DENIED). */
  readonly auth: AuthStats;
  /** The node-wide bound on getter calls (`maxLoadsInFlight`): running, queued, refused. */
  readonly loads: LoadLimiterStats;
}

/** How this node sees one peer; see {@link PoolStats.peers}. */
export interface PeerHealth {
  readonly address: string;
  /** `open`: calls are refused without trying; `half-open`: the next call is a probe. */
  readonly breaker: BreakerState;
  /** Times the breaker opened. */
  readonly opened: number;
  /** Calls refused without trying while it was open. */
  readonly refused: number;
}
