import { execFile } from "node:child_process";
import { createServer as createHttpServer } from "node:http";
import type { AddressInfo } from "node:net";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { CacheService, ConnectPool } from "@distcache/transport-connect";
import { describe, expect, it } from "vitest";
import {
  loadedKeyOf,
  NODE_MAIN as main,
  startNode as startNodeProcess,
  stopChild,
} from "../../../scripts/lib/node-process.mjs";
import { freePort, freePorts } from "../../../scripts/lib/ports.mjs";
import { adminOf, type NodeProcess, startNode } from "./node-process.test-util.js";

const demo = fileURLToPath(new URL("../../../scripts/demo-cluster.mjs", import.meta.url));
const run = promisify(execFile);

const loadsOf = (node: NodeProcess) => node.lines.filter((line) => loadedKeyOf(line) !== undefined);

/** The "scores" group's row of `node`'s /status.json (its admin port). */
async function scores(node: NodeProcess): Promise<{ items: number; localLoads: number }> {
  const status = (await (await fetch(`http://${adminOf(node)}/status.json`)).json()) as {
    groups: { name: string; items: number; localLoads: number }[];
  };
  return status.groups.find((g) => g.name === "scores")!;
}

describe("distcache-node", () => {
  it("prints its usage with --help and refuses bad flags with exit 2", async () => {
    const help = await run(process.execPath, [main, "--help"]);
    expect(help.stdout).toContain("--peers");
    await expect(run(process.execPath, [main, "--port", "99999"])).rejects.toMatchObject({
      code: 2,
    });
    await expect(run(process.execPath, [main, "--bogus"])).rejects.toMatchObject({ code: 2 });
    expect(help.stdout).toContain("--max-in-flight");
    await expect(run(process.execPath, [main, "--max-in-flight", "many"])).rejects.toMatchObject({
      code: 2,
      stderr: expect.stringContaining("--max-in-flight must be"),
    });
  });

  it("keeps answering from replicas after the owner is killed with SIGKILL, without a getter call", async () => {
    const ports = await freePorts(3);
    const peers = ports.map((port) => `127.0.0.1:${port}`);
    const nodes = await Promise.all(ports.map((port) => startNode(port, peers)));
    const ring = new ConnectPool(peers[0]!);
    ring.setPeers(...peers);
    const owner = nodes.find((node) => node.address === ring.ownerOf("Tom"))!;
    const others = nodes.filter((node) => node !== owner);
    const clientOf = (node: NodeProcess) =>
      createClient(CacheService, createGrpcTransport({ baseUrl: `http://${node.address}` }));

    const first = await clientOf(others[0]!).get({ group: "scores", key: "Tom" });
    expect(new TextDecoder().decode(first.data)).toBe("630");
    // The owner's load line comes through its stdout pipe: wait for it, not for a turn.
    await expect.poll(() => loadsOf(owner), { timeout: 10_000 }).toHaveLength(1);
    // The owner answers before its pushes land (awaitReplicas off): wait
    // until both replicas hold the key before the owner dies.
    for (const node of others) {
      await expect.poll(() => scores(node).then((g) => g.items), { timeout: 10_000 }).toBe(1);
    }

    owner.child.kill("SIGKILL");
    await owner.exited;
    for (const node of others) {
      const startedAt = performance.now();
      const response = await clientOf(node).get({ group: "scores", key: "Tom" });
      expect(performance.now() - startedAt).toBeLessThan(1_100);
      expect(new TextDecoder().decode(response.data)).toBe("630");
      // Answered from its copy: no getter call on this node.
      expect((await scores(node)).localLoads).toBe(0);
    }
  });

  it("loads from --source-url over HTTP and answers {type: 'stats'} on its IPC channel", async () => {
    const paths: string[] = [];
    const source = createHttpServer((request, response) => {
      paths.push(request.url!);
      const key = decodeURIComponent(request.url!.split("/").at(-1)!);
      if (key === "gone") response.statusCode = 404;
      else if (key === "broken") response.statusCode = 500;
      response.end(`${key}@v1`);
    });
    await new Promise<void>((resolve) => source.listen(0, "127.0.0.1", resolve));
    try {
      const sourceUrl = `http://127.0.0.1:${(source.address() as AddressInfo).port}/db`;
      const port = await freePort();
      const node = await startNode(
        port,
        [`127.0.0.1:${port}`],
        ["--group", "items:65536", "--source-url", sourceUrl],
        true,
      );
      const client = createClient(
        CacheService,
        createGrpcTransport({ baseUrl: `http://${node.address}` }),
      );
      const decode = (data: Uint8Array) => new TextDecoder().decode(data);

      expect(decode((await client.get({ group: "items", key: "a b/c" })).data)).toBe("a b/c@v1");
      expect(decode((await client.get({ group: "items", key: "a b/c" })).data)).toBe("a b/c@v1");
      expect(await client.get({ group: "items", key: "gone" })).toMatchObject({
        found: false,
        err: "key not found: gone",
      });
      const broken = await client.get({ group: "items", key: "broken" });
      expect(broken.found).toBe(false);
      expect(broken.err).toContain("HTTP 500");
      // The second Get of "a b/c" was a hit: three loads, three requests.
      expect(paths).toEqual(["/db/items/a%20b%2Fc", "/db/items/gone", "/db/items/broken"]);

      const reply = new Promise<Record<string, unknown>>((resolve) =>
        node.child.once("message", (message) => resolve(message as Record<string, unknown>)),
      );
      node.child.send({ type: "stats", id: "s1" });
      const stats = await reply;
      expect(stats).toMatchObject({
        type: "stats",
        id: "s1",
        group: { gets: 4, hits: 1, localLoads: 3, items: 1 },
        pool: { members: [node.address] },
        sockets: { inbound: 1 },
      });
      expect(stats.fds).toBeGreaterThan(3);
      expect(stats.rss).toBeGreaterThan(0);
      // The main port and the admin port.
      expect(stats.activeResources).toHaveProperty("TCPServerWrap", 2);
      // Its keep-alive connection to the source is still open.
      const outbound = (stats.sockets as { outbound: Record<string, number> }).outbound;
      expect(outbound[sourceUrl.slice("http://".length, -"/db".length)]).toBe(1);

      node.child.kill("SIGTERM");
      expect(await node.exited).toBe(0);
    } finally {
      source.closeAllConnections();
      await new Promise((resolve) => source.close(resolve));
    }
  });

  it("refuses a --source-url that is not http:// with exit 2", async () => {
    await expect(
      run(process.execPath, [main, "--source-url", "ftp://127.0.0.1/x"]),
    ).rejects.toMatchObject({ code: 2, stderr: expect.stringContaining("--source-url") });
  });

  it("--port 0 binds a free port and names it in the ready line (and as its member address)", async () => {
    const node = startNodeProcess(["--port", "0", "--no-admin"], { timeoutMs: 15_000 });
    try {
      await node.ready;
      const ready = JSON.parse(node.lines.find((line) => line.includes("serving group"))!);
      const port = Number(/^127\.0\.0\.1:(\d+)$/.exec(ready.listen)?.[1]);
      expect(port).toBeGreaterThan(0);
      expect(ready.msg).toContain(`as 127.0.0.1:${port}, members: 127.0.0.1:${port}`);
      const client = createClient(
        CacheService,
        createGrpcTransport({ baseUrl: `http://127.0.0.1:${port}` }),
      );
      expect(
        new TextDecoder().decode((await client.get({ group: "scores", key: "Sam" })).data),
      ).toBe("567");
    } finally {
      await stopChild(node);
    }
  });

  it("drains and exits 0 on SIGTERM", async () => {
    const port = await freePort();
    const node = await startNode(port, [`127.0.0.1:${port}`]);
    node.child.kill("SIGTERM");
    expect(await node.exited).toBe(0);
    expect(node.lines.at(-1)).toContain("stopped");
  });
});

describe("the one-command cluster demo", () => {
  it("prints the reference's expected client output", async () => {
    const ports = await freePorts(3);
    // Bounded: a hung node must fail the test, not outlive it (the demo stops its nodes on SIGTERM).
    const { stdout } = await run(process.execPath, [demo, "--ports", ports.join(",")], {
      timeout: 25_000,
      killSignal: "SIGTERM",
    });
    const client = stdout
      .split("\n")
      .filter((line) => !line.startsWith("[node") && !line.startsWith(":"));
    const expected = [
      "=== Test Get ===",
      "✅ Tom: 630",
      "✅ Jack: 589",
      "✅ Sam: 567",
      "",
      "=== Test Delete ===",
      "✅ Deleted Tom",
      "",
      "=== Verify reload ===",
      "✅ Tom reloaded: 630 (from source)",
    ];
    const begin = client.indexOf("=== Test Get ===");
    expect(client.slice(begin, begin + expected.length)).toEqual(expected);
    // Tom loaded twice (before and after the delete), Jack and Sam once: four getter calls in all.
    expect(stdout.match(/loaded from source: /g)).toHaveLength(4);
  });
});
