// The admin port of real nodes on loopback: /metrics scraped after known
// traffic through a 3-node cluster and read with a Prometheus text-format
// parser, the probes during a drain, /status.json, /lookup with hostile keys,
// the request rules, and the pool's events.
import { createHash } from "node:crypto";
import * as http from "node:http";
import { createRequire } from "node:module";
import { Code, type ConnectError } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { startCluster, type TestNode, text } from "../cluster.test-util.js";
import type { PoolEvents } from "../events.js";
import { PACKAGE_VERSION } from "../metrics.js";

interface Sample {
  labels?: Record<string, string>;
  value?: string;
}
interface Family {
  name: string;
  type: string;
  metrics: Sample[];
}
const parsePrometheusTextFormat = createRequire(import.meta.url)(
  "parse-prometheus-text-format",
) as (text: string) => Family[];

interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/** One HTTP/1.1 request to `node`'s admin port. */
function admin(
  node: TestNode,
  path: string,
  options: { method?: string; host?: string } = {},
): Promise<Answer> {
  const address = node.pool.adminAddress!;
  return new Promise((resolve, reject) => {
    const request = http.request(
      {
        host: address.host,
        port: address.port,
        path,
        method: options.method ?? "GET",
        headers: options.host === undefined ? {} : { host: options.host },
        agent: false,
      },
      (response) => {
        const chunks: Buffer[] = [];
        response.on("data", (chunk: Buffer) => chunks.push(chunk));
        response.on("end", () =>
          resolve({
            status: response.statusCode!,
            headers: response.headers,
            body: Buffer.concat(chunks).toString(),
          }),
        );
      },
    );
    request.on("error", reject);
    request.end();
  });
}

/**
 * `node`'s /metrics, parsed. The parser folds every series of a labelled
 * histogram into one, so histogram families are parsed a second time
 * declared untyped: their `_bucket`, `_sum` and `_count` series then come out
 * as families of their own, labels intact.
 */
async function scrape(node: TestNode): Promise<Map<string, Family>> {
  const answer = await admin(node, "/metrics");
  expect(answer.status).toBe(200);
  expect(answer.headers["content-type"]).toBe("text/plain; version=0.0.4; charset=utf-8");
  const families = new Map(
    parsePrometheusTextFormat(answer.body).map((family) => [family.name, family]),
  );
  const untyped = answer.body.replace(/^# TYPE (\S+) histogram$/gm, "# TYPE $1 untyped");
  // Untyped, each series' _bucket, _sum and _count lines make families of their own: join them.
  const split = new Map<string, Family>();
  for (const family of parsePrometheusTextFormat(untyped)) {
    if (families.has(family.name)) continue;
    const joined = split.get(family.name);
    if (joined === undefined) split.set(family.name, { ...family, metrics: [...family.metrics] });
    else joined.metrics.push(...family.metrics);
  }
  for (const [name, family] of split) families.set(name, family);
  return families;
}

/** The value of the samples of `name` whose labels include `labels`, added up (0 when none). */
function value(families: Map<string, Family>, name: string, labels: Record<string, string> = {}) {
  const family = families.get(name);
  if (family === undefined) throw new Error(`no metric family ${name}`);
  const matching = family.metrics.filter((sample) =>
    Object.entries(labels).every(([k, v]) => sample.labels?.[k] === v),
  );
  return matching.reduce((sum, sample) => sum + Number(sample.value), 0);
}

const sum = (list: number[]) => list.reduce((a, b) => a + b, 0);

describe("admin port: /metrics", () => {
  it("reports exact counts after known traffic through a 3-node cluster", async () => {
    const nodes = await startCluster(3, { admin: { port: 0 } });
    const [first] = nodes;
    const keys = ["k1", "k2", "k3", "k4", "k5"];
    // Each key three times: one miss (loaded once in the cluster, at its owner), two hits.
    for (let round = 0; round < 3; round++) {
      for (const key of keys) {
        const response = await first!.client.get({ group: "scores", key });
        expect(response.found).toBe(true);
      }
    }
    // Two unknown keys: each get ends in an error, each a failed getter call at its owner.
    for (const key of ["zz1", "zz2"]) {
      const response = await first!.client.get({ group: "scores", key });
      expect(response.found).toBe(false);
    }
    // Four gets of one key at once: one load, three joining it.
    await Promise.all([1, 2, 3, 4].map(() => first!.client.get({ group: "scores", key: "k9" })));

    // The owners answer before their replication pushes land (awaitReplicas
    // off): scrape once every push sent has been received and nothing is in flight.
    const settled = (all: Map<string, Family>[]) =>
      sum(all.map((m) => value(m, "distcache_peer_requests_total", { method: "StoreMany" }))) ===
        sum(nodes.map((n) => n.pool.stats().received.storeMany)) &&
      all.every((m) => value(m, "distcache_requests_in_flight") === 0) &&
      nodes.every((n) => n.group.stats().loadsInFlight === 0);
    let scrapes = await Promise.all(nodes.map(scrape));
    for (let i = 0; i < 500 && !settled(scrapes); i++) {
      await new Promise((resolve) => setTimeout(resolve, 10));
      scrapes = await Promise.all(nodes.map(scrape));
    }
    const metrics = scrapes[0]!;
    expect(value(metrics, "distcache_gets_total", { group: "scores", result: "hit" })).toBe(10);
    expect(value(metrics, "distcache_gets_total", { group: "scores", result: "miss" })).toBe(9);
    expect(value(metrics, "distcache_gets_total", { group: "scores", result: "error" })).toBe(2);
    expect(value(metrics, "distcache_loads_deduped_total", { group: "scores" })).toBe(3);
    expect(value(metrics, "distcache_cache_items", { group: "scores" })).toBe(6);
    expect(value(metrics, "distcache_cache_bytes", { group: "scores" })).toBe(
      first!.group.stats().bytes,
    );
    expect(value(metrics, "distcache_cache_limit_bytes", { group: "scores" })).toBe(1 << 20);
    expect(value(metrics, "distcache_evictions_total", { group: "scores" })).toBe(0);
    expect(value(metrics, "distcache_stale_copies_refused_total", { group: "scores" })).toBe(0);

    // Getter calls across the cluster: six keys found, two not.
    const loads = (result: string) =>
      sum(scrapes.map((m) => value(m, "distcache_loads_total", { group: "scores", result })));
    expect(loads("success")).toBe(6);
    expect(loads("error")).toBe(2);
    const histogram = (m: Map<string, Family>, suffix: string, labels: Record<string, string>) =>
      value(m, `distcache_load_duration_seconds${suffix}`, { group: "scores", ...labels });
    for (const m of scrapes)
      expect(m.get("distcache_load_duration_seconds")!.type).toBe("HISTOGRAM");
    expect(sum(scrapes.map((m) => histogram(m, "_count", {})))).toBe(8);
    for (const m of scrapes) {
      const count = histogram(m, "_count", {});
      expect(histogram(m, "_bucket", { le: "+Inf" })).toBe(count);
      // Each getter call waits 5 ms first.
      expect(histogram(m, "_sum", {})).toBeGreaterThanOrEqual(0.0045 * count);
      const buckets = m
        .get("distcache_load_duration_seconds_bucket")!
        .metrics.filter((s) => s.labels?.group === "scores")
        .map((s) => Number(s.value));
      expect(buckets).toHaveLength(12);
      expect(buckets).toEqual([...buckets].sort((a, b) => a - b));
    }

    // Peer calls: what node 0 says it sent is what the others say they received.
    const peers = nodes.slice(1).map((node) => node.address);
    const fetchManySent = value(metrics, "distcache_peer_requests_total", { method: "FetchMany" });
    expect(fetchManySent).toBeGreaterThan(0);
    expect(
      value(metrics, "distcache_peer_requests_total", { method: "FetchMany", code: "ok" }),
    ).toBe(fetchManySent);
    expect(fetchManySent).toBe(sum(nodes.slice(1).map((n) => n.pool.stats().received.fetchMany)));
    for (const peer of peers) {
      expect(
        value(metrics, "distcache_peer_request_duration_seconds_count", {
          peer,
          method: "FetchMany",
        }),
      ).toBe(value(metrics, "distcache_peer_requests_total", { peer, method: "FetchMany" }));
      expect(value(metrics, "distcache_peer_breaker_open", { peer })).toBe(0);
    }
    const storeManySent = sum(
      scrapes.map((m) => value(m, "distcache_peer_requests_total", { method: "StoreMany" })),
    );
    expect(storeManySent).toBeGreaterThan(0);
    expect(storeManySent).toBe(sum(nodes.map((n) => n.pool.stats().received.storeMany)));

    for (const m of scrapes) {
      expect(value(m, "distcache_ring_members")).toBe(3);
      expect(value(m, "distcache_requests_in_flight")).toBe(0);
      expect(value(m, "distcache_requests_shed_total", { reason: "in-flight" })).toBe(0);
      expect(value(m, "distcache_requests_shed_total", { reason: "event-loop-delay" })).toBe(0);
      expect(value(m, "distcache_build_info", { version: PACKAGE_VERSION })).toBe(1);
      // prom-client's process and Node metrics, on this pool's own registry.
      expect(m.has("process_cpu_user_seconds_total")).toBe(true);
      expect(m.has("nodejs_eventloop_lag_seconds")).toBe(true);
    }
    // Counters are counters, and no key ever appears as a label value.
    for (const family of metrics.values()) {
      if (!family.name.startsWith("distcache_")) continue;
      expect(family.name.endsWith("_total")).toBe(family.type === "COUNTER");
      for (const sample of family.metrics) {
        for (const label of Object.values(sample.labels ?? {})) expect(label).not.toMatch(/^k\d$/);
      }
    }
  });
});

describe("admin port: probes, status and lookup", () => {
  it("/livez stays 200 and /readyz turns 503 while close() drains calls in flight", async () => {
    let release: () => void = () => {};
    const held = new Promise<void>((resolve) => {
      release = resolve;
    });
    const [node] = await startCluster(
      1,
      { admin: { port: 0 }, server: { drainTimeoutMs: 10_000 } },
      undefined,
      {
        getter: async (key) => {
          if (key === "held") await held;
          return `v-${key}`;
        },
      },
    );
    expect((await admin(node!, "/readyz")).status).toBe(200);
    expect((await admin(node!, "/livez")).status).toBe(200);
    const call = node!.client.get({ group: "scores", key: "held" });
    await until(() => node!.pool.stats().guard.inFlight === 1);
    const closing = node!.pool.close();
    const ready = await admin(node!, "/readyz");
    expect(ready.status).toBe(503);
    expect(ready.body).toBe("not ready: draining\n");
    expect((await admin(node!, "/livez")).status).toBe(200);
    const status = JSON.parse((await admin(node!, "/status.json")).body) as { draining: boolean };
    expect(status.draining).toBe(true);
    release();
    expect(text((await call).data)).toBe("v-held");
    await closing;
    expect(node!.pool.adminAddress).toBeUndefined();
  });

  it("/status.json reports members with breakers and latency, groups with hit rate and bytes", async () => {
    const nodes = await startCluster(3, { admin: { port: 0 } });
    const [first] = nodes;
    for (const key of ["k1", "k2", "k3", "k1", "k2", "k3"]) {
      await first!.client.get({ group: "scores", key });
    }
    const answer = await admin(first!, "/status.json");
    expect(answer.headers["content-type"]).toBe("application/json; charset=utf-8");
    const status = JSON.parse(answer.body);
    expect(status).toMatchObject({
      node: first!.address,
      listening: first!.address,
      phase: "serving",
      draining: false,
      version: PACKAGE_VERSION,
      server: { inFlight: 0 },
    });
    expect(status.members.map((m: { address: string }) => m.address).sort()).toEqual(
      nodes.map((n) => n.address).sort(),
    );
    for (const member of status.members) {
      if (member.self) {
        expect(member).toMatchObject({ address: first!.address, breaker: null, calls: 0 });
      } else {
        expect(member.breaker).toBe("closed");
        expect(member.failedCalls).toBe(0);
      }
    }
    const called = status.members.filter((m: { calls: number }) => m.calls > 0);
    expect(called.length).toBeGreaterThan(0);
    for (const member of called) {
      expect(member.meanMs).toBeGreaterThan(0);
      expect(member.p99Ms).toBeGreaterThan(0);
    }
    expect(status.groups).toEqual([
      expect.objectContaining({
        name: "scores",
        gets: 6,
        hits: 3,
        hitRate: 0.5,
        errors: 0,
        items: 3,
        limitBytes: 1 << 20,
        bytes: first!.group.stats().bytes,
        loads: 3,
      }),
    ]);
  });

  it("/lookup gets through this node and escapes what the key and error carry", async () => {
    const [node] = await startCluster(1, { admin: { port: 0 } });
    const found = await admin(node!, "/lookup?group=scores&key=Tom");
    expect(found.status).toBe(200);
    expect(JSON.parse(found.body)).toEqual({
      found: true,
      err: "",
      bytes: 3,
      preview: "630",
      truncated: false,
    });
    const hostile = '<img src=x onerror="alert(1)">&</script>';
    const missing = await admin(node!, `/lookup?group=scores&key=${encodeURIComponent(hostile)}`);
    expect(missing.status).toBe(200);
    expect(missing.headers["x-content-type-options"]).toBe("nosniff");
    expect(missing.body).not.toMatch(/[<>&]/);
    const answer = JSON.parse(missing.body);
    expect(answer).toMatchObject({ found: false, bytes: 0, preview: null });
    expect(answer.err).toContain(hostile);
    const noGroup = await admin(node!, `/lookup?group=${encodeURIComponent("<b>")}&key=a`);
    expect(noGroup.status).toBe(404);
    expect(noGroup.body).not.toMatch(/[<>]/);
    expect(JSON.parse(noGroup.body)).toEqual({ error: "no such group: <b>" });
    expect((await admin(node!, "/lookup?group=scores")).status).toBe(400);
    const longKey = "x".repeat(1_025);
    expect((await admin(node!, `/lookup?group=scores&key=${longKey}`)).status).toBe(400);
    expect(node!.loads).toEqual(["Tom", hostile]);
  });

  it("serves only GET and HEAD on known paths, to loopback names, within bounds", async () => {
    const [node] = await startCluster(1, { admin: { port: 0 } });
    const page = await admin(node!, "/");
    expect(page.status).toBe(200);
    expect(page.headers["content-type"]).toBe("text/html; charset=utf-8");
    expect(page.headers["content-security-policy"]).toContain("default-src 'none'");
    expect(page.body).toContain("<title>DistCache node</title>");
    // The inline script compiles, and the policy lets exactly it run.
    const script = /<script>([\s\S]*)<\/script>/.exec(page.body)![1]!;
    expect(() => new Function(script)).not.toThrow();
    const digest = createHash("sha256").update(script).digest("base64");
    expect(page.headers["content-security-policy"]).toContain(`script-src 'sha256-${digest}'`);
    const head = await admin(node!, "/metrics", { method: "HEAD" });
    expect(head.status).toBe(200);
    expect(head.body).toBe("");
    const post = await admin(node!, "/metrics", { method: "POST" });
    expect(post.status).toBe(405);
    expect(post.headers.allow).toBe("GET, HEAD");
    expect((await admin(node!, "/nope")).status).toBe(404);
    expect((await admin(node!, `/metrics?${"a".repeat(5_000)}`)).status).toBe(414);
    expect((await admin(node!, "/metrics", { host: "evil.example" })).status).toBe(421);
    expect(
      (await admin(node!, "/metrics", { host: `localhost:${node!.pool.adminAddress!.port}` }))
        .status,
    ).toBe(200);
  });

  it("with statusPage: false serves /metrics and the probes only", async () => {
    const [node] = await startCluster(1, { admin: { port: 0, statusPage: false } });
    expect((await admin(node!, "/metrics")).status).toBe(200);
    expect((await admin(node!, "/readyz")).status).toBe(200);
    for (const path of ["/", "/status.json", "/lookup?group=scores&key=Tom"]) {
      expect((await admin(node!, path)).status).toBe(404);
    }
  });
});

describe("ConnectPool events", () => {
  it("reports listening, members, breaker transitions, shedding, draining and stopped", async () => {
    const seen: { [E in keyof PoolEvents]?: PoolEvents[E][] } = {};
    const record =
      <E extends keyof PoolEvents>(event: E) =>
      (payload: PoolEvents[E]) => {
        const list: PoolEvents[E][] = (seen[event] as PoolEvents[E][] | undefined) ?? [];
        list.push(payload);
        (seen as Record<E, PoolEvents[E][]>)[event] = list;
      };
    let release: () => void = () => {};
    const held = new Promise<void>((resolve) => {
      release = resolve;
    });
    const nodes = await startCluster(
      2,
      {
        peer: { timeoutMs: 500, breaker: { failureThreshold: 1, baseBackoffMs: 60_000 } },
        // No event-loop shedding: on a busy machine it could refuse the held request itself.
        server: { maxRequestsInFlight: 1, maxEventLoopDelayMs: 0 },
      },
      undefined,
      {
        getter: async (key) => {
          if (key.startsWith("held")) await held;
          return `v-${key}`;
        },
      },
    );
    const [first, second] = nodes;
    // Listeners added after the start see later changes only; listening and
    // members are checked on a pool started below.
    for (const event of ["breaker", "shedding", "draining", "stopped", "members"] as const) {
      first!.pool.on(event, record(event));
    }
    // Shedding: one held request fills the limit of 1; the next ones are refused.
    // Among 64 candidates one is the first node's (4 left it none in 1 run of 16:
    // the ports, and so the ring, differ every run).
    const heldKey = Array.from({ length: 64 }, (_, i) => `held${i}`).find(
      (key) => first!.pool.ownerOf(key) === first!.address,
    );
    expect(heldKey).toBeDefined();
    // A peer call still in flight from the start (the second node's
    // introduction, late on a loaded machine) would take the one slot.
    await until(() => first!.pool.stats().guard.inFlight === 0);
    const holding = first!.client.get({ group: "scores", key: heldKey! });
    let refused: unknown;
    holding.catch((error: unknown) => {
      refused = error;
    });
    await until(() => refused !== undefined || first!.pool.stats().guard.inFlight === 1);
    expect(refused).toBeUndefined();
    await expect(first!.client.get({ group: "scores", key: "k1" })).rejects.toMatchObject({
      code: Code.ResourceExhausted,
    } satisfies Partial<ConnectError>);
    await until(() => seen.shedding?.length === 1, 5_000);
    expect(seen.shedding).toEqual([{ reason: "in-flight", active: true }]);
    release();
    await holding;
    await until(() => seen.shedding?.length === 2, 5_000);
    expect(seen.shedding![1]).toEqual({ reason: "in-flight", active: false });

    // The second node goes away: the first one's breaker for it opens on the next failed call.
    await second!.pool.close();
    const owned = Array.from({ length: 50 }, (_, i) => `k${100 + i}`).find(
      (key) => first!.pool.ownerOf(key) === second!.address,
    )!;
    expect(text((await first!.client.get({ group: "scores", key: owned })).data)).toBe(
      `v-${owned}`,
    );
    expect(seen.breaker).toEqual([{ peer: second!.address, state: "open" }]);

    first!.pool.setPeers(first!.address);
    expect(seen.members).toEqual([
      { members: [first!.address], version: first!.pool.stats().membershipVersion },
    ]);
    first!.pool.setPeers(first!.address);
    expect(seen.members).toHaveLength(1);
    await first!.pool.close();
    expect(seen.draining).toEqual([{}]);
    expect(seen.stopped).toEqual([{}]);
  });

  it("reports listening with the bound address and the first member list", async () => {
    const { ConnectPool } = await import("../pool.js");
    const pool = new ConnectPool("127.0.0.1:0");
    const events: string[] = [];
    pool.on("members", (e) => events.push(`members ${e.members.join(",")}`));
    pool.on("listening", (e) => events.push(`listening ${e.address}`));
    pool.setPeers("127.0.0.1:0");
    try {
      await pool.serve();
      expect(events).toEqual(["members 127.0.0.1:0", `listening 127.0.0.1:${pool.address!.port}`]);
    } finally {
      await pool.close();
    }
  });
});

async function until(condition: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error("condition not met in time");
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}
