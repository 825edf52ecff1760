// What peer authentication costs on the forwarded-hit path: two 3-node
// clusters of real `distcache-node` processes (--replicas 0), one with a peer
// secret and one without, driven alike by bench/grpc-load.mjs with Gets of keys
// the entry node does not own (each is a FetchMany to the owner). Runs in
// pairs, alternating which cluster goes first; the median ratio decides. Then
// the check itself in a tight loop (PeerIdentity.admit, ns per call).
//
// Standalone, after a build: node bench/auth.mjs [--quick]. Every child
// process is stopped by pid, also when something fails.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { startNode, stopChild } from "../scripts/lib/node-process.mjs";
import { freePorts } from "../scripts/lib/ports.mjs";
import { runGrpcLoad } from "./grpc-load.mjs";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const DIST = path.join(ROOT, "packages/transport-connect/dist");
const HOST = "127.0.0.1";
const GROUP = "scores";
const quick = process.argv.includes("--quick");
const ROUNDS = quick ? 3 : 7;
const REQUESTS = quick ? 20_000 : 60_000;

const rows = new Map(Array.from({ length: 1000 }, (_, i) => [`k${i}`, `v${i}`]));
const median = (values) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];

async function main() {
  const { ConnectPool } = await import(path.join(DIST, "index.js"));
  const tmp = mkdtempSync(path.join(os.tmpdir(), "distcache-bench-auth-"));
  const secretFile = path.join(tmp, "secret");
  writeFileSync(secretFile, "bench-secret-0123456789abcdef0123\n", { mode: 0o600 });
  const children = [];
  try {
    const ports = await freePorts(6);
    const clusters = {
      open: ports.slice(0, 3),
      secret: ports.slice(3, 6),
    };
    for (const [name, memberPorts] of Object.entries(clusters)) {
      const peers = memberPorts.map((p) => `${HOST}:${p}`).join(",");
      for (const port of memberPorts) {
        const args = ["--port", String(port), "--peers", peers, "--group", `${GROUP}:1048576`];
        args.push(
          "--replicas",
          "0",
          ...(name === "secret" ? ["--peer-secret-file", secretFile] : []),
        );
        const child = startNode(args, {
          label: `${name} :${port}`,
          timeoutMs: 30_000,
          keepLines: 5,
        });
        children.push(child);
      }
    }
    await Promise.all(children.map((c) => c.ready));
    const keysOf = (memberPorts) => {
      const members = memberPorts.map((p) => `${HOST}:${p}`);
      const ring = new ConnectPool(members[0]);
      ring.setPeers(...members);
      return [...rows.keys()].filter((key) => ring.ownerOf(key) !== members[0]);
    };
    const runs = Object.fromEntries(
      Object.entries(clusters).map(([name, memberPorts]) => [
        name,
        { port: memberPorts[0], keys: keysOf(memberPorts) },
      ]),
    );
    const load = (run, requests) =>
      runGrpcLoad({
        port: run.port,
        group: GROUP,
        keys: run.keys,
        expected: (key) => rows.get(key),
        requests,
        connections: 1,
        streams: 64,
      });
    // Warm-up: every key loaded on its owner, the paths JIT-compiled.
    for (const run of Object.values(runs)) await load(run, Math.max(run.keys.length, 10_000));
    const pairs = [];
    for (let round = 0; round < ROUNDS; round++) {
      const order = round % 2 === 0 ? ["open", "secret"] : ["secret", "open"];
      const pair = {};
      for (const name of order) {
        const r = await load(runs[name], REQUESTS);
        if (r.failed > 0) throw new Error(`${name}: ${r.failed} failed (${r.failures[0]})`);
        pair[name] = r;
      }
      pairs.push(pair);
      console.log(
        `round ${round + 1}: open ${Math.round(pair.open.rate)} req/s (p50 ${pair.open.p50.toFixed(2)} ms), ` +
          `secret ${Math.round(pair.secret.rate)} req/s (p50 ${pair.secret.p50.toFixed(2)} ms), ` +
          `ratio ${(pair.secret.rate / pair.open.rate).toFixed(3)}`,
      );
    }
    console.log(
      `forwarded hits, 1x64, ${REQUESTS} Gets per run over ${runs.open.keys.length} keys: ` +
        `median secret/open ratio ${median(pairs.map((p) => p.secret.rate / p.open.rate)).toFixed(3)} ` +
        `(open median ${Math.round(median(pairs.map((p) => p.open.rate)))} req/s, ` +
        `secret median ${Math.round(median(pairs.map((p) => p.secret.rate)))} req/s)`,
    );
  } finally {
    await Promise.all(children.map((child) => stopChild(child, 5_000)));
    rmSync(tmp, { recursive: true, force: true });
  }
  await microbench();
}

/** The admission check alone: a member's headers, one secret and two. */
async function microbench() {
  const { PeerIdentity, noAuthCounts } = await import(path.join(DIST, "server/peer-identity.js"));
  const { peerCallHeaders } = await import(path.join(DIST, "auth/peer-token.js"));
  const members = ["127.0.0.1:8001", "127.0.0.1:8002", "127.0.0.1:8003"];
  for (const secrets of [
    ["a-secret-0123456789abcdef"],
    ["new-secret-0123456789abcd", "a-secret-0123456789abcdef"],
  ]) {
    const identity = new PeerIdentity(secrets, false, noAuthCounts());
    identity.setMembers(members);
    // The sender holds only the last secret: the worst case compares every pair.
    const headers = peerCallHeaders(members[1], secrets.slice(-1));
    const n = 2_000_000;
    for (let i = 0; i < 200_000; i++) identity.admit(headers, undefined);
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < n; i++) {
      if (identity.admit(headers, undefined) !== undefined) throw new Error("refused");
    }
    const ns = Number(process.hrtime.bigint() - t0) / n;
    console.log(`PeerIdentity.admit, ${secrets.length} secret(s): ${ns.toFixed(0)} ns per call`);
  }
}

await main();
