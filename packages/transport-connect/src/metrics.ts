// The Prometheus metrics of one pool, on its own prom-client Registry. Every
// value is read at scrape time from counters the pool, its groups and peer
// clients keep anyway (group.stats(), pool.stats(), each peer's calls), so
// serving a request costs nothing extra with metrics on.
import { createRequire } from "node:module";
import { type Group, type GroupStats, LOAD_SECONDS_BUCKETS } from "@distcache/core";
import {
  Counter,
  collectDefaultMetrics,
  Gauge,
  Histogram,
  type MetricObjectWithValues,
  type MetricType,
  type MetricValueWithName,
  Registry,
} from "prom-client";
import type { PeerCalls } from "./client/peer-calls.js";
import { PEER_SECONDS_BUCKETS } from "./client/peer-calls.js";
import type { PoolStats } from "./pool-stats.js";

/** This package's version, for `distcache_build_info`. */
export const PACKAGE_VERSION: string = (
  createRequire(import.meta.url)("../package.json") as { version: string }
).version;

/** What the metrics read, at scrape time. */
export interface MetricsSource {
  /** The groups served by this pool. */
  groups(): Iterable<Group>;
  stats(): PoolStats;
  /** Each peer's call counters. */
  peerCalls(): Iterable<{ readonly peer: string; readonly calls: PeerCalls }>;
}

/** One labelled series of a pre-bucketed histogram: counts per bucket, not cumulative. */
interface BucketedSeries {
  readonly labels: Record<string, string>;
  readonly counts: readonly number[];
  readonly sum: number;
  readonly count: number;
}

/**
 * A histogram whose buckets are counted elsewhere (in fixed arrays, without
 * prom-client on the request path) and read at scrape time. It is a
 * prom-client Histogram only so a Registry takes it; `observe` is not used.
 */
class BucketedHistogram extends Histogram<string> {
  constructor(
    registry: Registry,
    private readonly metricName: string,
    private readonly metricHelp: string,
    labelNames: string[],
    private readonly bounds: readonly number[],
    private readonly read: () => Iterable<BucketedSeries>,
  ) {
    super({
      name: metricName,
      help: metricHelp,
      labelNames,
      buckets: [...bounds],
      registers: [registry],
    });
  }

  override async get(): Promise<MetricObjectWithValues<MetricValueWithName<string>>> {
    const values: MetricValueWithName<string>[] = [];
    for (const series of this.read()) {
      let cumulative = 0;
      for (let i = 0; i <= this.bounds.length; i++) {
        cumulative += series.counts[i] ?? 0;
        const le = i < this.bounds.length ? String(this.bounds[i]) : "+Inf";
        values.push({
          metricName: `${this.metricName}_bucket`,
          labels: { ...series.labels, le },
          value: cumulative,
        });
      }
      values.push({
        metricName: `${this.metricName}_sum`,
        labels: series.labels,
        value: series.sum,
      });
      values.push({
        metricName: `${this.metricName}_count`,
        labels: series.labels,
        value: series.count,
      });
    }
    return {
      name: this.metricName,
      help: this.metricHelp,
      // prom-client's typings declare a numeric enum; the runtime writes this string.
      type: "histogram" as unknown as MetricType,
      values,
      aggregator: "sum",
      collect: noCollect,
    };
  }

  /** The Registry prefers this to `get()` when formatting text. */
  getForPromString(): Promise<MetricObjectWithValues<MetricValueWithName<string>>> {
    return this.get();
  }
}

function noCollect(): void {}

/** The prom-client Registry of one pool with every `distcache_*` family and the default process metrics. */
export function createPoolMetrics(source: MetricsSource): Registry {
  const registry = new Registry();
  const registers = [registry];

  groupResults(
    registers,
    source,
    "distcache_gets_total",
    "Group.get calls on this node that ended, by result: hit (this node's cache), miss (loaded from a peer or the getter), error (rejected).",
    (s) => ({ hit: s.hits, miss: s.missesLoaded, error: s.getErrors }),
  );
  groupResults(
    registers,
    source,
    "distcache_loads_total",
    "Getter calls on this node that ended, by result (success, error).",
    // Both counted as a getter call ends, in one synchronous step: never negative.
    (s) => ({ success: s.loadSeconds.count - s.localLoadErrors, error: s.localLoadErrors }),
  );
  new Counter({
    name: "distcache_loads_deduped_total",
    help: "Misses that joined a load of the same key already in flight on this node instead of starting one.",
    labelNames: ["group"],
    registers,
    collect() {
      this.reset();
      for (const group of source.groups()) {
        this.inc({ group: group.name }, group.stats().loadsDeduped);
      }
    },
  });
  new BucketedHistogram(
    registry,
    "distcache_load_duration_seconds",
    "How long this node's getter calls took, successful or not.",
    ["group"],
    LOAD_SECONDS_BUCKETS,
    function* () {
      for (const group of source.groups()) {
        yield { labels: { group: group.name }, ...group.stats().loadSeconds };
      }
    },
  );
  groupGauge(
    registers,
    source,
    "distcache_cache_bytes",
    "Bytes this node's cache of the group holds (keys, values, per-entry overhead).",
    (g) => g.stats().bytes,
  );
  groupGauge(
    registers,
    source,
    "distcache_cache_limit_bytes",
    "The group's byte budget on this node; 0: unbounded.",
    (g) => g.cacheBytes,
  );
  groupGauge(
    registers,
    source,
    "distcache_cache_items",
    "Entries this node's cache of the group holds.",
    (g) => g.stats().items,
  );
  groupCounter(
    registers,
    source,
    "distcache_evictions_total",
    "Entries evicted from this node's cache to stay within the byte budget.",
    (g) => g.stats().evictions,
  );
  groupCounter(
    registers,
    source,
    "distcache_stale_copies_refused_total",
    "Copies from an owner refused because the owner had announced a later write of the key.",
    (g) => g.stats().staleCopiesRefused,
  );

  new Counter({
    name: "distcache_peer_requests_total",
    help: "Calls this node made to a peer, by PeerService method and status code (Connect code names; ok = success). Calls refused by an open breaker are not made and not counted.",
    labelNames: ["peer", "method", "code"],
    registers,
    collect() {
      this.reset();
      for (const { peer, calls } of source.peerCalls()) {
        for (const [method, byMethod] of calls.byMethod()) {
          for (const [code, count] of byMethod.codes) this.inc({ peer, method, code }, count);
        }
      }
    },
  });
  new BucketedHistogram(
    registry,
    "distcache_peer_request_duration_seconds",
    "How long this node's calls to a peer took, by method (a FetchMany call carries a batch of keys).",
    ["peer", "method"],
    PEER_SECONDS_BUCKETS,
    function* () {
      for (const { peer, calls } of source.peerCalls()) {
        for (const [method, byMethod] of calls.byMethod()) {
          yield { labels: { peer, method }, ...byMethod };
        }
      }
    },
  );
  new Gauge({
    name: "distcache_peer_breaker_open",
    help: "1 while this node's circuit breaker for the peer is open or half-open (calls to it are refused but for one probe), else 0.",
    labelNames: ["peer"],
    registers,
    collect() {
      this.reset();
      for (const peer of source.stats().peers) {
        this.set({ peer: peer.address }, peer.breaker === "closed" ? 0 : 1);
      }
    },
  });
  new Gauge({
    name: "distcache_requests_in_flight",
    help: "Requests this node's server has admitted and not finished (client and peer calls).",
    registers,
    collect() {
      this.set(source.stats().guard.inFlight);
    },
  });
  new Counter({
    name: "distcache_requests_shed_total",
    help: "Requests answered at once without being served, by reason: in-flight (RESOURCE_EXHAUSTED, server.maxRequestsInFlight reached), event-loop-delay (UNAVAILABLE, server.maxEventLoopDelayMs passed), per-address (server.maxRequestsPerAddress), peer-reserve (only server.peerReservedRequests left), fetch-many-keys, buffered-bytes (server.maxBufferedBytes), unread (the address's responses were reset unread), response-bytes (a large answer that did not fit server.maxBufferedBytes).",
    labelNames: ["reason"],
    registers,
    collect() {
      this.reset();
      const guard = source.stats().guard;
      this.inc({ reason: "in-flight" }, guard.shedInFlight);
      this.inc({ reason: "event-loop-delay" }, guard.shedEventLoopDelay);
      this.inc({ reason: "per-address" }, guard.shedPerAddress);
      this.inc({ reason: "peer-reserve" }, guard.shedClientShare);
      this.inc({ reason: "fetch-many-keys" }, guard.shedFetchManyKeys);
      this.inc({ reason: "buffered-bytes" }, guard.shedBufferedBytes);
      this.inc({ reason: "unread" }, guard.shedUnread);
      this.inc({ reason: "response-bytes" }, guard.shedResponses);
    },
  });
  new Gauge({
    name: "distcache_ring_members",
    help: "Members on this node's hash ring, this node included.",
    registers,
    collect() {
      this.set(source.stats().members.length);
    },
  });
  new Gauge({
    name: "distcache_build_info",
    help: "Always 1; the version label is the @distcache/transport-connect version this node runs.",
    labelNames: ["version"],
    registers,
  }).set({ version: PACKAGE_VERSION }, 1);

  // prom-client samples event-loop lag with a libuv timer every
  // `eventLoopMonitoringPrecision` ms (default 10): 100 wake-ups a second
  // kept an idle node busy for about half its idle CPU (docs/benchmarks.md,
  // "Costs (issue 14)"). 50 ms, the guard probe's own tick, still sees every
  // stall longer than that.
  collectDefaultMetrics({ register: registry, eventLoopMonitoringPrecision: 50 });
  return registry;
}

/** A counter per group and `result`, the results read from one `group.stats()`. */
function groupResults(
  registers: Registry[],
  source: MetricsSource,
  name: string,
  help: string,
  read: (stats: GroupStats) => Record<string, number>,
): void {
  new Counter({
    name,
    help,
    labelNames: ["group", "result"],
    registers,
    collect() {
      this.reset();
      for (const group of source.groups()) {
        for (const [result, count] of Object.entries(read(group.stats()))) {
          this.inc({ group: group.name, result }, count);
        }
      }
    },
  });
}

function groupGauge(
  registers: Registry[],
  source: MetricsSource,
  name: string,
  help: string,
  read: (group: Group) => number,
): void {
  new Gauge({
    name,
    help,
    labelNames: ["group"],
    registers,
    collect() {
      this.reset();
      for (const group of source.groups()) this.set({ group: group.name }, read(group));
    },
  });
}

function groupCounter(
  registers: Registry[],
  source: MetricsSource,
  name: string,
  help: string,
  read: (group: Group) => number,
): void {
  new Counter({
    name,
    help,
    labelNames: ["group"],
    registers,
    collect() {
      this.reset();
      for (const group of source.groups()) this.inc({ group: group.name }, read(group));
    },
  });
}
