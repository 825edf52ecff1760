#!/usr/bin/env node
// The main job: scenario 2 of the reference in one command. Starts three
// nodes on 127.0.0.1:8001–8003, runs the client demo against 8001, prints
// what the nodes and the client printed, and stops the nodes it started.
// The nodes share a peer secret generated for the run (--peer-secret-file),
// as a real cluster would; the file is removed at exit.
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { loadedKeyOf, startNode, stopChild } from "./lib/node-process.mjs";

const root = fileURLToPath(new URL("..", import.meta.url));
const client = `${root}apps/client/dist/main.js`;
const host = "127.0.0.1";
// --ports A,B,C runs the same demo on other ports (the tests pick free ones).
const portsFlag = process.argv.indexOf("--ports");
const ports =
  portsFlag === -1 ? [8001, 8002, 8003] : process.argv[portsFlag + 1].split(",").map(Number);
const peers = ports.map((port) => `${host}:${port}`).join(",");

// A private folder (0700) holding the secret (0600); removed however this exits.
const secretDir = mkdtempSync(join(tmpdir(), "distcache-demo-"));
const secretFile = join(secretDir, "peer-secret");
writeFileSync(secretFile, `${randomBytes(32).toString("base64")}\n`, { mode: 0o600 });
process.on("exit", () => rmSync(secretDir, { recursive: true, force: true }));

// Readable node lines (pino-pretty), each prefixed with its node. Each
// node's admin listener takes a free port (startNode's default; +1000 may be
// taken), printed in its "serving" line.
const admin = ["--admin-port", "0"];
const nodes = ports.map((port) => {
  const args = ["--host", host, "--port", String(port), "--peers", peers, "--log-format", "pretty"];
  const node = startNode([...args, ...admin, "--peer-secret-file", secretFile], {
    label: `node :${port}`,
    // Every line is kept: the summary counts each node's getter calls from them.
    keepLines: Number.POSITIVE_INFINITY,
    timeoutMs: 20_000,
    onLine: (line) => process.stdout.write(`[node :${port}] ${line}\n`),
  });
  node.port = port;
  return node;
});

// SIGTERM and wait as long as the drain takes: the demo's nodes are idle by then.
// Once: a Ctrl-C reaches this process both from the terminal and from a wrapper.
let stopping;
const stopAll = () => {
  stopping ??= Promise.all(nodes.map((node) => stopChild(node, Number.POSITIVE_INFINITY)));
  return stopping;
};
// Stopped from outside (Ctrl-C, a SIGTERM to this pid): stop the nodes first.
for (const signal of ["SIGINT", "SIGTERM"]) {
  process.on(signal, () => {
    stopAll().then(() => process.exit(signal === "SIGINT" ? 130 : 143));
  });
}

let status = 0;
try {
  await Promise.all(nodes.map((n) => n.ready));
  console.log(`\n--- client: node apps/client/dist/main.js --addr ${host}:${ports[0]} demo ---\n`);
  status = await new Promise((resolve) => {
    const run = spawn(process.execPath, [client, "--addr", `${host}:${ports[0]}`, "demo"], {
      stdio: "inherit",
    });
    run.once("exit", (code) => resolve(code ?? 2));
  });
  // Let the nodes' last log lines arrive before the summary.
  await new Promise((resolve) => setTimeout(resolve, 100));
  console.log("\n--- getter calls, by node ---");
  for (const { port, lines } of nodes) {
    const loads = lines.map(loadedKeyOf).filter((key) => key !== undefined);
    console.log(`:${port}  ${loads.length === 0 ? "(none)" : loads.join(", ")}`);
  }
} catch (error) {
  console.error(`demo failed: ${error.message}`);
  status = 2;
} finally {
  await stopAll();
}
process.exit(status);
