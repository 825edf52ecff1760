// `distcache stats` against HTTP servers on loopback: a canned /status.json
// (the table), and each way an admin port can fail (exit 2, said on stderr).
import http from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { freePort } from "../../../scripts/lib/ports.mjs";
import { run } from "./cli.js";

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
});
