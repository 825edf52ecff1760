// `distcache stats` against HTTP servers on loopback: a canned /status.json
// (the table), and each way an admin port can fail (exit 2, said on stderr).
import http from "node:http";
import type { AddressInfo } from "node:net";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { Group, NotFoundError } from "@distcache/core";
import { CacheService, ConnectPool } from "@distcache/transport-connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { freePort, freePorts } from "../../../scripts/lib/ports.mjs";
import { run } from "./cli.js";
import { formatStatus, type NodeStatus } from "./stats.js";

const canned = {
  node: "127.0.0.1:8001",
  listening: "127.0.0.1:8001",
  phase: "serving",
  draining: false,
  version: "0.2.0",
  membershipVersion: "abc",
  members: [
    {
      address: "127.0.0.1:8001",
      self: true,
      breaker: null,
      breakerOpened: 0,
      calls: 0,
      failedCalls: 0,
      meanMs: null,
      p99Ms: null,
    },
    {
      address: "127.0.0.1:8002",
      self: false,
      breaker: "open",
      breakerOpened: 1,
      calls: 12,
      failedCalls: 3,
      meanMs: 0.512,
      p99Ms: 5,
    },
  ],
  groups: [
    {
      name: "scores",
      gets: 3,
      hits: 2,
      hitRate: 0.667,
      errors: 0,
      bytes: 1536,
      limitBytes: 2048,
      items: 1,
      evictions: 0,
      loads: 1,
      localLoads: 1,
      localLoadErrors: 0,
      loadsInFlight: 0,
      meanLoadMs: 1.2,
    },
  ],
  server: { inFlight: 0, sessions: 1, shedInFlight: 0, shedEventLoopDelay: 0, eventLoopDelayMs: 0 },
};

let answer: (response: http.ServerResponse) => void = () => {};
const server = http.createServer((request, response) => {
  if (request.url !== "/status.json") {
    response.statusCode = 404;
    response.end();
    return;
  }
  answer(response);
});
let addr = "";

beforeAll(async () => {
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  addr = `127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
});

async function stats(...args: string[]) {
  let stdout = "";
  const stderr: string[] = [];
  const code = await run([...args, "stats"], {
    stdout: (data) => {
      stdout += typeof data === "string" ? data : new TextDecoder().decode(data);
    },
    stderr: (line) => stderr.push(line),
  });
  return { code, stdout, stderr: stderr.join("\n") };
}

describe("distcache stats", () => {
  it("reads a running node's admin port: its members and its group after known traffic", async () => {
    const [port, peerPort] = await freePorts(2);
    const self = `127.0.0.1:${port}`;
    const peer = `127.0.0.1:${peerPort}`; // a member that never answers
    const rows: Record<string, string> = {};
    for (let i = 0; i < 20; i++) rows[`k${i}`] = `v${i}`;
    const group = new Group("stats-scores", 4096, (key) => {
      const row = rows[key];
      if (row === undefined) throw new NotFoundError(key);
      return row;
    });
    const pool = new ConnectPool(self, { replicas: 0, admin: { port: 0 } });
    pool.setPeers(self, peer);
    group.registerPeers(pool);
    await pool.serve();
    try {
      const client = createClient(CacheService, createGrpcTransport({ baseUrl: `http://${self}` }));
      // Keys this node owns: a miss each, then a hit each.
      const own = Object.keys(rows).filter((key) => pool.ownerOf(key) === self);
      for (const key of [...own, ...own]) await client.get({ group: "stats-scores", key });
      const admin = pool.adminAddress!;
      const { code, stdout, stderr } = await stats("--addr", `${admin.host}:${admin.port}`);
      expect({ code, stderr }).toEqual({ code: 0, stderr: "" });
      const lines = stdout.split("\n");
      expect(lines[0]).toBe(
        `node ${self} · serving · version ${/version (\S+)/.exec(lines[0]!)?.[1]}`,
      );
      expect(lines.find((l) => l.startsWith(`${self} (self)`))).toMatch(
        /^\S+ \(self\)\s+-\s+0\s+0\s+-\s+-$/,
      );
      expect(lines.find((l) => l.startsWith(peer))).toMatch(/^\S+\s+closed\s+0\s+0\s+-\s+-$/);
      const n = own.length;
      expect(n).toBeGreaterThan(0);
      const row = lines.find((l) => l.startsWith("stats-scores"))!.split(/\s{2,}/);
      // GROUP, GETS, HIT RATE, BYTES / BUDGET, ITEMS, LOADS, GETTER CALLS, ERRORS
      expect(row[0]).toBe("stats-scores");
      expect(row.slice(1, 3)).toEqual([String(2 * n), "50.0%"]);
      expect(row[3]).toMatch(/ \/ 4\.0 KiB$/);
      expect(row.slice(4)).toEqual([String(n), String(n), String(n), "0"]);
    } finally {
      await pool.close();
    }
  });

  it("prints the members and groups of /status.json as tables", async () => {
    answer = (response) => {
      response.setHeader("content-type", "application/json");
      response.end(JSON.stringify(canned));
    };
    const { code, stdout, stderr } = await stats("--addr", addr);
    expect({ code, stderr }).toEqual({ code: 0, stderr: "" });
    expect(stdout.split("\n")).toEqual([
      "node 127.0.0.1:8001 · serving · version 0.2.0",
      "",
      "MEMBER                 BREAKER  CALLS  FAILED  MEAN MS  P99 MS",
      "127.0.0.1:8001 (self)  -            0       0        -       -",
      "127.0.0.1:8002         open        12       3     0.51    5.00",
      "",
      "GROUP   GETS  HIT RATE  BYTES / BUDGET     ITEMS  LOADS  GETTER CALLS  ERRORS",
      "scores     3     66.7%  1.5 KiB / 2.0 KiB      1      1             1       0",
      "",
    ]);
  });

  it("exits 2 with a clear message for a wrong port, a non-JSON or malformed answer, a closed port", async () => {
    answer = (response) => response.end("<html>not json</html>");
    expect(await stats("--addr", addr)).toMatchObject({
      code: 2,
      stderr: expect.stringContaining("did not answer JSON"),
    });
    answer = (response) => response.end(JSON.stringify({ ...canned, members: [{ address: 7 }] }));
    expect(await stats("--addr", addr)).toMatchObject({
      code: 2,
      stderr: expect.stringContaining("members[0].address is missing or of the wrong type"),
    });
    answer = (response) => {
      response.statusCode = 503;
      response.end();
    };
    expect(await stats("--addr", addr)).toMatchObject({
      code: 2,
      stderr: expect.stringContaining("answered HTTP 503"),
    });
    answer = () => {}; // never answers
    const started = performance.now();
    expect(await stats("--addr", addr, "--timeout", "300")).toMatchObject({
      code: 2,
      stderr: expect.stringContaining("no answer within 300 ms"),
    });
    expect(performance.now() - started).toBeLessThan(5_000);
    const closed = await freePort();
    expect(await stats("--addr", `127.0.0.1:${closed}`)).toMatchObject({
      code: 2,
      stderr: expect.stringContaining("ECONNREFUSED"),
    });
  });

  it("prints no control character a node sent (terminal escapes become ?)", () => {
    const status = { ...canned, node: "evil\u001b[2J\u0007" } as NodeStatus;
    expect(formatStatus(status).split("\n")[0]).toBe("node evil?[2J? · serving · version 0.2.0");
  });
});
