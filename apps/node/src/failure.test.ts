// Node failure with real `distcache-node` processes: a key's owner killed with
// SIGKILL (port closed: calls fail at once) or stopped with SIGSTOP (port open,
// nothing answers: calls wait for the peer timeout), then brought back.
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { CacheService, ConnectPool } from "@distcache/transport-connect";
import { describe, expect, it } from "vitest";
import { freePorts } from "../../../scripts/lib/ports.mjs";
import { adminOf, loadedKeys, type NodeProcess, startNode } from "./node-process.test-util.js";

const PEER_TIMEOUT_MS = 500;
/** Room for the replica's answer after a peer timeout, on a machine busy with other work. */
const SLACK_MS = 400;
/** The breaker's first backoff (250 ms by default) less its 20% jitter. */
const MIN_FIRST_BACKOFF_MS = 200;
/** 1 MiB per node: the test's keys never evict (the demo default of 2 KiB would). */
const NODE_ARGS = [
  "--group",
  "scores:1048576",
  "--replicas",
  "1",
  "--peer-timeout",
  String(PEER_TIMEOUT_MS),
];
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const text = (data: Uint8Array) => new TextDecoder().decode(data);

interface Roles {
  /** Index of the key's owner, of its one replica (--replicas 1), and of the third node. */
  owner: number;
  replica: number;
  bystander: number;
}

/** Roles of `key` among `addresses`, as every node computes them. */
function rolesOf(key: string, addresses: string[]): Roles {
  const pools = addresses.map((address) => {
    const pool = new ConnectPool(address, { replicas: 1 });
    pool.setPeers(...addresses);
    return pool;
  });
  const owner = addresses.indexOf(pools[0]!.ownerOf(key));
  const replica = pools.findIndex((pool) => pool.placement(key).selfIsReplica);
  for (const pool of pools) void pool.close();
  return { owner, replica, bystander: 3 - owner - replica };
}

async function startThree(): Promise<{ nodes: NodeProcess[]; addresses: string[] }> {
  const ports = await freePorts(3);
  const addresses = ports.map((port) => `127.0.0.1:${port}`);
  const nodes = await Promise.all(ports.map((port) => startNode(port, addresses, NODE_ARGS)));
  return { nodes, addresses };
}

/** `count` demo keys (k0…k999 = v0…v999) with the same roles, first one's owner fixed. */
function keysWithRoles(addresses: string[], count: number): { keys: string[]; roles: Roles } {
  const roles = rolesOf("k0", addresses);
  const keys: string[] = [];
  for (let i = 0; keys.length < count && i < 1000; i++) {
    const r = rolesOf(`k${i}`, addresses);
    if (r.owner === roles.owner && r.replica === roles.replica) keys.push(`k${i}`);
  }
  return { keys, roles };
}

function clientOf(address: string) {
  return createClient(CacheService, createGrpcTransport({ baseUrl: `http://${address}` }));
}

/** One Get; its time in ms, and the value (throws on any error). */
async function timedGet(address: string, key: string): Promise<number> {
  const started = performance.now();
  const response = await clientOf(address).get({ group: "scores", key }, { timeoutMs: 5_000 });
  expect(response.found, `${key} via ${address}: ${response.err}`).toBe(true);
  expect(text(response.data)).toBe(`v${key.slice(1)}`);
  return performance.now() - started;
}

describe("a key's owner fails and comes back (child processes)", () => {
  it("killed: reads go on from the replica; restarted: it rejoins and is asked again", async () => {
    const { nodes, addresses } = await startThree();
    const { keys, roles } = keysWithRoles(addresses, 40);
    const [warm, later] = [keys.slice(0, 20), keys.slice(20)];
    // Warm up through the bystander, which keeps no copy: the owner loads, the replica gets a push.
    for (const key of warm) await timedGet(addresses[roles.bystander]!, key);
    // The owner's load lines come through its stdout pipe: wait for them, not for a turn.
    await expect
      .poll(() => loadedKeys(nodes[roles.owner]!).sort(), { timeout: 10_000 })
      .toEqual([...warm].sort());
    // The owner answers before its pushes land (GroupOptions.awaitReplicas is
    // off): wait until the replica holds every warm key before the owner dies.
    const replicaAdmin = adminOf(nodes[roles.replica]!);
    expect(replicaAdmin).toBeDefined();
    await expect
      .poll(
        async () => {
          const status = (await (await fetch(`http://${replicaAdmin}/status.json`)).json()) as {
            groups: { name: string; items: number }[];
          };
          return status.groups.find((g) => g.name === "scores")?.items ?? 0;
        },
        { timeout: 10_000 },
      )
      .toBeGreaterThanOrEqual(warm.length);

    nodes[roles.owner]!.child.kill("SIGKILL");
    await nodes[roles.owner]!.exited;
    const times: number[] = [];
    const until = performance.now() + 1_500;
    while (performance.now() < until) {
      for (const key of warm) times.push(await timedGet(addresses[roles.bystander]!, key));
    }
    expect(times.length).toBeGreaterThan(20);
    expect(Math.max(...times)).toBeLessThan(PEER_TIMEOUT_MS + SLACK_MS);
    // Served from the replica's copy: no node loaded a warm key again.
    for (const i of [roles.replica, roles.bystander]) {
      expect(loadedKeys(nodes[i]!).filter((key) => warm.includes(key))).toEqual([]);
    }

    const port = Number(addresses[roles.owner]!.split(":")[1]);
    const restarted = await startNode(port, addresses, NODE_ARGS);
    // Once it serves, no client sees an error, through any node.
    for (const address of addresses) for (const key of warm) await timedGet(address, key);
    // The bystander's breaker lets a probe through within its backoff; from
    // then on cold keys load on their owner again.
    const deadline = performance.now() + 15_000;
    let next = 0;
    while (performance.now() < deadline && next < later.length) {
      await timedGet(addresses[roles.bystander]!, later[next++]!);
      if (loadedKeys(restarted).some((key) => later.includes(key))) break;
      await sleep(200);
    }
    expect(loadedKeys(restarted).filter((key) => later.includes(key)).length).toBeGreaterThan(0);
  }, 40_000);

  it("stopped (nothing answers): only the first reads pay the peer timeout, then the breaker skips it", async () => {
    const { nodes, addresses } = await startThree();
    const { keys: all, roles } = keysWithRoles(addresses, 40);
    const [keys, fresh] = [all.slice(0, 20), all.slice(20)];
    for (const key of keys) await timedGet(addresses[roles.bystander]!, key);

    nodes[roles.owner]!.child.kill("SIGSTOP");
    try {
      const reads: { start: number; ms: number }[] = [];
      for (const key of keys) {
        const start = performance.now();
        reads.push({ start, ms: await timedGet(addresses[roles.bystander]!, key) });
      }
      const times = reads.map((read) => read.ms);
      // A read waits one peer timeout at most, then the replica answers.
      expect(Math.max(...times)).toBeLessThan(PEER_TIMEOUT_MS + SLACK_MS);
      const paid = (ms: number) => ms >= PEER_TIMEOUT_MS * 0.9;
      // The default breaker opens after 3 failures in a row: the first three
      // reads pay the timeout, and after that reads go straight to the replica...
      expect(times.slice(0, 3).every(paid)).toBe(true);
      expect(reads.slice(3).filter((read) => !paid(read.ms)).length).toBeGreaterThan(0);
      // ...except half-open probes, each only once its backoff (at least 200 ms,
      // doubling after each failed probe) has passed since the failure before
      // it. A failure happens no earlier than 0.9 × the timeout into its read,
      // so measuring from there never blames a probe that waited its turn.
      let failedAt = reads[2]!.start + PEER_TIMEOUT_MS * 0.9;
      let backoff = MIN_FIRST_BACKOFF_MS;
      for (const read of reads.slice(3)) {
        if (!paid(read.ms)) continue;
        expect(read.start - failedAt).toBeGreaterThanOrEqual(backoff);
        failedAt = read.start + PEER_TIMEOUT_MS * 0.9;
        backoff *= 2;
      }
    } finally {
      nodes[roles.owner]!.child.kill("SIGCONT");
    }
    // Back: a probe closes the breaker; the owner serves again.
    const deadline = performance.now() + 5_000;
    let next = 0;
    const beforeResume = loadedKeys(nodes[roles.owner]!).length;
    while (performance.now() < deadline && next < fresh.length) {
      await timedGet(addresses[roles.bystander]!, fresh[next++]!);
      if (loadedKeys(nodes[roles.owner]!).length > beforeResume) break;
      await sleep(100);
    }
    expect(loadedKeys(nodes[roles.owner]!).length).toBeGreaterThan(beforeResume);
  }, 30_000);
});
