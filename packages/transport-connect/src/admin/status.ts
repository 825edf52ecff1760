// The report behind `/status.json` and the status page: this node, its
// members with their breakers and call latency, its groups with hit rate,
// bytes against budget, items and loads. Plain data, built on request.
import type { Group } from "@distcache/core";
import { PEER_SECONDS_BUCKETS, type PeerCalls } from "../client/peer-calls.js";
import type { PoolStats } from "../pool-stats.js";
import type { HealthPhase } from "../server/health.js";

/** `GET /status.json`. */
export interface StatusReport {
  /** This node's member address. */
  readonly node: string;
  /** `host:port` the main port is bound to, once listening. */
  readonly listening: string | null;
  readonly phase: HealthPhase;
  /** `close()` has begun. */
  readonly draining: boolean;
  readonly version: string;
  readonly membershipVersion: string;
  readonly members: readonly MemberStatus[];
  readonly groups: readonly GroupStatus[];
  readonly server: {
    readonly inFlight: number;
    readonly sessions: number;
    readonly shedInFlight: number;
    readonly shedEventLoopDelay: number;
    readonly eventLoopDelayMs: number;
  };
}

/** One member as this node sees it. */
export interface MemberStatus {
  readonly address: string;
  readonly self: boolean;
  /** `null` for this node. */
  readonly breaker: "closed" | "open" | "half-open" | null;
  /** Times its breaker opened. */
  readonly breakerOpened: number;
  /** Calls this node made to it, and how many did not end OK. */
  readonly calls: number;
  readonly failedCalls: number;
  /** Mean duration of those calls, ms (`null`: none yet). */
  readonly meanMs: number | null;
  /** Upper bound of the bucket holding the 99th percentile, ms (`null`: none yet; `Infinity` is written as `null` too). */
  readonly p99Ms: number | null;
}

/** One group on this node. */
export interface GroupStatus {
  readonly name: string;
  readonly gets: number;
  readonly hits: number;
  /** hits / gets, `null` before the first get. */
  readonly hitRate: number | null;
  readonly errors: number;
  readonly bytes: number;
  /** The byte budget; `0`: unbounded. */
  readonly limitBytes: number;
  readonly items: number;
  readonly evictions: number;
  /** Misses that started a load (from a peer or the getter). */
  readonly loads: number;
  /** Getter calls on this node, and how many failed. */
  readonly localLoads: number;
  readonly localLoadErrors: number;
  readonly loadsInFlight: number;
  /** Mean getter duration, ms (`null`: none yet). */
  readonly meanLoadMs: number | null;
}

/** What the report is built from. */
export interface StatusSource {
  readonly self: string;
  listening(): string | undefined;
  phase(): HealthPhase;
  draining(): boolean;
  readonly version: string;
  stats(): PoolStats;
  groups(): Iterable<Group>;
  peerCalls(peer: string): PeerCalls | undefined;
}

export function statusReport(source: StatusSource): StatusReport {
  const stats = source.stats();
  const peers = new Map(stats.peers.map((peer) => [peer.address, peer]));
  const members = stats.members.map((address): MemberStatus => {
    const peer = peers.get(address);
    const calls = peer === undefined ? undefined : source.peerCalls(address);
    let count = 0;
    let failed = 0;
    let sum = 0;
    const buckets = new Array<number>(PEER_SECONDS_BUCKETS.length + 1).fill(0);
    for (const method of calls?.byMethod().values() ?? []) {
      count += method.count;
      sum += method.sum;
      for (const [code, n] of method.codes) if (code !== "ok") failed += n;
      method.counts.forEach((n, i) => {
        buckets[i]! += n;
      });
    }
    return {
      address,
      self: address === source.self,
      breaker: peer?.breaker ?? null,
      breakerOpened: peer?.opened ?? 0,
      calls: count,
      failedCalls: failed,
      meanMs: count === 0 ? null : round((sum / count) * 1_000),
      p99Ms: count === 0 ? null : quantileBoundMs(buckets, count, 0.99),
    };
  });
  const groups = [...source.groups()].map((group): GroupStatus => {
    const s = group.stats();
    return {
      name: group.name,
      gets: s.gets,
      hits: s.hits,
      hitRate: s.gets === 0 ? null : round(s.hits / s.gets),
      errors: s.getErrors,
      bytes: s.bytes,
      limitBytes: group.cacheBytes,
      items: s.items,
      evictions: s.evictions,
      loads: s.loads,
      localLoads: s.localLoads,
      localLoadErrors: s.localLoadErrors,
      loadsInFlight: s.loadsInFlight,
      meanLoadMs:
        s.loadSeconds.count === 0 ? null : round((s.loadSeconds.sum / s.loadSeconds.count) * 1_000),
    };
  });
  const guard = stats.guard;
  return {
    node: source.self,
    listening: source.listening() ?? null,
    phase: source.phase(),
    draining: source.draining(),
    version: source.version,
    membershipVersion: stats.membershipVersion,
    members,
    groups,
    server: {
      inFlight: guard.inFlight,
      sessions: guard.sessions,
      shedInFlight: guard.shedInFlight,
      shedEventLoopDelay: guard.shedEventLoopDelay,
      eventLoopDelayMs: round(guard.eventLoopDelayMs),
    },
  };
}

/** The upper bound (ms) of the bucket holding quantile `q`; `null` past the last bound. */
function quantileBoundMs(buckets: readonly number[], count: number, q: number): number | null {
  const rank = Math.ceil(count * q);
  let seen = 0;
  for (let i = 0; i < buckets.length; i++) {
    seen += buckets[i]!;
    if (seen >= rank) {
      const bound = PEER_SECONDS_BUCKETS[i];
      return bound === undefined ? null : round(bound * 1_000);
    }
  }
  return null;
}

function round(value: number): number {
  return Math.round(value * 1_000) / 1_000;
}
