import { type ChildProcess, spawn } from "node:child_process";
import { createServer } from "node:net";
import { fileURLToPath } from "node:url";
import { afterEach } from "vitest";

export const nodeMain = fileURLToPath(new URL("../dist/main.js", import.meta.url));

/** A loopback port the OS found free a moment ago. */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** A `distcache-node` child process and what it printed. */
export interface NodeProcess {
  address: string;
  child: ChildProcess;
  lines: string[];
  exited: Promise<number | null>;
}

const started: NodeProcess[] = [];

/** Starts `distcache-node` on `port` (with an IPC channel if `ipc`); resolves once it serves. Killed after each test. */
export async function startNode(
  port: number,
  peers: string[],
  extraArgs: string[] = [],
  ipc = false,
): Promise<NodeProcess> {
  const child = spawn(
    process.execPath,
    [nodeMain, "--port", String(port), "--peers", peers.join(","), ...extraArgs],
    { stdio: ["ignore", "pipe", "pipe", ...(ipc ? (["ipc"] as const) : [])] },
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

/** Keys `node` loaded from its source, in order. */
export function loadedKeys(node: NodeProcess): string[] {
  return node.lines
    .map((line) => /loaded from source: (.*)$/.exec(line)?.[1])
    .filter((key): key is string => key !== undefined);
}

afterEach(async () => {
  for (const node of started.splice(0)) {
    if (node.child.exitCode === null && node.child.signalCode === null) {
      node.child.kill("SIGCONT");
      node.child.kill("SIGKILL");
    }
    await node.exited;
  }
});
