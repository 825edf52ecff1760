import { describe, expect, it } from "vitest";
import { freePort } from "../../../scripts/lib/ports.mjs";
import { source, startCluster, text, totalReceived } from "./cluster.test-util.js";

describe("a 3-node cluster over real HTTP/2", () => {
  it("answers any key through any node", async () => {
    const nodes = await startCluster(3);
    for (const node of nodes) {
      for (const [key, value] of [
        ["Tom", "630"],
        ["Jack", "589"],
        ["Sam", "567"],
      ] as const) {
        const response = await node.client.get({ group: "scores", key });
        expect(response.found).toBe(true);
        expect(text(response.data)).toBe(value);
      }
    }
  });

  it("under 200 concurrent cold gets over 3 nodes, runs each key's getter once, on its owner", async () => {
    const nodes = await startCluster(3);
    const keys = Array.from({ length: 50 }, (_, i) => `k${i}`);
    const responses = await Promise.all(
      Array.from({ length: 200 }, (_, i) => {
        const key = keys[i % keys.length]!;
        return nodes[i % 3]!.client.get({ group: "scores", key }).then((r) => [key, r] as const);
      }),
    );
    for (const [key, response] of responses) expect(text(response.data)).toBe(source(key));
    for (const key of keys) {
      const owner = nodes[0]!.pool.ownerOf(key);
      const loadedOn = nodes.flatMap((node) =>
        node.loads.filter((k) => k === key).map(() => node.address),
      );
      expect(loadedOn, key).toEqual([owner]);
    }
  });

  it("copies a loaded value to both replicas", async () => {
    const nodes = await startCluster(3);
    await nodes[0]!.client.get({ group: "scores", key: "Tom" });
    // The owner answers, then pushes (not awaited by default): wait for the copies, bounded.
    const items = () => nodes.map((node) => node.group.stats().items);
    for (let i = 0; i < 200 && items().some((n) => n !== 1); i++) {
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    expect(items()).toEqual([1, 1, 1]);
    // One push to each (batched pushes arrive as StoreMany items).
    expect(totalReceived(nodes, "store") + totalReceived(nodes, "storeManyItems")).toBe(2);
  });

  it("answers a missing key with found=false at once, loading it once on its owner", async () => {
    const nodes = await startCluster(3);
    const started = performance.now();
    const response = await nodes[0]!.client.get({ group: "scores", key: "nobody" });
    expect(performance.now() - started).toBeLessThan(500);
    expect(response).toMatchObject({ found: false, err: "key not found: nobody" });
    const owner = nodes.find((node) => node.address === node.pool.ownerOf("nobody"))!;
    expect(owner.loads).toEqual(["nobody"]);
    expect(nodes.flatMap((node) => node.loads)).toEqual(["nobody"]);
  });

  it("a delete reaches each other node once, stops there, and the next get reloads exactly once", async () => {
    const nodes = await startCluster(3);
    await nodes[1]!.client.get({ group: "scores", key: "Tom" });
    const before = totalReceived(nodes, "invalidate");
    const response = await nodes[1]!.client.delete({ group: "scores", key: "Tom" });
    expect(response).toMatchObject({ success: true, err: "" });
    expect(totalReceived(nodes, "invalidate") - before).toBe(2);
    expect(nodes.map((node) => node.group.stats().items)).toEqual([0, 0, 0]);
    // No echo: the counts stay put.
    const settled =
      totalReceived(nodes, "invalidate") +
      totalReceived(nodes, "fetch") +
      totalReceived(nodes, "fetchMany") +
      totalReceived(nodes, "store") +
      totalReceived(nodes, "storeMany");
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(
      totalReceived(nodes, "invalidate") +
        totalReceived(nodes, "fetch") +
        totalReceived(nodes, "fetchMany") +
        totalReceived(nodes, "store") +
        totalReceived(nodes, "storeMany"),
    ).toBe(settled);
    const loadsBefore = nodes.flatMap((node) => node.loads).length;
    const again = await nodes[2]!.client.get({ group: "scores", key: "Tom" });
    expect(text(again.data)).toBe("630");
    expect(nodes.flatMap((node) => node.loads).length - loadsBefore).toBe(1);
  });

  it("a set through any node is read back everywhere without a getter call", async () => {
    const nodes = await startCluster(3);
    await nodes[0]!.client.get({ group: "scores", key: "Jack" });
    const response = await nodes[2]!.client.set({
      group: "scores",
      key: "Jack",
      data: new TextEncoder().encode("1000"),
    });
    expect(response).toMatchObject({ success: true, err: "" });
    for (const node of nodes)
      expect(text((await node.client.get({ group: "scores", key: "Jack" })).data)).toBe("1000");
    expect(nodes.flatMap((node) => node.loads)).toEqual(["Jack"]);
  });

  it("a set over the group's budget succeeds (every old copy dropped) and says in err it was not cached", async () => {
    const nodes = await startCluster(3); // groups of 1 MiB: a 1 MiB value with its key does not fit
    for (const node of nodes) await node.client.get({ group: "scores", key: "Jack" });
    const size = 1 << 20;
    const response = await nodes[1]!.client.set({
      group: "scores",
      key: "Jack",
      data: new Uint8Array(size),
    });
    expect(response.success).toBe(true);
    expect(response.err).toMatch(
      new RegExp(
        `^value of ${size} bytes not cached: over the group's ${size}-byte budget \\(the entry is charged \\d+ bytes with key and overhead\\)$`,
      ),
    );
    const loadsBefore = nodes.flatMap((node) => node.loads).length;
    for (const node of nodes)
      expect(text((await node.client.get({ group: "scores", key: "Jack" })).data)).toBe("589");
    expect(nodes.flatMap((node) => node.loads).length - loadsBefore).toBe(1);
  });

  it("with the owner gone, the others answer from replicas, without a getter call, within the peer timeout", async () => {
    const nodes = await startCluster(3, { peer: { timeoutMs: 500 } });
    const key = "Sam";
    const ownerIndex = nodes.findIndex((node) => node.address === node.pool.ownerOf(key));
    await nodes[ownerIndex]!.client.get({ group: "scores", key });
    expect(nodes.flatMap((node) => node.loads)).toEqual([key]);
    await nodes[ownerIndex]!.pool.close();
    for (const [i, node] of nodes.entries()) {
      if (i === ownerIndex) continue;
      await node.group.peerHandler.remove(key, { from: "test" }); // its replica copy is gone too: it must ask the other replica
      const started = performance.now();
      const response = await node.client.get({ group: "scores", key });
      expect(performance.now() - started).toBeLessThan(500 + 100);
      expect(text(response.data)).toBe("567");
      break;
    }
    expect(nodes.flatMap((node) => node.loads)).toEqual([key]);
  });

  it("nodes with disagreeing peer lists never forward twice and answer in under a second", async () => {
    const dead = `127.0.0.1:${await freePort()}`;
    // Node 0 sees {0,1}, node 1 sees {1,2} plus a dead address, node 2 omits itself and lists {0, dead}.
    const nodes = await startCluster(3, { peer: { timeoutMs: 300 } }, (i, all) =>
      i === 0 ? [all[0]!, all[1]!] : i === 1 ? [all[1]!, all[2]!, dead] : [all[0]!, dead],
    );
    const keys = Array.from({ length: 30 }, (_, i) => `k${i}`);
    const requests = keys.length * nodes.length;
    for (const node of nodes) {
      for (const key of keys) {
        const started = performance.now();
        const response = await node.client.get({ group: "scores", key });
        expect(performance.now() - started).toBeLessThan(1_000);
        expect(text(response.data)).toBe(source(key));
      }
    }
    // Every client request asks at most one owner and R=2 replica caches; peers never pass a request on.
    expect(totalReceived(nodes, "fetch")).toBeLessThanOrEqual(requests * 3);
    expect(
      nodes.reduce((sum, node) => sum + node.pool.stats().received.membershipMismatches, 0),
    ).toBeGreaterThan(0);
  });

  it("answers unknown group and empty key in-band", async () => {
    const [node] = await startCluster(1);
    expect(await node!.client.get({ group: "nope", key: "Tom" })).toMatchObject({
      found: false,
      err: "no such group: nope",
    });
    expect(await node!.client.get({ group: "scores", key: "" })).toMatchObject({
      found: false,
      err: "key is required",
    });
    expect(await node!.client.delete({ group: "scores", key: "" })).toMatchObject({
      success: false,
      err: "key is required",
    });
  });
});
