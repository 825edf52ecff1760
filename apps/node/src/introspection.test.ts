import { EventEmitter } from "node:events";
import { readdirSync } from "node:fs";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport, Http2SessionManager } from "@connectrpc/connect-node";
import { newGroup } from "@distcache/core";
import { CacheService, ConnectPool } from "@distcache/transport-connect";
import { afterEach, describe, expect, it } from "vitest";
import {
  collectStats,
  type IpcEndpoint,
  installIntrospection,
  type NodeStats,
  SocketTracker,
} from "./introspection.js";

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

let groups = 0;
/** A one-member pool serving a fresh group on a free loopback port. */
async function startNode() {
  const group = newGroup(`introspection-${groups++}`, 1 << 16, (key) => `value of ${key}`);
  const pool = new ConnectPool("127.0.0.1:0");
  group.registerPeers(pool);
  await pool.serve();
  cleanups.push(() => pool.close());
  return { pool, group, url: `http://127.0.0.1:${pool.address!.port}` };
}

/** A fake IPC endpoint: `deliver` plays the parent's message, `sent` collects the replies. */
function fakeEndpoint() {
  const emitter = new EventEmitter();
  const sent: unknown[] = [];
  const endpoint: IpcEndpoint & { deliver(message: unknown): void; sent: unknown[] } = {
    sent,
    connected: true,
    send: (message) => sent.push(message) > 0,
    on: (event, listener) => emitter.on(event, listener),
    off: (event, listener) => emitter.off(event, listener),
    deliver: (message) => emitter.emit("message", message),
  };
  return endpoint;
}

describe("collectStats", () => {
  it("reports memory, fds, active resources and the pool's and group's counters, JSON-safe", async () => {
    const { pool, group } = await startNode();
    await group.get("a");
    await group.get("a");
    const stats = collectStats({ pool, group });

    expect(stats.rss).toBeGreaterThan(stats.heapUsed);
    expect(stats.fds).toBe(readdirSync("/proc/self/fd").length - 1);
    expect(stats.activeResources.TCPServerWrap).toBeGreaterThanOrEqual(1);
    expect(stats.group).toMatchObject({ gets: 2, hits: 1, localLoads: 1, items: 1 });
    expect(stats.pool.members).toEqual(["127.0.0.1:0"]);
    expect(stats.pool.membershipVersion).toMatch(/^[0-9a-f]{16}$/);
    expect(stats.sockets).toBeUndefined();
    const roundTrip = JSON.parse(JSON.stringify(stats)) as NodeStats;
    expect(roundTrip).toEqual(stats);
  });

  it("counts the fds a process opens and closes", async () => {
    const { pool, group } = await startNode();
    const before = collectStats({ pool, group }).fds!;
    const { openSync, closeSync } = await import("node:fs");
    const fds = [openSync("/dev/null", "r"), openSync("/dev/null", "r")];
    expect(collectStats({ pool, group }).fds).toBe(before + 2);
    for (const fd of fds) closeSync(fd);
    expect(collectStats({ pool, group }).fds).toBe(before);
  });
});

describe("SocketTracker", () => {
  it("counts HTTP/2 sessions accepted and opened, by remote, until they close", async () => {
    const sockets = new SocketTracker().start();
    cleanups.push(() => sockets.stop());
    const { pool, group, url } = await startNode();
    const session = new Http2SessionManager(url);
    const client = createClient(
      CacheService,
      createGrpcTransport({ baseUrl: url, sessionManager: session }),
    );

    const response = await client.get({ group: group.name, key: "k" });
    expect(new TextDecoder().decode(response.data)).toBe("value of k");
    // This process is both the client and the server: one session, two ends.
    expect(collectStats({ pool, group, sockets }).sockets).toEqual({
      inbound: 1,
      outbound: { [`127.0.0.1:${pool.address!.port}`]: 1 },
    });

    session.abort();
    await expect.poll(() => sockets.counts()).toEqual({ inbound: 0, outbound: {} });
  });
});

describe("installIntrospection", () => {
  it("answers {type: 'stats'} with the stats and the request's id, and ignores other messages", async () => {
    const { pool, group } = await startNode();
    const endpoint = fakeEndpoint();
    const uninstall = installIntrospection(endpoint, { pool, group });

    endpoint.deliver({ type: "stats", id: 7 });
    endpoint.deliver({ type: "other" });
    endpoint.deliver("stats");
    endpoint.deliver(null);
    expect(endpoint.sent).toHaveLength(1);
    expect(endpoint.sent[0]).toMatchObject({
      type: "stats",
      id: 7,
      group: { gets: 0 },
      pool: { members: ["127.0.0.1:0"] },
    });

    uninstall();
    endpoint.deliver({ type: "stats" });
    expect(endpoint.sent).toHaveLength(1);
  });

  it("does nothing without an IPC channel or once the channel is closed", async () => {
    const { pool, group } = await startNode();
    const endpoint = fakeEndpoint();
    const withoutChannel = { ...endpoint, send: undefined };
    installIntrospection(withoutChannel, { pool, group });
    endpoint.deliver({ type: "stats" });
    expect(endpoint.sent).toHaveLength(0);

    const closed = { ...endpoint, connected: false };
    installIntrospection(closed, { pool, group });
    endpoint.deliver({ type: "stats" });
    expect(endpoint.sent).toHaveLength(0);
  });
});
