import { type ChildProcess, execFile, spawn } from "node:child_process";
import { createServer } from "node:net";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { CacheService, ConnectPool } from "@distcache/transport-connect";
import { afterEach, describe, expect, it } from "vitest";

const main = fileURLToPath(new URL("../dist/main.js", import.meta.url));
const demo = fileURLToPath(new URL("../../../scripts/demo-cluster.mjs", import.meta.url));
const run = promisify(execFile);

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

interface NodeProcess {
  address: string;
  child: ChildProcess;
  lines: string[];
  exited: Promise<number | null>;
}

const started: NodeProcess[] = [];

async function startNode(port: number, peers: string[]): Promise<NodeProcess> {
  const child = spawn(
    process.execPath,
    [main, "--port", String(port), "--peers", peers.join(",")],
    {
      stdio: ["ignore", "pipe", "pipe"],
    },
  );
  const node: NodeProcess = {
    address: `127.0.0.1:${port}`,
    child,
    lines: [],
    exited: new Promise((resolve) => child.once("exit", (code) => resolve(code))),
  };
  started.push(node);
  await new Promise<void>((resolve, reject) => {
    let buffered = "";
    const onData = (chunk: string) => {
      buffered += chunk;
      const lines = buffered.split("\n");
      buffered = lines.pop()!;
      node.lines.push(...lines);
      if (lines.some((line) => line.includes("serving group"))) resolve();
    };
    child.stdout!.setEncoding("utf8").on("data", onData);
    child.stderr!.setEncoding("utf8").on("data", onData);
    node.exited.then((code) =>
      reject(new Error(`node exited with ${code}: ${node.lines.join("\n")}`)),
    );
  });
  return node;
}

afterEach(async () => {
  for (const node of started.splice(0)) {
    if (node.child.exitCode === null && node.child.signalCode === null) node.child.kill("SIGKILL");
    await node.exited;
  }
});

const loadsOf = (node: NodeProcess) =>
  node.lines.filter((line) => line.includes("loaded from source:"));

describe("distcache-node", () => {
  it("prints its usage with --help and refuses bad flags with exit 2", async () => {
    const help = await run(process.execPath, [main, "--help"]);
    expect(help.stdout).toContain("--peers");
    await expect(run(process.execPath, [main, "--port", "99999"])).rejects.toMatchObject({
      code: 2,
    });
    await expect(run(process.execPath, [main, "--bogus"])).rejects.toMatchObject({ code: 2 });
  });

  it("keeps answering from replicas after the owner is killed with SIGKILL, without a getter call", async () => {
    const ports = await Promise.all([freePort(), freePort(), freePort()]);
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
    expect(loadsOf(owner)).toHaveLength(1);

    owner.child.kill("SIGKILL");
    await owner.exited;
    for (const node of others) {
      const startedAt = performance.now();
      const response = await clientOf(node).get({ group: "scores", key: "Tom" });
      expect(performance.now() - startedAt).toBeLessThan(1_100);
      expect(new TextDecoder().decode(response.data)).toBe("630");
    }
    expect(nodes.flatMap(loadsOf)).toHaveLength(1);
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
    const ports = await Promise.all([freePort(), freePort(), freePort()]);
    const { stdout } = await run(process.execPath, [demo, "--ports", ports.join(",")]);
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
