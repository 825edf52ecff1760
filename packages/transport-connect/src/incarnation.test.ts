// Write stamps across restarts and against forged stamps, over real HTTP/2:
// an owner that restarts with a lower first guess (its clock stepped back),
// a member that forges a far-future stamp, and the rule that holds through
// both — once a Set or Delete is acknowledged, no node serves an older value.
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { Group, MAX_STAMP_PART } from "@distcache/core";
import { afterEach, describe, expect, it, vi } from "vitest";
import { ConnectPeerClient } from "./client/peer-client.js";
import { startCluster, type TestNode, text } from "./cluster.test-util.js";
import { PeerService } from "./gen/distcache/peer/v1/peer_pb.js";
import { makeSender } from "./peer-wire.js";
import { ConnectPool } from "./pool.js";

const HOUR_MS = 3_600_000;
const restarted: ConnectPool[] = [];

afterEach(async () => {
  vi.restoreAllMocks();
  await Promise.all(restarted.splice(0).map((pool) => pool.close()));
});

/** Closes `node`'s pool and starts a fresh one (empty cache) on its address, its clock shifted by `shiftMs`. */
async function restart(node: TestNode, all: string[], shiftMs: number): Promise<ConnectPool> {
  await node.pool.close();
  const realNow = Date.now;
  const spy = vi.spyOn(Date, "now").mockImplementation(() => realNow() + shiftMs);
  const pool = new ConnectPool(node.address, { server: { drainTimeoutMs: 200 } });
  spy.mockRestore();
  pool.setPeers(...all);
  const group = new Group("scores", 1 << 20, (key) => `v${key.slice(1)}`);
  group.registerPeers(pool);
  await pool.serve();
  restarted.push(pool);
  node.pool = pool;
  node.group = group;
  return pool;
}

/** Every node's answer for `key`, as text ("(none)" when not found). */
async function readEverywhere(nodes: TestNode[], key: string): Promise<string[]> {
  return Promise.all(
    nodes.map(async (node) => {
      const answer = await node.client.get({ group: "scores", key });
      return answer.found ? text(answer.data) : `(none: ${answer.err})`;
    }),
  );
}

/** A key that `owner` owns in a 3-node ring of `all`. */
function keyOwnedBy(pool: ConnectPool, owner: string): string {
  for (let i = 0; i < 10_000; i++) if (pool.ownerOf(`k${i}`) === owner) return `k${i}`;
  throw new Error(`no key owned by ${owner}`);
}

describe("an owner restarted with its clock stepped back", () => {
  it("learns from its peers (Introduce) and orders its writes after its previous process's", async () => {
    const nodes = await startCluster(3);
    const all = nodes.map((n) => n.address);
    const [owner, entry] = nodes as [TestNode, TestNode, TestNode];
    const key = keyOwnedBy(owner.pool, owner.address);
    const before = owner.pool.epoch();
    expect((await entry.client.set({ group: "scores", key, data: Buffer.from("old") })).err).toBe(
      "",
    );
    const introduced = (n: TestNode[]) =>
      n.reduce((sum, node) => sum + node.pool.stats().received.introduce, 0);
    const introducedBefore = introduced(nodes.slice(1));
    const pool = await restart(owner, all, -HOUR_MS);
    // The peers saw `before`; the new process started an hour lower, then moved above it.
    expect(pool.epoch()).toBeGreaterThan(before);
    expect(introduced(nodes.slice(1)) - introducedBefore).toBe(2);
    for (let round = 0; round < 5; round++) {
      const value = `new-${round}`;
      const answer = await entry.client.set({ group: "scores", key, data: Buffer.from(value) });
      expect(answer).toMatchObject({ success: true, err: "" });
      expect(await readEverywhere(nodes, key)).toEqual([value, value, value]);
    }
    const deleted = await entry.client.delete({ group: "scores", key });
    expect(deleted).toMatchObject({ success: true, err: "" });
    expect(await readEverywhere(nodes, key)).toEqual(Array(3).fill(`v${key.slice(1)}`));
  });

  it("without Introduce: the first write that meets an older record is dropped everywhere and reported, then the owner moves on", async () => {
    const nodes = await startCluster(3);
    const all = nodes.map((n) => n.address);
    const [owner, entry] = nodes as [TestNode, TestNode, TestNode];
    const key = keyOwnedBy(owner.pool, owner.address);
    await entry.client.set({ group: "scores", key, data: Buffer.from("old") });
    expect(await readEverywhere(nodes, key)).toEqual(["old", "old", "old"]);
    // The peers are unreachable when it starts (its Introduce fails).
    vi.spyOn(ConnectPeerClient.prototype, "introduce").mockRejectedValue(new Error("unreachable"));
    const pool = await restart(owner, all, -HOUR_MS);
    const guessed = pool.epoch();
    const first = await entry.client.set({ group: "scores", key, data: Buffer.from("new-1") });
    // Acknowledged by the owner; the replicas that held "old" dropped it and said so.
    expect(first.success).toBe(true);
    expect(first.err).toMatch(/refused the write/);
    expect(pool.epoch()).toBeGreaterThan(guessed);
    // Never "old" again, anywhere.
    expect(await readEverywhere(nodes, key)).toEqual(["new-1", "new-1", "new-1"]);
    const second = await entry.client.set({ group: "scores", key, data: Buffer.from("new-2") });
    expect(second).toMatchObject({ success: true, err: "" });
    expect(await readEverywhere(nodes, key)).toEqual(["new-2", "new-2", "new-2"]);
    // The replicas cache it again: a Get through them is a hit, not a fetch.
    const fetched = nodes.reduce((sum, n) => sum + n.pool.stats().received.fetchManyKeys, 0);
    expect(await readEverywhere(nodes, key)).toEqual(["new-2", "new-2", "new-2"]);
    expect(nodes.reduce((sum, n) => sum + n.pool.stats().received.fetchManyKeys, 0)).toBe(fetched);
  });
});

describe("a member that forges a far-future stamp", () => {
  it("costs a replica its copy, never an old value after an acknowledged write", async () => {
    const nodes = await startCluster(3);
    const [owner] = nodes as [TestNode, TestNode, TestNode];
    const key = keyOwnedBy(owner.pool, owner.address);
    const replicas = nodes.filter((n) => n !== owner);
    await owner.client.set({ group: "scores", key, data: Buffer.from("before") });
    // Another member (or anyone holding the peer secret) writes in the owner's name, stamped at the end of time.
    for (const victim of replicas) {
      const forger = createClient(
        PeerService,
        createGrpcTransport({ baseUrl: `http://${victim.address}` }),
      );
      await forger.store({
        sender: makeSender(owner.address, 0n),
        group: "scores",
        key,
        data: Buffer.from("forged"),
        write: true,
        stamp: { epoch: BigInt(MAX_STAMP_PART), seq: BigInt(MAX_STAMP_PART) },
      });
    }
    // The owner's next write cannot be ordered after the forged one: the
    // replicas drop what they hold and say so; the write is acknowledged.
    for (let round = 0; round < 3; round++) {
      const value = `after-${round}`;
      const answer = await owner.client.set({ group: "scores", key, data: Buffer.from(value) });
      expect(answer.success).toBe(true);
      expect(answer.err).toMatch(/refused the write/);
      expect(await readEverywhere(nodes, key)).toEqual([value, value, value]);
    }
    const deleted = await replicas[0]!.client.delete({ group: "scores", key });
    expect(deleted.success).toBe(true);
    expect(await readEverywhere(nodes, key)).toEqual(Array(3).fill(`v${key.slice(1)}`));
    // Other keys of the owner still replicate.
    const other = keyOwnedBy(owner.pool, owner.address) === key ? "Tom" : key;
    expect((await owner.client.get({ group: "scores", key: other })).found).toBe(true);
  });

  it("refuses stamps that are not exact numbers, and senders and groups past their bounds", async () => {
    const [node] = await startCluster(1);
    const peer = createClient(
      PeerService,
      createGrpcTransport({ baseUrl: `http://${node!.address}` }),
    );
    const base = { sender: makeSender(node!.address, 0n), group: "scores", key: "Tom" };
    await expect(
      peer.store({ ...base, data: Buffer.from("x"), stamp: { epoch: 1n << 60n, seq: 0n } }),
    ).rejects.toThrow(/stamp .* is out of range/);
    await expect(
      peer.invalidate({ ...base, sender: makeSender("a".repeat(300), 0n) }),
    ).rejects.toThrow(/sender address must be 1 to 256 bytes/);
    await expect(peer.invalidate({ ...base, group: "g".repeat(300) })).rejects.toThrow(
      /group name is longer than 256 bytes/,
    );
    expect(node!.group.stats().items).toBe(0);
    expect((await node!.client.get({ group: "scores", key: "Tom" })).found).toBe(true);
  });
});
