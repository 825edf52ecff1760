// The cold-load fan-in part of `pnpm bench` (issue 5, goal 3).
//
// Three `distcache-node` processes (--replicas 2, the default), loading from
// an HTTP data source this process serves (`--source-url`). 10,000 gRPC Gets
// of distinct cold keys are fired at once through one node (1,000 with
// --quick); two thirds of them are owned by the other nodes, so the entry
// node fetches them from their owners, in batches (`PeerService.FetchMany`).
// The nodes' load queues and in-flight limits are raised to hold the whole
// burst (LOAD_QUEUE): with the defaults (1,024 waiting loads per group, 4,096
// requests in flight, a FetchMany's keys counted one by one on the owner) the
// keys past them are refused RESOURCE_EXHAUSTED, as overload protection means to.
//
// Checked: every Get answers found=true with the source's value; every key
// was loaded exactly once in the whole cluster (the nodes' "loaded from
// source: KEY" lines, and the source's own request count per key); the
// loads ran on the keys' owners. Reported: keys/s over the whole burst and
// per-Get latency p50/p99 (from the moment the Get was issued, so queueing in
// the client and the entry node is included).
//
// Every child process is stopped by pid (SIGTERM, then SIGKILL after a
// timeout), also when something fails.

import { existsSync } from "node:fs";
import http from "node:http";
import path from "node:path";
import { fileURLToPath } from "node:url";
import {
  loadedKeyOf,
  NODE_MAIN,
  startNode as startNodeProcess,
  stopChild,
} from "../scripts/lib/node-process.mjs";
import { freePorts } from "../scripts/lib/ports.mjs";
import { runGrpcLoad } from "./grpc-load.mjs";
import { formatRate, markdownTable } from "./harness.mjs";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const TRANSPORT = path.join(ROOT, "packages/transport-connect/dist/index.js");
const HOST = "127.0.0.1";
const GROUP = "scores";
/** Room for every key of the burst on every node (a key, its value and the entry overhead). */
const GROUP_BYTES = 64 << 20;

const FULL = { keys: 10_000 };
const QUICK = { keys: 1_000 };
/**
 * The burst goes over this many HTTP/2 connections, all requests at once. A
 * node lets 1,000 streams run per connection (more wait in the client), and
 * answers RESOURCE_EXHAUSTED past 4,096 requests in flight (client and peer
 * requests together): 3 connections keep the entry node under that with room
 * for the owners' replication pushes.
 */
const CONNECTIONS = 3;
/** What the source answers for `key`. */
export const sourceValue = (key) => `value of ${key}`;

/**
 * The data source: `GET /<group>/<key>` answers the key's value (`value`,
 * default {@link sourceValue}) after `delayMs` (default a millisecond: a fast
 * database), and counts the requests per key. Shared with bench/costs.mjs and
 * bench/gc-tail.mjs.
 */
export async function startSource({ value = sourceValue, delayMs = 1 } = {}) {
  const requests = new Map();
  const server = http.createServer((req, res) => {
    const [, group, key] = (req.url ?? "").split("/").map(decodeURIComponent);
    requests.set(key, (requests.get(key) ?? 0) + 1);
    setTimeout(() => {
      if (group !== GROUP) {
        res.writeHead(404).end();
        return;
      }
      const body = Buffer.from(value(key), "utf8");
      res.writeHead(200, { "content-length": body.length }).end(body);
    }, delayMs);
  });
  server.keepAliveTimeout = 10_000;
  await new Promise((resolve) => server.listen(0, HOST, resolve));
  return {
    url: `http://${HOST}:${server.address().port}`,
    requests,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/**
 * Waiting loads each node may queue, per group and node-wide: the whole
 * burst, so that every key is loaded (the getter calls at once stay at
 * their defaults, 64 per group and 256 per node).
 */
const LOAD_QUEUE = 10_000;

/** A node whose getter reads `sourceUrl`; `node.loaded` collects the keys it loaded. */
function startNode(port, members, sourceUrl) {
  const args = [
    ...["--host", HOST, "--port", String(port), "--peers", members.join(",")],
    ...["--group", `${GROUP}:${GROUP_BYTES}`, "--source-url", sourceUrl],
    ...["--group-max-loads-queued", String(LOAD_QUEUE), "--max-loads-queued", String(LOAD_QUEUE)],
    // A waiting key counts as a request in flight (a FetchMany's keys one by one on the owner).
    ...["--max-in-flight", String(3 * LOAD_QUEUE), "--max-per-address", String(3 * LOAD_QUEUE)],
  ];
  const node = startNodeProcess(args, {
    label: `${HOST}:${port}`,
    // Measured as built, not under this process's NODE_OPTIONS.
    env: { ...process.env, NODE_OPTIONS: "" },
    onLine: (line) => {
      const loaded = loadedKeyOf(line);
      if (loaded !== undefined) node.loaded.push(loaded);
    },
  });
  node.address = `${HOST}:${port}`;
  node.loaded = [];
  return node;
}

function ms(v) {
  if (!Number.isFinite(v)) return "n/a";
  return v >= 100 ? `${v.toFixed(0)} ms` : `${v.toFixed(2)} ms`;
}

/**
 * Runs the fan-in benchmark and returns its report.
 *
 * @param {{quick?: boolean, log?: (line: string) => void}} [options]
 * @returns {Promise<{ok: boolean, markdown: string, result?: object}>} `ok` is
 *   false when a Get was wrong or failed, or a key was not loaded exactly once.
 */
export async function runFanIn({
  quick = false,
  log = (line) => process.stderr.write(`${line}\n`),
} = {}) {
  const t0 = process.hrtime.bigint();
  const say = (line) =>
    log(`[${(Number(process.hrtime.bigint() - t0) / 1e9).toFixed(1)} s] ${line}`);
  if (!existsSync(NODE_MAIN) || !existsSync(TRANSPORT)) {
    throw new Error("fan-in: build first: npx -y pnpm@12.4.2 build");
  }
  const { ConnectPool } = await import(TRANSPORT);
  const cfg = quick ? QUICK : FULL;
  const source = await startSource();
  const nodes = [];
  const problems = [];
  try {
    const ports = await freePorts(3);
    const members = ports.map((port) => `${HOST}:${port}`);
    nodes.push(...ports.map((port) => startNode(port, members, source.url)));
    await Promise.all(nodes.map((node) => node.ready));
    const entry = nodes[0];
    const run = Date.now().toString(36);
    const keys = Array.from({ length: cfg.keys }, (_, i) => `cold-${run}-${i}`);
    // Owners as the nodes compute them (a pool that never serves contacts nobody).
    const ring = new ConnectPool(members[0]);
    ring.setPeers(...members);
    const ownerOf = new Map(keys.map((key) => [key, ring.ownerOf(key)]));
    await ring.close();
    const forwarded = keys.filter((key) => ownerOf.get(key) !== entry.address).length;

    say(
      `fan-in: ${keys.length.toLocaleString("en")} Gets of distinct cold keys at once through ${entry.address} (${forwarded.toLocaleString("en")} owned by the other two nodes)`,
    );
    const r = await runGrpcLoad({
      port: ports[0],
      group: GROUP,
      keys,
      expected: sourceValue,
      requests: keys.length,
      connections: CONNECTIONS,
      streams: Math.ceil(keys.length / CONNECTIONS),
      timeoutMs: 120_000,
    });
    say(
      `fan-in: ${formatRate(r.rate)} keys/s, p50 ${ms(r.p50)}, p99 ${ms(r.p99)}, ${r.failed} failed`,
    );
    if (r.failed > 0) problems.push(`${r.failed} Gets failed (${r.failures.join("; ")})`);

    // Loads are logged when the getter starts; every Get has been answered, so all are in.
    await new Promise((resolve) => setTimeout(resolve, 200));
    const loadsByKey = new Map();
    const notOnOwner = [];
    for (const node of nodes) {
      for (const key of node.loaded) {
        loadsByKey.set(key, (loadsByKey.get(key) ?? 0) + 1);
        if (ownerOf.get(key) !== node.address) notOnOwner.push(`${key} on ${node.address}`);
      }
    }
    const twice = keys.filter((key) => (loadsByKey.get(key) ?? 0) > 1);
    const never = keys.filter((key) => !loadsByKey.has(key));
    const sourceTwice = keys.filter((key) => (source.requests.get(key) ?? 0) !== 1);
    const totalLoads = [...loadsByKey.values()].reduce((a, b) => a + b, 0);
    if (twice.length > 0) {
      problems.push(`${twice.length} keys loaded more than once (e.g. ${twice.slice(0, 3)})`);
    }
    if (never.length > 0) problems.push(`${never.length} keys never loaded (e.g. ${never[0]})`);
    if (sourceTwice.length > 0) {
      problems.push(`${sourceTwice.length} keys not requested from the source exactly once`);
    }
    if (notOnOwner.length > 0) {
      problems.push(`${notOnOwner.length} loads not on the key's owner (e.g. ${notOnOwner[0]})`);
    }
    const result = { keys: keys.length, forwarded, totalLoads, ...r };
    const table = markdownTable(
      ["scenario", "keys", "keys/s", "p50", "p99", "getter calls", "loaded exactly once"],
      [
        [
          `cold fan-in through one node of 3 (--replicas 2, ${CONNECTIONS} conns, all at once)`,
          keys.length.toLocaleString("en"),
          formatRate(r.rate),
          ms(r.p50),
          ms(r.p99),
          totalLoads.toLocaleString("en"),
          twice.length === 0 && never.length === 0 && sourceTwice.length === 0 ? "PASS" : "FAIL",
        ],
      ],
      ["l", "r", "r", "r", "r", "r", "l"],
    );
    const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
    const markdown = [
      "### Cold-load fan-in (gRPC Get, distinct cold keys, Node load generator)",
      "",
      `${keys.length.toLocaleString("en")} Gets of distinct keys no node holds, issued at once over ${CONNECTIONS} HTTP/2 connections to one node of 3 ` +
        `(${forwarded.toLocaleString("en")} of them owned by the other two: fetched in batches); the getter reads an HTTP source (\`--source-url\`) that answers after 1 ms. ` +
        `The nodes may queue ${LOAD_QUEUE.toLocaleString("en")} waiting loads (\`--group-max-loads-queued\`, \`--max-loads-queued\`) and hold ${(3 * LOAD_QUEUE).toLocaleString("en")} requests in flight (\`--max-in-flight\`, \`--max-per-address\`): the defaults (1,024 waiting loads per group, 4,096 requests in flight) refuse about two thirds of this burst RESOURCE_EXHAUSTED, by design; getter calls at once stay at 64 per group. ` +
        "keys/s: Gets / time from the first Get issued to the last answer. p50/p99: per Get, from issue to answer (client-side queueing included).",
      "",
      table,
      "",
      `Checked: every Get answered found=true with the source's value; getter calls counted from the nodes' "loaded from source" lines ` +
        `(${totalLoads.toLocaleString("en")} for ${keys.length.toLocaleString("en")} keys) and from the source's request log; every load ran on the key's owner. ` +
        `Fan-in part took ${seconds.toFixed(1)} s.` +
        (problems.length > 0 ? `\n\n**FAILED checks:** ${problems.join("; ")}` : ""),
    ].join("\n");
    return { ok: problems.length === 0, markdown, result };
  } finally {
    await Promise.all(nodes.map((node) => stopChild(node, 5_000)));
    await source.close();
  }
}

// Standalone: node bench/fanin.mjs [--quick]
if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const report = await runFanIn({ quick: process.argv.includes("--quick") });
  console.log(report.markdown);
  process.exit(report.ok ? 0 : 1);
}
