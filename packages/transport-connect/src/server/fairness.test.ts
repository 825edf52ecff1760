// One slow or hostile client cannot starve the others (issue 11): each attack
// runs in its own process for a few seconds against one real node while a
// well-behaved client on its own connection keeps issuing Gets; the good
// client is served, memory stays bounded, and the node returns to baseline.
import { fileURLToPath } from "node:url";
import { Code } from "@connectrpc/connect";
import type { Getter } from "@distcache/core";
import { afterEach, describe, expect, it } from "vitest";
import {
  fetchManyRequest,
  type GoodClientResult,
  goodClient,
} from "../../../../scripts/lib/attacks.mjs";
import { type ChildState, startChild, stopChild } from "../../../../scripts/lib/node-process.mjs";
import type { ServerOptions } from "../options.js";
import {
  connect,
  demo,
  envelope,
  eventually,
  GROUP,
  type Node,
  rawCall,
  startNode,
} from "../raw-h2.test-util.js";
import type { ServerGuardStats } from "./guard.js";

const ATTACKER = fileURLToPath(new URL("../../../../scripts/lib/attacks.mjs", import.meta.url));
/** How long each attack runs while the good client measures. */
const ATTACK_MS = 3_000;
/**
 * p99 of the good client's Gets under attack: very generous, for a 2-core
 * CI machine running other suites at once (figures on a quieter one:
 * docs/operations.md, "Fairness"). What the attacks did before is refusals
 * (RESOURCE_EXHAUSTED), refused connections and memory, asserted below.
 */
const P99_BOUND_MS = 8_000;
const MiB = 1 << 20;

const started: Node[] = [];
/** The node of the running test. */
const node0 = (): Node | undefined => started[0];
const attackers: ChildState[] = [];
afterEach(async () => {
  await Promise.all(attackers.splice(0).map((child) => stopChild(child, 1_000)));
  await Promise.all(started.splice(0).map((node) => node.close()));
});

/** 1 MB for `big:*` keys; `slow:*` keys wait 2 s (or until abandoned); else the demo rows. */
function attackGetter(counter: { now: number; max: number }): Getter {
  const big = "b".repeat(1_000_000);
  return async (key, context) => {
    if (key.startsWith("big:")) return big;
    if (!key.startsWith("slow:")) return demo(key, context);
    counter.now++;
    counter.max = Math.max(counter.max, counter.now);
    try {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 2_000);
        context.signal.addEventListener("abort", () => {
          clearTimeout(timer);
          resolve();
        });
      });
      return `value of ${key}`;
    } finally {
      counter.now--;
    }
  };
}

interface Run {
  node: Node;
  good: GoodClientResult;
  /** Growth of this process's RSS (the node and the good client) over the attack. */
  rssGrowth: number;
  getterCalls: { now: number; max: number };
}

/**
 * Starts a node with `server` options, the good client alone briefly (warm
 * cache), then `attack` in a child process for {@link ATTACK_MS} while the
 * good client runs; stops the attacker and waits for the node to return to
 * baseline: nothing in flight, no session, no byte buffered.
 */
async function underAttack(
  attack: string,
  server: ServerOptions,
  engaged: (guard: ServerGuardStats) => boolean,
  overrides: Record<string, unknown> = {},
  fresh = false,
): Promise<Run> {
  const getterCalls = { now: 0, max: 0 };
  // No shedding for event-loop delay: what these tests judge is how the
  // per-address and per-session limits share the node. On a loaded CI
  // machine, a second of CPU spent accepting and refusing the attacker's
  // streams sheds a few good Gets UNAVAILABLE by that other guard (one run:
  // 52 of ~4,300), which has tests of its own (overload.test.ts).
  const node = await startNode(
    { server: { maxEventLoopDelayMs: 0, ...server } },
    attackGetter(getterCalls),
  );
  started.push(node);
  // Warm: "Tom" cached (a client of its own, gone before the attack).
  const warm = goodClient(node.url, { group: GROUP, key: "Tom", concurrency: 1 });
  await new Promise((r) => setTimeout(r, 100));
  await warm.stop();
  const rssBefore = process.memoryUsage().rss;
  let rssPeak = rssBefore;
  const sampler = setInterval(() => {
    rssPeak = Math.max(rssPeak, process.memoryUsage().rss);
  }, 50);
  const attacker = startChild(
    "attacker",
    [ATTACKER, attack, node.url, GROUP, JSON.stringify(overrides)],
    "attacking",
    {
      keepLines: 20,
    },
  );
  attackers.push(attacker);
  try {
    await attacker.ready;
    // Measure once the attack has taken hold (the limit that stops it acted).
    await eventually(() => engaged(node.pool.stats().guard), 20_000).catch(() => {
      throw new Error(`the attack did not engage: ${JSON.stringify(node.pool.stats().guard)}`);
    });
    const client = goodClient(node.url, { group: GROUP, key: "Tom", fresh, timeoutMs: 10_000 });
    await new Promise((r) => setTimeout(r, ATTACK_MS));
    await client.stop();
    await stopChild(attacker, 1_000);
    clearInterval(sampler);
    const good = client.result();
    // Recovery: back to baseline within seconds of the attacker leaving.
    await eventually(() => {
      const stats = node.pool.stats().guard;
      return stats.inFlight === 0 && stats.sessions === 0 && stats.bufferedBytes === 0;
    }, 5_000).catch(() => {
      throw new Error(`not back to baseline: ${JSON.stringify(node.pool.stats().guard)}`);
    });
    return { node, good, rssGrowth: rssPeak - rssBefore, getterCalls };
  } finally {
    clearInterval(sampler);
  }
}

/** The good client got (almost) everything (`minSuccess` of its Gets), promptly. */
function expectServed(good: GoodClientResult, minSuccess = 0.99): void {
  expect(good.total, JSON.stringify(good)).toBeGreaterThanOrEqual(3);
  expect(good.successRate, JSON.stringify(good.failures)).toBeGreaterThanOrEqual(minSuccess);
  expect(good.p99).toBeLessThan(P99_BOUND_MS);
}

describe("attacks of issue 11: the good client is served and the node recovers", () => {
  it("slow read (window 0, never reads): capped per session and per address, reset after the write timeout", async () => {
    const { node, good } = await underAttack(
      "slow read",
      { responseWriteTimeoutMs: 1_000 },
      (guard) => guard.shedPerAddress > 0,
    );
    expectServed(good);
    const stats = node.pool.stats().guard;
    // 5 sessions × 1 000 streams from one address: past its 1 024 the rest are refused.
    expect(stats.shedPerAddress).toBeGreaterThan(0);
    expect(stats.resetStalledResponses).toBeGreaterThan(0);
    expect(stats.shedInFlight).toBe(0);
  });

  it("slowloris (bodies that never end): capped, reset after the receive timeout", async () => {
    const { node, good } = await underAttack(
      "slowloris",
      { requestReceiveTimeoutMs: 1_000 },
      (guard) => guard.inFlight >= 1_000,
    );
    expectServed(good);
    const stats = node.pool.stats().guard;
    expect(stats.resetSlowRequests).toBeGreaterThan(0);
    expect(stats.shedInFlight).toBe(0);
  });

  it("unread 1 MB responses over Connect and gRPC-Web: written without a copy, counted as written, reset after the write timeout", async () => {
    const { node, good, rssGrowth } = await underAttack(
      "unread large",
      { maxBufferedBytes: 32 * MiB, responseWriteTimeoutMs: 1_000 },
      (guard) => guard.shedResponses > 0,
      { connections: 8 },
    );
    expectServed(good);
    const stats = node.pool.stats().guard;
    // Past the address's quarter of the budget its large answers are refused as they are written...
    expect(stats.shedResponses).toBeGreaterThan(0);
    // ...and those it left unread were reset after the write timeout.
    expect(stats.resetStalledResponses).toBeGreaterThan(0);
    // The answers are views of the cached value: 64 of them cost no 64 MiB.
    expect(rssGrowth).toBeLessThan(150 * MiB);
  });

  it("unread 1 MB responses over Connect JSON (copies): counted as Connect writes them, past the budget reset", async () => {
    const { node, good, rssGrowth } = await underAttack(
      "unread large JSON",
      { maxBufferedBytes: 32 * MiB, responseWriteTimeoutMs: 1_000 },
      (guard) => guard.shedResponses > 0,
      { connections: 8 },
    );
    // Not 99%: each JSON answer is still encoded (base64 of 1 MB, ~10 ms of
    // CPU) before its write is refused, and on a loaded machine the
    // event-loop probe then sheds everyone (UNAVAILABLE) for a moment.
    // Memory is what is bounded.
    expectServed(good, 0.9);
    const stats = node.pool.stats().guard;
    expect(stats.shedResponses).toBeGreaterThan(0);
    // At most a quarter of 32 MiB of answers held for the attacker, plus encoding garbage.
    expect(rssGrowth).toBeLessThan(250 * MiB);
  });

  it("large partial request bodies: past the byte budget large requests are refused, Gets served", async () => {
    const { node, good, rssGrowth } = await underAttack(
      "partial bodies",
      { maxBufferedBytes: 32 * MiB, requestReceiveTimeoutMs: 1_500 },
      (guard) => guard.shedBufferedBytes > 0,
    );
    expectServed(good);
    const stats = node.pool.stats().guard;
    expect(stats.shedBufferedBytes).toBeGreaterThan(0);
    expect(rssGrowth).toBeLessThan(200 * MiB);
  });

  it("idle and no-preface connections: closed after the preface timeout, capped per address", async () => {
    const { node, good } = await underAttack(
      "idle connections",
      { prefaceTimeoutMs: 500, maxConnectionsPerAddress: 500 },
      (guard) => guard.refusedConnectionsPerAddress > 0 && guard.closedNoPreface > 0,
      { connections: 1_500 },
      true,
    );
    expectServed(good);
    const stats = node.pool.stats().guard;
    expect(stats.closedNoPreface).toBeGreaterThan(0);
    expect(stats.refusedConnectionsPerAddress).toBeGreaterThan(0);
  });

  it("FetchMany fan-in against a slow source: getter calls stay bounded, loads past the queue are refused at once", async () => {
    const { node, good, getterCalls } = await underAttack(
      "FetchMany fan-in",
      {},
      () => node0()?.group.stats().loadsRejected !== 0,
    );
    expectServed(good);
    // 40 × 1 024 keys asked; the group runs at most 64 getter calls at once
    // (GroupOptions.maxLoadsInFlight), 1 024 more wait, the rest are refused.
    expect(getterCalls.max).toBeGreaterThan(0);
    expect(getterCalls.max).toBeLessThanOrEqual(64);
    const group = node.group.stats();
    expect(group.loadsRejected).toBeGreaterThan(0);
    expect(node.pool.stats().loads.inFlight).toBe(group.getterCallsInFlight);
  });

  it("a FetchMany whose keys would pass maxRequestsInFlight is RESOURCE_EXHAUSTED before any key is served", async () => {
    const getterCalls = { now: 0, max: 0 };
    const node = await startNode(
      { server: { maxRequestsInFlight: 100, peerReservedRequests: 0 } },
      attackGetter(getterCalls),
    );
    started.push(node);
    const session = await connect(node);
    try {
      const keys = Array.from({ length: 150 }, (_, i) => `slow:${i}`);
      const answer = await rawCall(session, {
        path: "/distcache.peer.v1.PeerService/FetchMany",
        body: envelope(fetchManyRequest(`127.0.0.1:${node.port}`, GROUP, keys)),
      });
      expect(answer.grpcStatus).toBe(Code.ResourceExhausted);
      expect(answer.grpcMessage).toBe(
        "overloaded: a FetchMany of 150 keys with 1 requests in flight would pass the limit of 100",
      );
      expect(getterCalls.max).toBe(0);
      expect(node.pool.stats().guard).toMatchObject({ shedFetchManyKeys: 1, inFlight: 0 });
    } finally {
      session.destroy();
    }
  });
});
