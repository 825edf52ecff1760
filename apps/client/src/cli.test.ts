// The distcache CLI against real servers on free loopback ports: a node (in
// this process), an HTTP/1.1 server, a silent socket and a closed port; exit
// codes and stderr for each outcome, and the built binary's own exit code.
import { execFile } from "node:child_process";
import http from "node:http";
import net from "node:net";
import { fileURLToPath } from "node:url";
import { Group, NotFoundError } from "@distcache/core";
import { ConnectPool } from "@distcache/transport-connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { freePorts } from "../../../scripts/lib/ports.mjs";
import { run, USAGE } from "./cli.js";

const rows: Record<string, string> = { Tom: "630", Jack: "589", Sam: "567" };
const pools: ConnectPool[] = [];
const servers: net.Server[] = [];
/** What the silent server accepted: it reads nothing and answers nothing. */
const sockets: net.Socket[] = [];
let node = "";
let readOnlyNode = "";
let http1 = "";
let silent = "";
let closed = "";

async function startNode(address: string, allowClientSet: boolean): Promise<void> {
  const group = new Group(
    "scores",
    2048,
    async (key, { signal }) => {
      if (key === "broken") throw new Error("db down");
      if (key === "slow") {
        await new Promise((resolve) => signal.addEventListener("abort", resolve, { once: true }));
      }
      const row = rows[key];
      if (row === undefined) throw new NotFoundError(key);
      return row;
    },
    { loadTimeout: 100 },
  );
  const pool = new ConnectPool(address, { server: { allowClientSet, drainTimeoutMs: 100 } });
  pool.setPeers(address);
  group.registerPeers(pool);
  await pool.serve();
  pools.push(pool);
}

function listen(server: net.Server, port: number): Promise<void> {
  servers.push(server);
  return new Promise((resolve) => server.listen(port, "127.0.0.1", resolve));
}

beforeAll(async () => {
  const ports = await freePorts(5);
  const addresses = ports.map((port) => `127.0.0.1:${port}`);
  [node, readOnlyNode, http1, silent, closed] = addresses as [
    string,
    string,
    string,
    string,
    string,
  ];
  await startNode(node, true);
  await startNode(readOnlyNode, false);
  await listen(
    http.createServer((_request, response) => response.end("hello")),
    ports[2]!,
  );
  await listen(
    net.createServer((socket) => sockets.push(socket)),
    ports[3]!,
  );
  // The fifth port stays closed.
});

afterAll(async () => {
  await Promise.all(pools.map((pool) => pool.close()));
  for (const socket of sockets) socket.destroy();
  for (const server of servers) if (server instanceof http.Server) server.closeAllConnections();
  await Promise.all(servers.map((server) => new Promise((resolve) => server.close(resolve))));
});

/** Runs the CLI in this process; what it wrote, and its exit code. */
async function cli(...argv: string[]) {
  let stdout = "";
  const stderr: string[] = [];
  const code = await run(argv, {
    stdout: (data) => {
      stdout += typeof data === "string" ? data : new TextDecoder().decode(data);
    },
    stderr: (line) => stderr.push(line),
  });
  return { code, stdout, stderr: stderr.join("\n") };
}

const at = (address: string, ...argv: string[]) => cli("--addr", address, ...argv);

describe("distcache get", () => {
  it("prints a found value, exit 0", async () => {
    expect(await at(node, "get", "scores", "Tom")).toEqual({
      code: 0,
      stdout: "630\n",
      stderr: "",
    });
  });

  it("not found is exit 1, and says so", async () => {
    expect(await at(node, "get", "scores", "nobody")).toEqual({
      code: 1,
      stdout: "",
      stderr: 'distcache: not found: key "nobody" in group "scores"',
    });
  });

  it("a getter failure is a source error, exit 2", async () => {
    expect(await at(node, "get", "scores", "broken")).toEqual({
      code: 2,
      stdout: "",
      stderr: "distcache: source error: the node's getter failed: db down",
    });
  });

  it("a getter past the group's load timeout is a source error that says so", async () => {
    const { code, stderr } = await at(node, "get", "scores", "slow");
    expect(code).toBe(2);
    expect(stderr).toBe(
      "distcache: source error: the node's getter did not answer in time (call did not settle within 100 ms; the group's load timeout)",
    );
  });

  it("an unknown group is exit 2", async () => {
    expect(await at(node, "get", "nope", "Tom")).toMatchObject({
      code: 2,
      stderr: "distcache: unknown group: no such group: nope",
    });
  });

  it("an empty key is exit 2 without a call; an oversized one is refused by the node", async () => {
    expect(await at(closed, "get", "scores", "")).toMatchObject({
      code: 2,
      stderr: "distcache: bad key: the key is empty",
    });
    const { code, stderr } = await at(node, "get", "scores", "k".repeat(2000));
    expect(code).toBe(2);
    expect(stderr).toBe("distcache: bad key: key is longer than 1024 bytes");
  });

  it.each(["grpc", "grpcweb", "grpc-web", "connect"])("speaks --protocol %s", async (protocol) => {
    expect(await at(node, "--protocol", protocol, "get", "scores", "Jack")).toMatchObject({
      code: 0,
      stdout: "589\n",
    });
  });
});

describe("distcache set and delete", () => {
  it("set then get reads the value; delete then get loads from the source again", async () => {
    expect(await at(node, "set", "scores", "Sam", "999")).toEqual({
      code: 0,
      stdout: "",
      stderr: "",
    });
    expect((await at(node, "get", "scores", "Sam")).stdout).toBe("999\n");
    expect(await at(node, "delete", "scores", "Sam")).toEqual({ code: 0, stdout: "", stderr: "" });
    expect((await at(node, "get", "scores", "Sam")).stdout).toBe("567\n");
  });

  it("a set over the group's budget is written but not cached: exit 2, and the old value is gone", async () => {
    expect((await at(node, "get", "scores", "Jack")).stdout).toBe("589\n");
    const { code, stdout, stderr } = await at(node, "set", "scores", "Jack", "x".repeat(3000));
    expect({ code, stdout }).toEqual({ code: 2, stdout: "" });
    expect(stderr).toMatch(
      /^distcache: value of 3000 bytes not cached: over the group's 2048-byte budget \(the entry is charged \d+ bytes with key and overhead\); the write happened \(every old copy was dropped\), but the next get calls the getter$/,
    );
    expect((await at(node, "get", "scores", "Jack")).stdout).toBe("589\n");
  });

  it("write errors are exit 2 with the node's reason", async () => {
    expect(await at(node, "set", "nope", "k", "v")).toMatchObject({
      code: 2,
      stderr: "distcache: unknown group: no such group: nope",
    });
    expect(await at(node, "delete", "nope", "k")).toMatchObject({
      code: 2,
      stderr: "distcache: unknown group: no such group: nope",
    });
    expect(await at(readOnlyNode, "set", "scores", "k", "v")).toMatchObject({
      code: 2,
      stderr: "distcache: refused by the node: Set is disabled on this node",
    });
  });
});

describe("distcache transport errors", () => {
  it("a closed port: connection refused", async () => {
    const { code, stderr } = await at(closed, "get", "scores", "Tom");
    expect(code).toBe(2);
    expect(stderr).toBe(
      `distcache: transport error: cannot connect to ${closed}: connection refused (is a node running there? --addr)`,
    );
  });

  it("https:// against a node's plain h2c port: the node does not speak TLS", async () => {
    const { code, stderr } = await at(`https://${node}`, "get", "scores", "Tom");
    expect(code).toBe(2);
    expect(stderr).toContain(`TLS handshake with ${node} failed: the server does not speak TLS`);
    expect(stderr).toContain(`use --addr ${node} or http://${node}`);
  });

  it.each(["grpc", "connect"])(
    "an HTTP/1.1-only server (--protocol %s): likely HTTP/1.1",
    async (protocol) => {
      const { code, stderr } = await at(http1, "--protocol", protocol, "get", "scores", "Tom");
      expect(code).toBe(2);
      expect(stderr).toContain(`${http1} did not answer in HTTP/2`);
      expect(stderr).toContain("likely an HTTP/1.1-only server");
    },
  );

  it("a server that never answers: the deadline, named with --timeout", async () => {
    const { code, stderr } = await at(silent, "--timeout", "200", "get", "scores", "Tom");
    expect(code).toBe(2);
    expect(stderr).toContain(`no answer from ${silent} within 200 ms (--timeout)`);
  });
});

describe("distcache usage", () => {
  it("--help prints the usage, exit 0", async () => {
    expect(await cli("--help")).toEqual({ code: 0, stdout: `${USAGE}\n`, stderr: "" });
    expect((await cli("-h")).code).toBe(0);
  });

  it.each([
    [[], "a command is required"],
    [["--bogus"], "Unknown option '--bogus'"],
    [
      ["--protocol", "http", "get", "g", "k"],
      'one of grpc, grpcweb (or grpc-web), connect; got "http"',
    ],
    [["--timeout", "0", "get", "g", "k"], "--timeout must be a positive integer"],
    [["--addr", "ftp://x:1", "get", "g", "k"], "--addr takes http:// or https://"],
    [["get", "scores"], "get takes 2 arguments"],
    [["fetch", "scores", "Tom"], 'unknown command "fetch"'],
    [["get", "", "Tom"], "GROUP must not be empty"],
  ])("%j is a usage error, exit 2", async (argv, message) => {
    const { code, stdout, stderr } = await cli(...argv);
    expect({ code, stdout }).toEqual({ code: 2, stdout: "" });
    expect(stderr).toContain(message);
    expect(stderr).toContain(USAGE);
  });
});

describe("distcache demo", () => {
  it("prints the reference's scenario, exit 0", async () => {
    const { code, stdout } = await at(node, "demo");
    expect(code).toBe(0);
    expect(stdout.split("\n")).toEqual([
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
      "",
    ]);
  });

  it("against a closed port: every step fails, exit 2", async () => {
    const { code, stdout } = await at(closed, "demo");
    expect(code).toBe(2);
    expect(stdout).toContain("❌ Get(Tom) failed: transport error: cannot connect");
  });
});

describe("the built binary", () => {
  const main = fileURLToPath(new URL("../dist/main.js", import.meta.url));
  const exec = (...argv: string[]) =>
    new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
      execFile(process.execPath, [main, ...argv], (error, stdout, stderr) => {
        resolve({ code: typeof error?.code === "number" ? error.code : 0, stdout, stderr });
      });
    });

  it("exits with the code run() gives: 0, 1, 2", async () => {
    expect(await exec("--help")).toMatchObject({ code: 0, stdout: `${USAGE}\n` });
    expect(await exec("--addr", node, "get", "scores", "Tom")).toEqual({
      code: 0,
      stdout: "630\n",
      stderr: "",
    });
    expect(await exec("--addr", node, "get", "scores", "nobody")).toMatchObject({ code: 1 });
    expect(await exec("--addr", node, "get", "scores", "broken")).toMatchObject({ code: 2 });
    expect(await exec("--nope")).toMatchObject({ code: 2 });
  });
});
