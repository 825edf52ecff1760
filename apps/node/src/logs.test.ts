// distcache-node's log lines as an operator reads them (JSON): one line per
// state change (members, listening, a peer's breaker opening and closing,
// draining, stopped) and rate-limited getter failures carrying the group and
// the error, never the value.
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { CacheService, ConnectPool } from "@distcache/transport-connect";
import { describe, expect, it } from "vitest";
import { freePort, freePorts } from "../../../scripts/lib/ports.mjs";
import { type NodeProcess, startNode } from "./node-process.test-util.js";

type Entry = Record<string, unknown> & { msg: string; level: string };
const entries = (node: NodeProcess): Entry[] =>
  node.lines.filter((line) => line.startsWith("{")).map((line) => JSON.parse(line) as Entry);

async function until(check: () => boolean | Promise<boolean>, ms = 20_000): Promise<void> {
  const deadline = performance.now() + ms;
  while (!(await check())) {
    if (performance.now() > deadline) throw new Error("condition not met in time");
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

describe("distcache-node logs", () => {
  it("logs members, listening, a peer's breaker opening and closing, draining and stopped, once each", async () => {
    const ports = await freePorts(2);
    // Sorted: the pool reports members in sorted order.
    const peers = ports.map((port) => `127.0.0.1:${port}`).sort();
    const [a, b] = await Promise.all(ports.map((port) => startNode(port, peers)));
    const bPort = Number(b!.address.split(":")[1]);
    const first = entries(a!);
    expect(first.map((e) => e.msg)).toEqual([
      `members (2): ${peers.join(", ")}`,
      `listening on ${a!.address}`,
      expect.stringContaining("serving group"),
    ]);
    expect(first[0]).toMatchObject({
      members: peers,
      version: expect.stringMatching(/^[0-9a-f]{16}$/),
    });
    expect(first[2]).toMatchObject({ admin: expect.stringMatching(/^127\.0\.0\.1:\d+$/) });

    // Keys the second node owns, read through the first after the second is killed.
    const ring = new ConnectPool(peers[0]!);
    ring.setPeers(...peers);
    const keys = Array.from({ length: 40 }, (_, i) => `k${i}`).filter(
      (k) => ring.ownerOf(k) === b!.address,
    );
    b!.child.kill("SIGKILL");
    await b!.exited;
    const client = createClient(
      CacheService,
      createGrpcTransport({ baseUrl: `http://${a!.address}` }),
    );
    const breaker = (state: string) =>
      entries(a!).filter((e) => e.peer === b!.address && e.state === state);
    for (const key of keys) await client.get({ group: "scores", key: `${key}` }).catch(() => {});
    await until(() => breaker("open").length > 0);
    expect(breaker("open")[0]).toMatchObject({
      level: "warn",
      msg: `peer ${b!.address} breaker open: calls to it skipped`,
    });

    // Back on the same port: a probe succeeds and the breaker closes.
    const back = await startNode(bPort, peers);
    await until(async () => {
      for (const key of keys)
        await client.get({ group: "scores", key: `${key}-again` }).catch(() => {});
      return breaker("closed").length > 0;
    }, 40_000);
    // One line per change: a failed half-open probe (the node still starting)
    // opens it again, one more line; it closes once.
    expect(breaker("closed")).toHaveLength(1);
    const changes = entries(a!)
      .filter((e) => e.peer === b!.address)
      .map((e) => e.state);
    expect(changes.at(-1)).toBe("closed");
    expect(changes.filter((state) => state === "open").length).toBeLessThanOrEqual(5);

    a!.child.kill("SIGTERM");
    expect(await a!.exited).toBe(0);
    expect(
      entries(a!)
        .slice(-3)
        .map((e) => e.msg),
    ).toEqual(["SIGTERM: stopping", "draining", "stopped"]);
    back.child.kill("SIGTERM");
    await back.exited;
  }, 90_000);

  it("logs a failing getter with its group and error, at most once per group per 10 s", async () => {
    const source = createServer((_request, response) => {
      response.statusCode = 500;
      response.end("secret-value");
    });
    await new Promise<void>((resolve) => source.listen(0, "127.0.0.1", resolve));
    try {
      const url = `http://127.0.0.1:${(source.address() as AddressInfo).port}`;
      const port = await freePort();
      const node = await startNode(
        port,
        [`127.0.0.1:${port}`],
        ["--group", "items:64KiB", "--source-url", url],
      );
      const client = createClient(
        CacheService,
        createGrpcTransport({ baseUrl: `http://${node.address}` }),
      );
      for (let i = 0; i < 5; i++) {
        const answer = await client.get({ group: "items", key: `x${i}` });
        expect(answer.err).toContain("HTTP 500");
      }
      await until(() => entries(node).some((e) => e.msg === "getter failed"));
      const failures = entries(node).filter((e) => e.msg === "getter failed");
      expect(failures).toHaveLength(1);
      expect(failures[0]).toMatchObject({
        level: "warn",
        group: "items",
        key: "x0",
        err: expect.stringContaining("HTTP 500"),
        held: 0,
      });
      expect(node.lines.join("\n")).not.toContain("secret-value");
      // Log lines come through the child's stdout pipe: wait for them, not for a turn.
      await expect
        .poll(() => entries(node).filter((e) => e.msg.startsWith("loaded from source: ")), {
          timeout: 10_000,
        })
        .toHaveLength(5);
    } finally {
      source.closeAllConnections();
      await new Promise((resolve) => source.close(resolve));
    }
  });
});
