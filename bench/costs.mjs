// The cost part of `pnpm bench` (issue 14): what a request costs the cluster in
// CPU, beside req/s and latency, for the hit, forwarded-hit and cold-miss paths,
// and Redis serving the same keys at the same concurrency.
//
// CPU per request = CPU time (harness.mjs processCpuMs: per-thread schedstat) summed over every node
// process of the scenario's cluster, over the run, divided by its requests.
// It is steadier than req/s on a shared machine: a busy neighbour slows the
// run but barely changes the CPU each request takes. The load generator
// (bench/grpc-load.mjs, or ioredis for Redis) runs in this process and is not
// counted, for DistCache and Redis alike. Each round runs every scenario once,
// the starting scenario rotating; the table shows medians over the rounds.
//
// Clusters (3 nodes each, an HTTP source in this process answering after 1 ms):
//   warm  --replicas 0: "hit" keys are owned by the entry node, "forwarded"
//         keys by the others; the entry keeps no copy, so every forwarded Get
//         is a peer fetch to the owner, which answers from its cache. The
//         "one owner" row forwards only keys of the second node: the Gets in
//         flight share one peer's batches (as in bench/forward-floor.mjs)
//         instead of splitting between two.
//   cold0 --replicas 0, cold2 --replicas 2 (and cold2await: the owner answers
//         only once its replicas hold the value): each run Gets fresh keys no node
//         holds through one node, 64 in flight; checked: every key loaded
//         exactly once in the cluster, on its owner.
// Redis: `redis-server` (Debian package redis-server) on a free loopback port,
// no persistence, stopped by pid; skipped with an install hint when absent.
//
// Standalone: node bench/costs.mjs [--quick] [--scenarios a,b] [--node-flags "..."] [--against DIR]
// (e.g. --node-flags "--cpu-prof --cpu-prof-dir=/tmp/prof" profiles every node).
//
// --against DIR (DIR: another checkout of this repo with built dist/, e.g. a copy
// of an older commit): a second warm cluster runs DIR's node main beside this
// tree's, and each round runs every chosen warm scenario on both, scenario by
// scenario, the tree that goes first alternating each round. The report gives
// both trees' rows, this / DIR per scenario and each tree's forwarded / hit
// ratios, each the median over rounds of one round's ratio. Why: a before/after
// comparison from two separate runs on a noisy shared machine mostly measures
// the neighbours; interleaved in one run, both trees see the same ones. Only the
// warm scenarios take part; cold and Redis ones are skipped with a note.

import { spawn, spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import {
  loadedKeyOf,
  NODE_MAIN,
  READY_TEXT,
  startChild,
  startNode as startNodeProcess,
  stopChild,
  track,
} from "../scripts/lib/node-process.mjs";
import { freePort, freePorts } from "../scripts/lib/ports.mjs";
import { sourceValue, startSource } from "./fanin.mjs";
import { runGrpcLoad } from "./grpc-load.mjs";
import {
  formatMs,
  formatRate,
  formatUs,
  loadAverage,
  markdownTable,
  medianOf,
  percentile,
  totalCpuMs,
} from "./harness.mjs";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const TRANSPORT = path.join(ROOT, "packages/transport-connect/dist/index.js");
const HOST = "127.0.0.1";
const GROUP = "scores";
const GROUP_BYTES = 64 << 20;
const REDIS_INSTALL = "apt-get update && apt-get install -y redis-server";

/** `warmup`: one round before the measured ones, discarded (the JIT, the sessions). */
const FULL = { rounds: 5, warmup: 1, requests: 20_000, serial: 1_000, cold: 2_000, warmKeys: 600 };
const QUICK = { rounds: 1, warmup: 0, requests: 1_000, serial: 100, cold: 200, warmKeys: 120 };

/** Every scenario, in the order the rows are printed. */
const SCENARIOS = [
  { id: "hit64", label: "Get hit, key owned by the entry node", cluster: "warm", streams: 64 },
  { id: "fwd64", label: "Get hit, forwarded to the owner", cluster: "warm", streams: 64 },
  {
    id: "fwd64one",
    label: "Get hit, forwarded, every key owned by one other node",
    cluster: "warm",
    streams: 64,
  },
  { id: "hit1", label: "Get hit, key owned by the entry node", cluster: "warm", streams: 1 },
  { id: "fwd1", label: "Get hit, forwarded to the owner", cluster: "warm", streams: 1 },
  { id: "cold0", label: "cold keys, --replicas 0", cluster: "cold0", streams: 64 },
  { id: "cold2", label: "cold keys, --replicas 2", cluster: "cold2", streams: 64 },
  {
    id: "cold2await",
    label: "cold keys, --replicas 2 --await-replicas",
    cluster: "cold2await",
    streams: 64,
  },
  { id: "redis64", label: "Redis GET (ioredis, one connection)", cluster: "redis", streams: 64 },
  { id: "redis1", label: "Redis GET (ioredis, one connection)", cluster: "redis", streams: 1 },
];
const SCENARIO_IDS = SCENARIOS.map((s) => s.id);
/** The ratios of CPU per request the report prints: [label, numerator id, denominator id]. */
const WARM_RATIOS = [
  ["forwarded / local hit at 1×64", "fwd64", "hit64"],
  ["one owner", "fwd64one", "hit64"],
  ["serial", "fwd1", "hit1"],
];

// --- the data source and the nodes ---------------------------------------------

/**
 * Three nodes with `--replicas replicas`; `loaded` per node collects the keys it loaded.
 * `start` starts one node (scripts/lib/node-process.mjs startNode's signature): this
 * tree's by default, another tree's for --against.
 */
async function startCluster(
  name,
  replicas,
  sourceUrl,
  nodeFlags,
  extraArgs = [],
  start = startNodeProcess,
) {
  const ports = await freePorts(3);
  const members = ports.map((port) => `${HOST}:${port}`);
  const nodes = ports.map((port) => {
    const node = start(
      [
        ...["--host", HOST, "--port", String(port), "--peers", members.join(",")],
        ...["--group", `${GROUP}:${GROUP_BYTES}`, "--source-url", sourceUrl],
        ...["--replicas", String(replicas)],
        ...extraArgs,
      ],
      {
        label: `${name} ${HOST}:${port}`,
        nodeFlags,
        // Measured as built, not under this process's NODE_OPTIONS.
        env: { ...process.env, NODE_OPTIONS: "" },
        keepLines: 50,
        onLine: (line) => {
          // JSON or pretty log lines alike (scripts/lib/node-process.mjs).
          const loaded = loadedKeyOf(line);
          if (loaded !== undefined) node.loaded.push(loaded);
        },
      },
    );
    node.address = `${HOST}:${port}`;
    node.port = port;
    node.loaded = [];
    return node;
  });
  const cluster = { name, nodes, members, pids: nodes.map((n) => n.child.pid) };
  try {
    await Promise.all(nodes.map((node) => node.ready));
  } catch (error) {
    await stopCluster(cluster);
    throw error;
  }
  return cluster;
}

async function stopCluster(cluster) {
  if (cluster !== undefined) await Promise.all(cluster.nodes.map((n) => stopChild(n, 5_000)));
}

/** Owners as the nodes compute them (a pool that never serves contacts nobody). */
async function ownersOf(members, keys) {
  const { ConnectPool } = await import(TRANSPORT);
  const ring = new ConnectPool(members[0]);
  ring.setPeers(...members);
  const owners = new Map(keys.map((key) => [key, ring.ownerOf(key)]));
  await ring.close();
  return owners;
}

/**
 * Splits `count` warm keys by owner among `cluster`'s members (hit: owned by the
 * entry node, fwd: by the others, oneOwner: by the second node), then loads each
 * once through the entry node. Returns the split and the warm-up load's result.
 */
async function warmCluster(cluster, count) {
  const keys = Array.from({ length: count }, (_, i) => `warm-${i}`);
  const owners = await ownersOf(cluster.members, keys);
  const entry = cluster.members[0];
  const split = {
    hit: keys.filter((key) => owners.get(key) === entry),
    fwd: keys.filter((key) => owners.get(key) !== entry),
    oneOwner: keys.filter((key) => owners.get(key) === cluster.members[1]),
  };
  const warmUp = await runGrpcLoad({
    port: cluster.nodes[0].port,
    group: GROUP,
    keys,
    expected: sourceValue,
    requests: keys.length,
    streams: 64,
  });
  return { split, warmUp };
}

/** One run of warm `scenario` through `cluster`'s entry node; the sample, with CPU µs per request. */
async function runWarm(cluster, split, scenario, cfg) {
  const { id, streams } = scenario;
  const keys = id.startsWith("hit") ? split.hit : id === "fwd64one" ? split.oneOwner : split.fwd;
  return measuredLoad(cluster, keys, streams === 1 ? cfg.serial : cfg.requests, streams);
}

/**
 * `requests` Gets of `keys` through `cluster`'s entry node, `streams` at a
 * time; the load's result with the cluster's CPU µs per request.
 */
async function measuredLoad(cluster, keys, requests, streams) {
  const before = totalCpuMs(cluster.pids);
  const r = await runGrpcLoad({
    port: cluster.nodes[0].port,
    group: GROUP,
    keys,
    expected: sourceValue,
    requests,
    streams,
    timeoutMs: 120_000,
  });
  const cpu = totalCpuMs(cluster.pids) - before;
  return { ...r, requests, cpuUs: (cpu * 1000) / requests };
}

/** Medians over the rounds of one scenario's samples (at least one). */
function summarize(scenario, list) {
  return {
    id: scenario.id,
    label: scenario.label,
    streams: scenario.streams,
    rounds: list.length,
    requests: list[0].requests,
    rate: medianOf(list.map((x) => x.rate)),
    p50: medianOf(list.map((x) => x.p50)),
    p99: medianOf(list.map((x) => x.p99)),
    max: medianOf(list.map((x) => x.max)),
    cpuUs: medianOf(list.map((x) => x.cpuUs)),
    cpuSamples: list.map((x) => x.cpuUs),
  };
}

/** `a / b` of the same round, per round (NaN where b is 0: a quick run's few requests), and their median. */
function pairedRatios(a, b) {
  const perRound = a.map((x, r) => (b[r] > 0 ? x / b[r] : Number.NaN));
  return { perRound, median: medianOf(perRound.filter(Number.isFinite)) };
}

/** The columns of one scenario's summary (see {@link summarize}) in both cost tables. */
const RUN_COLUMNS = ["requests", "req/s", "p50", "p99", "max", "CPU per request", "CPU per round"];
const RUN_ALIGN = ["r", "r", "r", "r", "r", "r", "l"];

/** A summary's cells under {@link RUN_COLUMNS}. */
function runCells(r) {
  return [
    r.requests.toLocaleString("en"),
    formatRate(r.rate),
    formatMs(r.p50),
    formatMs(r.p99),
    formatMs(r.max),
    formatUs(r.cpuUs),
    r.cpuSamples.map((v) => v.toFixed(0)).join(" "),
  ];
}

const formatRatio = (v) => (Number.isFinite(v) ? `${v.toFixed(2)}×` : "n/a");

// --- Redis ----------------------------------------------------------------------

/** `redis-server` on PATH, or `undefined`. */
function redisServerPath() {
  const found = spawnSync("/bin/sh", ["-c", "command -v redis-server"], { encoding: "utf8" });
  const path = found.status === 0 ? found.stdout.trim() : "";
  return path === "" ? undefined : path;
}

/** `redis-server` on a free loopback port, no persistence; resolves once it accepts commands. */
async function startRedis(binary) {
  const port = await freePort();
  const child = track(
    spawn(
      binary,
      [
        ...["--port", String(port), "--bind", HOST, "--save", "", "--appendonly", "no"],
        ...["--protected-mode", "yes", "--daemonize", "no", "--loglevel", "warning"],
      ],
      { stdio: ["ignore", "ignore", "pipe"] },
    ),
  );
  let stderr = "";
  child.stderr.setEncoding("utf8").on("data", (chunk) => {
    stderr = (stderr + chunk).slice(-2_000);
  });
  const { default: Redis } = await import("ioredis");
  const deadline = Date.now() + 10_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`redis-server exited: ${stderr}`);
    const client = new Redis({
      host: HOST,
      port,
      lazyConnect: true,
      maxRetriesPerRequest: 0,
      retryStrategy: () => null,
      enableOfflineQueue: false,
    });
    client.on("error", () => {});
    try {
      await client.connect();
      await client.ping();
      return { child, port, client, pids: [child.pid] };
    } catch (error) {
      client.disconnect();
      if (Date.now() > deadline) {
        child.kill("SIGKILL");
        throw new Error(`redis-server on :${port} not answering: ${error.message} ${stderr}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
}

async function stopRedis(redis) {
  if (redis === undefined) return;
  redis.client.disconnect();
  await stopChild({ child: redis.child }, 3_000);
}

/** GETs `keys` round robin with `streams` in flight on one connection; checks every value. */
async function redisLoad(client, keys, requests, streams) {
  const wanted = keys.map((key) => sourceValue(key));
  const latencies = new Float64Array(requests);
  let next = 0;
  let succeeded = 0;
  const failures = [];
  const t0 = process.hrtime.bigint();
  const worker = async () => {
    while (next < requests) {
      const i = next++;
      const k = i % keys.length;
      const started = process.hrtime.bigint();
      try {
        const value = await client.get(keys[k]);
        if (value === wanted[k]) succeeded++;
        else if (failures.length < 5) failures.push(`${keys[k]}: got ${value}`);
      } catch (error) {
        if (failures.length < 5) failures.push(`${keys[k]}: ${error.message}`);
      }
      latencies[i] = Number(process.hrtime.bigint() - started) / 1e6;
    }
  };
  await Promise.all(Array.from({ length: streams }, worker));
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  const sorted = Array.from(latencies).sort((a, b) => a - b);
  return {
    rate: requests / seconds,
    failed: requests - succeeded,
    failures,
    p50: percentile(sorted, 50),
    p99: percentile(sorted, 99),
    max: sorted[sorted.length - 1],
  };
}

// --- the run --------------------------------------------------------------------

/**
 * Runs the cost tables and returns the report.
 *
 * @param {{quick?: boolean, scenarios?: string[], nodeFlags?: string[], against?: string, log?: (line: string) => void}} [options]
 *   `against`: another built checkout; see {@link runCostsAgainst}.
 * @returns {Promise<{ok: boolean, markdown: string, results: object[]}>} `ok` is
 *   false when a Get was wrong or a cold key was not loaded exactly once, on its owner.
 */
export async function runCosts({
  quick = false,
  scenarios = SCENARIO_IDS,
  nodeFlags = costsArgs([]).nodeFlags,
  against = undefined,
  log = (line) => process.stderr.write(`${line}\n`),
} = {}) {
  if (!existsSync(NODE_MAIN) || !existsSync(TRANSPORT)) {
    throw new Error("costs: build first: npx -y pnpm@12.4.2 build");
  }
  if (against !== undefined) return runCostsAgainst({ quick, scenarios, nodeFlags, against, log });
  const cfg = quick ? QUICK : FULL;
  const chosen = SCENARIOS.filter((s) => scenarios.includes(s.id));
  const t0 = process.hrtime.bigint();
  const say = (line) =>
    log(`[${(Number(process.hrtime.bigint() - t0) / 1e9).toFixed(1)} s] costs: ${line}`);
  const problems = [];
  const notes = [];
  const source = await startSource();
  const clusters = {};
  let redis;
  const samples = new Map(chosen.map((s) => [s.id, []]));
  try {
    const needs = new Set(chosen.map((s) => s.cluster));
    if (needs.has("warm")) clusters.warm = await startCluster("warm", 0, source.url, nodeFlags);
    if (needs.has("cold0")) clusters.cold0 = await startCluster("cold0", 0, source.url, nodeFlags);
    if (needs.has("cold2")) clusters.cold2 = await startCluster("cold2", 2, source.url, nodeFlags);
    if (needs.has("cold2await")) {
      clusters.cold2await = await startCluster("cold2await", 2, source.url, nodeFlags, [
        "--await-replicas",
      ]);
    }

    // Warm keys: split by owner, then loaded once through the entry node.
    let split = { hit: [], fwd: [], oneOwner: [] };
    if (clusters.warm !== undefined) {
      const warmed = await warmCluster(clusters.warm, cfg.warmKeys);
      split = warmed.split;
      const r = warmed.warmUp;
      if (r.failed > 0) problems.push(`warm-up: ${r.failed} Gets failed (${r.failures[0]})`);
    }
    if (needs.has("redis")) {
      const binary = redisServerPath();
      if (binary === undefined) {
        notes.push(`SKIP Redis rows: redis-server not found (install: ${REDIS_INSTALL})`);
        say(notes.at(-1));
      } else {
        redis = await startRedis(binary);
        const keys = split.hit.length + split.fwd.length > 0 ? [...split.hit, ...split.fwd] : [];
        if (keys.length === 0) {
          for (let i = 0; i < cfg.warmKeys; i++) keys.push(`warm-${i}`);
        }
        const pipeline = redis.client.pipeline();
        for (const key of keys) pipeline.set(key, sourceValue(key));
        await pipeline.exec();
        redis.keys = keys;
      }
    }

    const runOne = async (scenario, round) => {
      const { id, cluster: which, streams } = scenario;
      if (which === "redis") {
        if (redis === undefined) return;
        const requests = streams === 1 ? cfg.serial : cfg.requests;
        const before = totalCpuMs(redis.pids);
        const r = await redisLoad(redis.client, redis.keys, requests, streams);
        const cpu = totalCpuMs(redis.pids) - before;
        if (r.failed > 0) problems.push(`${id}: ${r.failed} GETs failed (${r.failures[0]})`);
        samples.get(id).push({ ...r, requests, cpuUs: (cpu * 1000) / requests });
        return;
      }
      const cluster = clusters[which];
      if (which === "warm") {
        const sample = await runWarm(cluster, split, scenario, cfg);
        if (sample.failed > 0) {
          problems.push(`${id}: ${sample.failed} Gets failed (${sample.failures[0]})`);
        }
        samples.get(id).push(sample);
        return;
      }
      const keys = Array.from({ length: cfg.cold }, (_, i) => `${id}-r${round + 1}-${i}`);
      for (const node of cluster.nodes) node.loaded = [];
      const r = await measuredLoad(cluster, keys, keys.length, streams);
      if (r.failed > 0) problems.push(`${id}: ${r.failed} Gets failed (${r.failures[0]})`);
      // Loads are logged as the getter starts; every Get has been answered.
      await new Promise((resolve) => setTimeout(resolve, 100));
      const owners = await ownersOf(cluster.members, keys);
      const loads = new Map();
      let notOnOwner = 0;
      for (const node of cluster.nodes) {
        for (const key of node.loaded) {
          loads.set(key, (loads.get(key) ?? 0) + 1);
          if (owners.get(key) !== node.address) notOnOwner++;
        }
      }
      const wrong = keys.filter((key) => loads.get(key) !== 1).length;
      const sourceWrong = keys.filter((key) => source.requests.get(key) !== 1).length;
      if (wrong > 0 || sourceWrong > 0 || notOnOwner > 0) {
        problems.push(
          `${id} round ${round}: ${wrong} keys not loaded exactly once, ${sourceWrong} not requested from the source once, ${notOnOwner} loads off the owner`,
        );
      }
      samples.get(id).push(r);
    };

    for (let round = -cfg.warmup; round < cfg.rounds; round++) {
      for (let j = 0; j < chosen.length; j++) {
        const scenario = chosen[(((round + j) % chosen.length) + chosen.length) % chosen.length];
        await runOne(scenario, round);
        const list = samples.get(scenario.id);
        const last = list.at(-1);
        if (last !== undefined) {
          say(
            `${round < 0 ? "warm-up" : `round ${round + 1}/${cfg.rounds}`} ${scenario.id}: ${formatRate(last.rate)} req/s, ${formatUs(last.cpuUs)} CPU/req, p99 ${formatMs(last.p99)}`,
          );
        }
        if (round < 0) list.length = 0;
      }
    }
  } finally {
    await Promise.all(Object.values(clusters).map(stopCluster));
    await stopRedis(redis);
    await source.close();
  }

  const results = chosen
    .filter((s) => samples.get(s.id).length > 0)
    .map((s) => summarize(s, samples.get(s.id)));
  const byId = new Map(results.map((r) => [r.id, r]));
  // The median of the per-round ratios: the two rows of one round ran seconds
  // apart, so a busy spell of the machine shifts both (the rows' medians can
  // come from different rounds).
  /** `combine(numerator samples, denominator samples)` of two scenarios' CPU per request; "n/a" when one did not run. */
  const ratioBy = (combine) => (a, b) => {
    const x = byId.get(a);
    const y = byId.get(b);
    return x === undefined || y === undefined
      ? "n/a"
      : formatRatio(combine(x.cpuSamples, y.cpuSamples));
  };
  const ratio = ratioBy((x, y) => pairedRatios(x, y).median);
  // The ratio of the CPU summed over every round (each round runs the same
  // requests): a mark-compact costs tens of ms and lands in whichever round
  // is running, so one round's ratio can swing by half; summed, its cost is
  // spread over the requests that made its garbage.
  const sum = (list) => list.reduce((total, v) => total + v, 0);
  const summedRatio = ratioBy((x, y) => sum(x) / sum(y));
  const table = markdownTable(
    ["scenario", "processes", "conns×streams", ...RUN_COLUMNS],
    results.map((r) => [
      r.label,
      r.id.startsWith("redis") ? "1 redis-server" : "3 nodes",
      `1×${r.streams}`,
      ...runCells(r),
    ]),
    ["l", "l", "l", ...RUN_ALIGN],
  );
  const load = loadAverage();
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  const markdown = [
    "### Costs (CPU per request summed over the serving processes)",
    "",
    `${cfg.rounds} round(s) after ${cfg.warmup} discarded, every scenario once per round, the first one rotating; medians over the rounds. ` +
      "CPU per request: CPU time (per-thread /proc schedstat, ns) of every node of the scenario's cluster (Redis: the redis-server process), " +
      "over the run, / requests; the load generator in this process is not counted. Cold rows: fresh keys per run through one node of 3, " +
      "an HTTP source answering after 1 ms. max: the slowest request of the run (median over rounds).",
    "",
    table,
    "",
    `Ratios of CPU per request (medians of the per-round ratios): forwarded / local hit at 1×64 ${ratio("fwd64", "hit64")} (one owner ${ratio("fwd64one", "hit64")}), serial ${ratio("fwd1", "hit1")}; ` +
      `cold --replicas 2 / --replicas 0 ${ratio("cold2", "cold0")}, --await-replicas / not ${ratio("cold2await", "cold2")}; DistCache hit / Redis GET at 1×64 ${ratio("hit64", "redis64")}. ` +
      `Of the CPU summed over the rounds (a mark-compact's cost spread over every round instead of landing in one): forwarded / local hit at 1×64 ${summedRatio("fwd64", "hit64")} (one owner ${summedRatio("fwd64one", "hit64")}), serial ${summedRatio("fwd1", "hit1")}. ` +
      `Load average at the end: ${load} on ${os.cpus().length} cores (other work on the machine slows req/s more than CPU per request). ` +
      `Checked: every Get answered the source's value; every cold key loaded exactly once, on its owner. Costs part took ${seconds.toFixed(1)} s.` +
      (nodeFlags.length > 0 ? ` Node flags: \`${nodeFlags.join(" ")}\`.` : "") +
      (notes.length > 0 ? `\n\n${notes.join("\n")}` : "") +
      (problems.length > 0 ? `\n\n**FAILED checks:** ${problems.join("; ")}` : ""),
  ].join("\n");
  return { ok: problems.length === 0, markdown, results };
}

// --- --against DIR: this tree beside another built checkout ----------------------

/**
 * The node starter of checkout `dir`: its scripts/lib/node-process.mjs startNode
 * (which resolves that tree's own NODE_MAIN), else this tree's startChild with
 * `dir`'s node main. Throws when `dir` has no built node main.
 */
async function nodeStarterOf(dir) {
  const main = path.join(dir, "apps/node/dist/main.js");
  if (!existsSync(main)) {
    throw new Error(
      `costs: --against ${dir}: ${main} not found; give a checkout of this repo with its dist built (pnpm build there)`,
    );
  }
  const lib = path.join(dir, "scripts/lib/node-process.mjs");
  if (existsSync(lib)) {
    const theirs = await import(pathToFileURL(lib).href);
    if (typeof theirs.startNode === "function") {
      const ran = typeof theirs.NODE_MAIN === "string" ? theirs.NODE_MAIN : main;
      return { start: theirs.startNode, how: `its ${path.relative(dir, lib)} startNode (${ran})` };
    }
  }
  // As this tree's startNode, with the other tree's main.
  const start = (args, { label = "distcache-node", nodeFlags = [], ...options } = {}) =>
    startChild(label, [...nodeFlags, main, "--admin-port", "0", ...args], READY_TEXT, options);
  return { start, how: `this tree's startChild with ${main}` };
}

/**
 * The warm scenarios on two 3-node clusters, this tree's and `against`'s (another
 * checkout with built dist/), interleaved: each round runs every chosen warm
 * scenario (first one rotating) on both clusters back to back, the tree that goes
 * first alternating each round. Other chosen scenarios are skipped with a note.
 */
async function runCostsAgainst({ quick, scenarios, nodeFlags, against, log }) {
  const dir = path.resolve(against);
  const starter = await nodeStarterOf(dir);
  const cfg = quick ? QUICK : FULL;
  const chosen = SCENARIOS.filter((s) => scenarios.includes(s.id) && s.cluster === "warm");
  const skipped = scenarios.filter((id) => !chosen.some((s) => s.id === id));
  if (chosen.length === 0) {
    const warm = SCENARIOS.filter((s) => s.cluster === "warm").map((s) => s.id);
    throw new Error(`costs: --against compares only the warm scenarios (${warm}); none chosen`);
  }
  const t0 = process.hrtime.bigint();
  const say = (line) =>
    log(`[${(Number(process.hrtime.bigint() - t0) / 1e9).toFixed(1)} s] costs: ${line}`);
  const problems = [];
  const notes = [];
  if (skipped.length > 0) {
    notes.push(`SKIP ${skipped.join(", ")}: --against compares only the warm scenarios`);
    say(notes.at(-1));
  }
  const dirName = path.basename(dir);
  const trees = [
    { key: "this", name: "this tree", dir: path.resolve(ROOT), start: startNodeProcess },
    { key: "other", name: dirName, dir, start: starter.start },
  ];
  for (const tree of trees) tree.samples = new Map(chosen.map((s) => [s.id, []]));
  say(`this tree ${trees[0].dir} against ${dir} (its nodes started with ${starter.how})`);
  const source = await startSource();
  try {
    for (const tree of trees) {
      tree.cluster = await startCluster(
        tree.key === "this" ? "warm" : `warm ${dirName}`,
        0,
        source.url,
        nodeFlags,
        [],
        tree.start,
      );
      // The ring is the same algorithm in both trees; the split is still per cluster (its ports).
      const { split, warmUp } = await warmCluster(tree.cluster, cfg.warmKeys);
      tree.split = split;
      if (warmUp.failed > 0) {
        problems.push(`${tree.name} warm-up: ${warmUp.failed} Gets failed (${warmUp.failures[0]})`);
      }
    }
    for (let round = -cfg.warmup; round < cfg.rounds; round++) {
      const order = ((round % 2) + 2) % 2 === 0 ? trees : [...trees].reverse();
      for (let j = 0; j < chosen.length; j++) {
        const scenario = chosen[(((round + j) % chosen.length) + chosen.length) % chosen.length];
        for (const tree of order) {
          const sample = await runWarm(tree.cluster, tree.split, scenario, cfg);
          if (sample.failed > 0) {
            problems.push(
              `${tree.name} ${scenario.id}: ${sample.failed} Gets failed (${sample.failures[0]})`,
            );
          }
          say(
            `${round < 0 ? "warm-up" : `round ${round + 1}/${cfg.rounds}`} ${scenario.id} ${tree.name}: ${formatRate(sample.rate)} req/s, ${formatUs(sample.cpuUs)} CPU/req, p99 ${formatMs(sample.p99)}`,
          );
          if (round >= 0) tree.samples.get(scenario.id).push(sample);
        }
      }
    }
  } finally {
    await Promise.all(trees.map((tree) => stopCluster(tree.cluster)));
    await source.close();
  }

  for (const tree of trees) {
    tree.results = new Map(chosen.map((s) => [s.id, summarize(s, tree.samples.get(s.id))]));
  }
  const [self, other] = trees;
  const scenarioCell = (s) => `${s.label}, 1×${s.streams}`;
  const perTree = markdownTable(
    ["scenario", "tree", ...RUN_COLUMNS],
    chosen.flatMap((s) =>
      trees.map((tree) => [scenarioCell(s), tree.name, ...runCells(tree.results.get(s.id))]),
    ),
    ["l", "l", ...RUN_ALIGN],
  );
  const perRound = (ratios) => ratios.map((v) => (Number.isFinite(v) ? v.toFixed(2) : "n/a"));
  const versus = markdownTable(
    [
      "scenario",
      "this tree CPU/req",
      `${dirName} CPU/req`,
      `this / ${dirName}`,
      "per round",
      "this tree req/s",
      `${dirName} req/s`,
    ],
    chosen.map((s) => {
      const a = self.results.get(s.id);
      const b = other.results.get(s.id);
      const paired = pairedRatios(a.cpuSamples, b.cpuSamples);
      return [
        scenarioCell(s),
        formatUs(a.cpuUs),
        formatUs(b.cpuUs),
        formatRatio(paired.median),
        perRound(paired.perRound).join(" "),
        formatRate(a.rate),
        formatRate(b.rate),
      ];
    }),
    ["l", "r", "r", "r", "l", "r", "r"],
  );
  const ratioLine = (tree) => {
    const parts = WARM_RATIOS.map(([label, a, b]) => {
      const x = tree.results.get(a);
      const y = tree.results.get(b);
      if (x === undefined || y === undefined) return `${label} n/a`;
      const paired = pairedRatios(x.cpuSamples, y.cpuSamples);
      return `${label} ${formatRatio(paired.median)} (per round: ${perRound(paired.perRound).join(" ")})`;
    });
    return `- ${tree.name} (${tree.dir}): ${parts.join("; ")}`;
  };
  const load = loadAverage();
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  const markdown = [
    `### Costs, this tree against ${dirName} (CPU per request summed over the serving processes)`,
    "",
    `This tree: \`${self.dir}\`; against: \`${dir}\` (its nodes started with ${starter.how}). ` +
      `Two warm clusters (3 nodes each, --replicas 0, one HTTP source), one per tree. ${cfg.rounds} round(s) after ${cfg.warmup} discarded; ` +
      "each round runs every scenario on both clusters back to back, the tree that goes first alternating each round, the first scenario rotating; medians over the rounds. " +
      "CPU per request: CPU time (per-thread /proc schedstat, ns) of the 3 nodes of the tree's cluster, over the run, / requests; the load generator in this process is not counted. " +
      `this / ${dirName} and the ratios below: the median over rounds of the same round's ratio.`,
    "",
    perTree,
    "",
    versus,
    "",
    "Ratios of CPU per request, per tree:",
    "",
    ...trees.map(ratioLine),
    "",
    `Load average at the end: ${load} on ${os.cpus().length} cores (other work on the machine slows req/s more than CPU per request). ` +
      `Checked: every Get answered the source's value. Costs part took ${seconds.toFixed(1)} s.` +
      (nodeFlags.length > 0 ? ` Node flags: \`${nodeFlags.join(" ")}\`.` : "") +
      (notes.length > 0 ? `\n\n${notes.join("\n")}` : "") +
      (problems.length > 0 ? `\n\n**FAILED checks:** ${problems.join("; ")}` : ""),
  ].join("\n");
  const results = trees.flatMap((tree) =>
    [...tree.results.values()].map((r) => ({ ...r, tree: tree.name, dir: tree.dir })),
  );
  return { ok: problems.length === 0, markdown, results };
}

/**
 * Reads `--quick`, `--scenarios a,b`, `--node-flags "..."` (also BENCH_NODE_FLAGS)
 * and `--against DIR`.
 */
export function costsArgs(argv) {
  const quick = argv.includes("--quick");
  const value = (name) => {
    const i = argv.findIndex((a) => a === name || a.startsWith(`${name}=`));
    if (i < 0) return undefined;
    return argv[i].includes("=") ? argv[i].slice(name.length + 1) : argv[i + 1];
  };
  const scenarioList = value("--scenarios");
  const scenarios = scenarioList === undefined ? SCENARIO_IDS : scenarioList.split(",");
  const unknown = scenarios.filter((s) => !SCENARIO_IDS.includes(s));
  if (unknown.length > 0) {
    throw new Error(
      `costs: unknown scenarios ${unknown.join(",")}; known: ${SCENARIO_IDS.join(",")}`,
    );
  }
  // biome-ignore lint/suspicious/noUndeclaredEnvVars: run by node after the build, not a turbo task
  const flagText = value("--node-flags") ?? process.env.BENCH_NODE_FLAGS ?? "";
  const nodeFlags = flagText.split(" ").filter((f) => f !== "");
  const against = value("--against");
  if (argv.some((a) => a === "--against" || a.startsWith("--against="))) {
    if (against === undefined || against === "" || against.startsWith("--")) {
      throw new Error("costs: --against needs a directory: --against DIR");
    }
  }
  return { quick, scenarios, nodeFlags, against };
}

// Standalone: node bench/costs.mjs [--quick] [--scenarios a,b] [--node-flags "..."] [--against DIR]
if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const report = await runCosts(costsArgs(process.argv.slice(2)));
  console.log(report.markdown);
  process.exit(report.ok ? 0 : 1);
}
