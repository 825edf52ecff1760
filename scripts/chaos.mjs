#!/usr/bin/env node
// `pnpm chaos`: a soak run. Three distcache-node processes on free loopback
// ports share one versioned HTTP data source (run here, port 0). K client
// workers send random Get/Set/Delete through random live nodes while, every
// 20–40 s, one node is killed with SIGKILL and restarted on its port a few
// seconds later. At the end the script checks:
//   - stale reads while every node was up = 0 (a Get that started after a
//     Set/Delete was acknowledged returned an older version);
//   - wrong values = 0 (a value that is not exactly what the source wrote);
//   - errors while every node was up <= 1% of requests;
//   - every node's RSS <= its group budget + RSS_ALLOWANCE;
//   - no leaks: fds, active handles (timers included) and sessions after the
//     run, at rest, vs a baseline at rest after warm-up, within small slacks;
//   - SIGTERM: every node exits 0 within its drain timeout.
// It prints Markdown tables (paste them into docs/operations.md) and exits 1
// if a check failed, 2 if the run itself broke. Every child is killed by pid
// on any exit, Ctrl-C included. See docs/operations.md.
//
// Usage: node scripts/chaos.mjs [--minutes N | --seconds N] [--seed S] [--workers K] [--keys N]
// (after a build; `pnpm chaos` builds first).

import { existsSync, readFileSync, realpathSync } from "node:fs";
import http from "node:http";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import { machine, markdownTable, mulberry32 } from "../bench/harness.mjs";
import { killTracked, loadedKeyOf, startNode as startNodeProcess } from "./lib/node-process.mjs";
import { freePorts } from "./lib/ports.mjs";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const HOST = "127.0.0.1";
const GROUP = "chaos";

// --- the run's constants (stated in docs/operations.md) ------------------------
/** Each node's group budget: less than the key space's data, so nodes evict. */
const BUDGET_BYTES = 1 << 20;
/** RSS may exceed the budget by this much: the Node runtime, V8's heap
 * (capped at NODE_OLD_SPACE_MIB), HTTP/2 and socket buffers. Measured under
 * this load with the cap: 110–117 MiB (Node 20, x64). Without a cap V8 let
 * garbage pile up to 247–254 MiB peaks at ~950 requests/s (heap used back to
 * 17–67 MiB at rest), which is why a production node should run with one. */
const RSS_ALLOWANCE_BYTES = 192 << 20;
/** V8's old-space cap for each node (`--max-old-space-size`), in MiB. */
const NODE_OLD_SPACE_MIB = 128;
/** V8's young-generation cap per semi-space (`--max-semi-space-size`), in MiB. */
const NODE_SEMI_SPACE_MIB = 8;
/** Growth allowed between the at-rest baseline and the at-rest end, per node. */
const FD_SLACK = 4;
const HANDLE_SLACK = 4;
const SESSION_SLACK = 0;
/** Errors allowed among requests that overlapped no fault window. */
const HEALTHY_ERROR_RATE = 0.01;
/** A restarted node's fault window lasts this long after it serves again. */
const GRACE_MS = 3_000;
/** Pause with no traffic before a baseline or final snapshot: longer than the
 * node's 4 s idle keep-alive to the source, so those sockets are gone. */
const QUIET_MS = 6_000;
const WARMUP_MS = 5_000;
const CALL_TIMEOUT_MS = 5_000;
/** ConnectPool's default drain timeout, plus time for the process to exit. */
const DRAIN_TIMEOUT_MS = 5_000;
const EXIT_ALLOWANCE_MS = 2_000;
const PEER_TIMEOUT_MS = 1_000;
/** The source answers after 0–SOURCE_DELAY_MS, with the version it read on arrival:
 * a slow read of a snapshot, so loads are in flight when writes land. */
const SOURCE_DELAY_MS = 10;
const HOT_KEYS = 16;
const MIX = { get: 0.8, set: 0.1, delete: 0.1 };

// --- options -------------------------------------------------------------------
const USAGE =
  "Usage: node scripts/chaos.mjs [--minutes N (default 2) | --seconds N] [--seed S] [--workers K (16)] [--keys N (2000)] [--clock-steps]";
// `pnpm chaos -- --seconds 60` may pass the "--" through: drop it.
const argv = process.argv.slice(2);
if (argv[0] === "--") argv.shift();
let opts;
try {
  opts = parseArgs({
    args: argv,
    options: {
      minutes: { type: "string" },
      seconds: { type: "string" },
      seed: { type: "string" },
      workers: { type: "string", default: "16" },
      keys: { type: "string", default: "2000" },
      "clock-steps": { type: "boolean", default: false },
      help: { type: "boolean", default: false },
    },
  }).values;
} catch (error) {
  console.error(`chaos: ${error.message}\n${USAGE}`);
  process.exit(2);
}
if (opts.help) {
  console.log(USAGE);
  process.exit(0);
}
function positive(name, text) {
  const value = Number(text);
  if (!Number.isFinite(value) || value <= 0) {
    console.error(`chaos: --${name} must be a positive number, got "${text}"`);
    process.exit(2);
  }
  return value;
}
const DURATION_MS =
  opts.seconds !== undefined
    ? positive("seconds", opts.seconds) * 1_000
    : positive("minutes", opts.minutes ?? "2") * 60_000;
if (opts.seed !== undefined && !/^\d+$/.test(opts.seed)) {
  console.error(`chaos: --seed must be a non-negative integer, got "${opts.seed}"`);
  process.exit(2);
}
const SEED =
  opts.seed !== undefined ? Number(opts.seed) >>> 0 : (Date.now() ^ (process.pid << 16)) >>> 0;
const WORKERS = Math.floor(positive("workers", opts.workers));
// --clock-steps: each restarted node comes back with its wall clock shifted by
// the next of these (Debian's libfaketime, preloaded; monotonic time is left
// alone), so write stamps are checked across clocks that step back and forth.
const FAKETIME_LIB = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";
const CLOCK_STEPS = ["-1h", "+1h", "-20s", undefined];
if (opts["clock-steps"] && !existsSync(FAKETIME_LIB)) {
  console.error(`chaos: --clock-steps needs ${FAKETIME_LIB} (Debian: apt-get install faketime)`);
  process.exit(2);
}
let restarts = 0;
const KEYS = Math.floor(positive("keys", opts.keys));

// The fault schedule (times, victims, downtimes) depends on the seed alone; the
// traffic's choices use their own stream. Interleavings still depend on timing.
const faultRandom = mulberry32(SEED);
const trafficRandom = mulberry32(SEED ^ 0x9e3779b9);
const pick = (random, n) => Math.floor(random() * n);
const uniform = (random, lo, hi) => lo + random() * (hi - lo);

// --- client libraries: the workspace's own Connect-ES, as ESM ------------------
async function importPackage(fromDir, name) {
  const dir = realpathSync(path.join(fromDir, "node_modules", name));
  const { exports } = JSON.parse(readFileSync(path.join(dir, "package.json"), "utf8"));
  return import(pathToFileURL(path.join(dir, exports["."].import)).href);
}
const clientDir = path.join(ROOT, "apps/client");
const { createClient, ConnectError, Code } = await importPackage(clientDir, "@connectrpc/connect");
const { createGrpcTransport, Http2SessionManager } = await importPackage(
  clientDir,
  "@connectrpc/connect-node",
);
const { CacheService } = await import(
  pathToFileURL(path.join(ROOT, "packages/transport-connect/dist/index.js")).href
);

// --- child processes: tracked by pid (lib/node-process.mjs kills them on exit) ----
const killAll = () => killTracked("SIGKILL");
for (const signal of ["SIGINT", "SIGTERM"]) {
  process.on(signal, () => {
    console.error(`\nchaos: ${signal}, killing the nodes`);
    killAll();
    process.exit(130);
  });
}
for (const event of ["uncaughtException", "unhandledRejection"]) {
  process.on(event, (error) => {
    console.error("chaos: run broke:", error);
    killAll();
    process.exit(2);
  });
}
// The run stops by itself; this is the backstop if something hangs.
const HARD_LIMIT_MS = DURATION_MS + 3 * 60_000;
setTimeout(() => {
  console.error(`chaos: still running after ${HARD_LIMIT_MS / 1000} s, giving up`);
  killAll();
  process.exit(2);
}, HARD_LIMIT_MS).unref();

const now = () => performance.now();
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// --- the versioned data source ---------------------------------------------------
const keys = Array.from({ length: KEYS }, (_, i) => `key-${String(i).padStart(5, "0")}`);
/** Source version per key; 0 = absent (404). Set and Delete both bump it. */
const versions = new Map();
let sourceRequests = 0;

function fnv1a(text) {
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return hash;
}
/** The exact value of `key` at `version`: `key:version:padding`, 100–1,499 bytes of padding. */
function versionedValue(key, version) {
  const length = 100 + (fnv1a(`${key}:${version}`) % 1_400);
  return `${key}:${version}:${(version % 36).toString(36).repeat(length)}`;
}

const source = http.createServer((request, response) => {
  sourceRequests++;
  const [, group, encoded] = (request.url ?? "").split("/");
  const key = decodeURIComponent(encoded ?? "");
  const version = group === GROUP ? (versions.get(key) ?? 0) : 0;
  setTimeout(() => {
    if (version === 0) {
      response.statusCode = 404;
      response.end();
    } else {
      response.end(versionedValue(key, version));
    }
  }, Math.random() * SOURCE_DELAY_MS);
});
source.keepAliveTimeout = 10_000;
await new Promise((resolve) => source.listen(0, HOST, resolve));
const SOURCE_URL = `http://${HOST}:${source.address().port}`;

// --- nodes -------------------------------------------------------------------------
const ports = await freePorts(3, HOST);
const members = ports.map((port) => `${HOST}:${port}`);

/** One slot per port; a restart puts a new process in the same slot. */
const slots = ports.map((port, index) => ({
  index,
  port,
  address: `${HOST}:${port}`,
  child: undefined,
  pids: [],
  up: false,
  loads: 0,
  tail: [],
  expectExit: false,
  unexpectedExits: [],
  baseline: undefined,
  final: undefined,
  peakRss: 0,
  /** When the current process began serving (performance.now()). */
  servingSince: 0,
  /** RSS in MiB every 5 s under load, across restarts of the slot. */
  rssSamples: [],
  exit: undefined,
}));

/** Starts the slot's node (its wall clock shifted by `clock`, e.g. "-1h"); resolves with its child once it serves. */
async function startNode(slot, clock) {
  const env =
    clock === undefined
      ? process.env
      : {
          ...process.env,
          LD_PRELOAD: FAKETIME_LIB,
          FAKETIME: clock,
          FAKETIME_DONT_FAKE_MONOTONIC: "1",
        };
  slot.clock = clock;
  const node = startNodeProcess(
    [
      ...["--host", HOST, "--port", String(slot.port), "--peers", members.join(",")],
      ...["--group", `${GROUP}:${BUDGET_BYTES}`, "--source-url", SOURCE_URL],
      ...["--peer-timeout", String(PEER_TIMEOUT_MS), "--replicas", "2"],
    ],
    {
      label: `node ${slot.address}`,
      // A production node caps V8's heap (see docs/operations.md, "Memory"):
      // without a cap V8 lets garbage pile up under load before a full GC.
      // And its young generation ("V8 flags"): Node 22 and 24 grow it to
      // 2 × 32 MiB under load, which alone put a node 10–25 MiB over the
      // allowance below (measured on Node 20, whose default is 16 MiB).
      nodeFlags: [
        `--max-old-space-size=${NODE_OLD_SPACE_MIB}`,
        `--max-semi-space-size=${NODE_SEMI_SPACE_MIB}`,
      ],
      ipc: true,
      env,
      // No ready timeout: HARD_LIMIT_MS is the backstop for a node that hangs.
      timeoutMs: 0,
      // The tail printed on an unexpected exit leaves out the (many) load lines.
      keepLines: 0,
      onLine: (line) => {
        if (loadedKeyOf(line) !== undefined) slot.loads++;
        else {
          slot.tail.push(line);
          if (slot.tail.length > 20) slot.tail.shift();
        }
      },
    },
  );
  const child = node.child;
  slot.child = child;
  slot.pids.push(child.pid);
  slot.expectExit = false;
  child.exited = node.exited.then(({ code, signal }) => {
    slot.up = false;
    if (!slot.expectExit) {
      slot.unexpectedExits.push(`pid ${child.pid}: ${signal ?? code}`);
      console.error(`chaos: node ${slot.address} exited unexpectedly (${signal ?? code})`);
      console.error(slot.tail.join("\n"));
    }
    return { code, signal };
  });
  await node.ready;
  return child;
}

let statsId = 0;
function requestStats(slot) {
  const child = slot.child;
  return new Promise((resolve, reject) => {
    const id = ++statsId;
    const timer = setTimeout(() => {
      child.off("message", onMessage);
      reject(new Error(`no stats from ${slot.address} within 3 s`));
    }, 3_000);
    const onMessage = (message) => {
      if (message?.type !== "stats" || message.id !== id) return;
      clearTimeout(timer);
      child.off("message", onMessage);
      resolve(message);
    };
    child.on("message", onMessage);
    child.send({ type: "stats", id });
  });
}

// --- clients: one gRPC transport (one HTTP/2 session) per node -----------------------
const sessions = slots.map((slot) => new Http2SessionManager(`http://${slot.address}`));
const clients = slots.map((slot, i) =>
  createClient(
    CacheService,
    createGrpcTransport({ baseUrl: `http://${slot.address}`, sessionManager: sessions[i] }),
  ),
);

// --- bookkeeping ---------------------------------------------------------------
/** Fault windows: [kill, restarted + GRACE_MS]; `end` is Infinity while the node is down. */
const faults = [];
const overlapsFault = (from, to) => faults.some((w) => w.start <= to && w.end >= from);

/** Per key, the newest acknowledged write: its version, when it was sent, when acknowledged. */
const acked = new Map();
/** Keys with a write in flight: writes to one key are serialized, as an application's would be. */
const writing = new Set();

/** stats[op][window] = { requests, outcomes: {name: n}, latencies: [] } */
const stats = {};
for (const op of ["get", "set", "delete"]) {
  stats[op] = {};
  for (const window of ["healthy", "faults"]) {
    stats[op][window] = { requests: 0, outcomes: {}, latencies: [] };
  }
}
const stale = {
  healthy: 0,
  faults: 0,
  judged: { healthy: 0, faults: 0 },
  examples: { healthy: [], faults: [] },
  /** stale[window] split by the node that answered and how long ago it last (re)started serving. */
  byNode: { healthy: new Map(), faults: new Map() },
};
let wrongValues = 0;
let partialAcksHealthy = 0;
const wrongExamples = [];
/** The first messages of each (op, window, outcome) that is not plain success, for the report. */
const notes = new Map();
let trafficStart = 0;
let pausedMs = 0;
/** Seconds of traffic time (the baseline pause excluded) at performance.now() `at`. */
const trafficSeconds = (at) =>
  ((at - trafficStart - (at > trafficStart + WARMUP_MS ? pausedMs : 0)) / 1000).toFixed(1);
function note(op, window, outcome, message, at) {
  const key = `${op}, ${window === "healthy" ? "all nodes up" : "fault window"}, ${outcome}`;
  const list = notes.get(key) ?? [];
  if (list.length < 2) list.push(`t=${trafficSeconds(at)} s: ${message.slice(0, 200)}`);
  notes.set(key, list);
}

function record(op, started, ended, outcome) {
  const window = overlapsFault(started, ended) ? "faults" : "healthy";
  const s = stats[op][window];
  s.requests++;
  s.outcomes[outcome] = (s.outcomes[outcome] ?? 0) + 1;
  s.latencies.push(ended - started);
  return window;
}

function failure(error) {
  if (error instanceof ConnectError) return `error:${Code[error.code] ?? error.code}`;
  return `error:${error?.code ?? error?.name ?? "unknown"}`;
}

function pickKey() {
  return keys[
    trafficRandom() < 0.3
      ? pick(trafficRandom, Math.min(HOT_KEYS, KEYS))
      : pick(trafficRandom, KEYS)
  ];
}

function pickNode() {
  // A load balancer's view: only nodes known to be up get new requests.
  const live = slots.filter((slot) => slot.up);
  return live.length === 0 ? undefined : live[pick(trafficRandom, live.length)];
}

async function doGet(slot, key) {
  const before = acked.get(key);
  const started = now();
  let outcome;
  let version;
  let message;
  try {
    const response = await clients[slot.index].get(
      { group: GROUP, key },
      { timeoutMs: CALL_TIMEOUT_MS },
    );
    if (response.found) {
      const text = new TextDecoder().decode(response.data);
      const [name, versionText] = text.split(":", 2);
      version = Number(versionText);
      if (name !== key || !Number.isInteger(version) || text !== versionedValue(key, version)) {
        outcome = "wrong value";
        wrongValues++;
        if (wrongExamples.length < 5)
          wrongExamples.push(`${key} via ${slot.address}: ${text.slice(0, 60)}`);
        version = undefined;
      } else outcome = "ok";
    } else if (response.err.startsWith("key not found")) {
      outcome = "not found";
      version = 0;
    } else {
      outcome = "in-band error";
      message = response.err;
    }
  } catch (error) {
    outcome = failure(error);
    message = String(error?.message ?? error);
  }
  const ended = now();
  const getWindow = record("get", started, ended, outcome);
  if (message !== undefined) note("get", getWindow, outcome, message, started);
  if (before !== undefined && version !== undefined) {
    const window = overlapsFault(before.sent, ended) ? "faults" : "healthy";
    stale.judged[window]++;
    if (version < before.version) {
      stale[window]++;
      const sinceStart = (started - slot.servingSince) / 1000;
      const entry = stale.byNode[window].get(slot.address) ?? { count: 0, min: Infinity, max: 0 };
      entry.count++;
      entry.min = Math.min(entry.min, sinceStart);
      entry.max = Math.max(entry.max, sinceStart);
      stale.byNode[window].set(slot.address, entry);
      if (stale.examples[window].length < 5) {
        stale.examples[window].push(
          `t=${trafficSeconds(started)} s: ${key} via ${slot.address} returned v${version}; v${before.version} was acknowledged ${(started - before.at).toFixed(1)} ms before the Get started`,
        );
      }
    }
  }
}

async function doWrite(op, slot, key) {
  writing.add(key);
  const version = (versions.get(key) ?? 0) + 1;
  versions.set(key, version);
  const started = now();
  let outcome;
  let message;
  try {
    const client = clients[slot.index];
    const call = { timeoutMs: CALL_TIMEOUT_MS };
    const response =
      op === "set"
        ? await client.set(
            { group: GROUP, key, data: Buffer.from(versionedValue(key, version)) },
            call,
          )
        : await client.delete({ group: GROUP, key }, call);
    if (response.success) {
      outcome = response.err === "" ? "ok" : "ok, partial";
      acked.set(key, { version, sent: started, at: now() });
    } else outcome = "refused";
    if (response.err !== "") message = response.err;
  } catch (error) {
    outcome = failure(error);
    message = String(error?.message ?? error);
  } finally {
    writing.delete(key);
  }
  const window = record(op, started, now(), outcome);
  if (message !== undefined) note(op, window, outcome, message, started);
  if (outcome === "ok, partial" && window === "healthy") partialAcksHealthy++;
}

let traffic = "running"; // "running" | "paused" | "stopped"
let resume = () => {};
let resumed = Promise.resolve();
let inFlight = 0;

async function worker() {
  while (traffic !== "stopped") {
    if (traffic === "paused") {
      await resumed;
      continue;
    }
    const slot = pickNode();
    if (slot === undefined) {
      await sleep(50);
      continue;
    }
    const key = pickKey();
    const r = trafficRandom();
    inFlight++;
    try {
      if (r < MIX.get || writing.has(key)) await doGet(slot, key);
      else await doWrite(r < MIX.get + MIX.set ? "set" : "delete", slot, key);
    } finally {
      inFlight--;
    }
  }
}

async function quiesce() {
  while (inFlight > 0) await sleep(20);
  await sleep(QUIET_MS);
}

async function snapshot() {
  return Promise.all(slots.map((slot) => requestStats(slot)));
}

// --- faults ------------------------------------------------------------------------
const kills = [];
async function killAndRestart() {
  const slot = slots[pick(faultRandom, slots.length)];
  const downMs = uniform(faultRandom, 2_000, 5_000);
  const window = { start: now(), end: Number.POSITIVE_INFINITY };
  faults.push(window);
  slot.up = false;
  slot.expectExit = true;
  const victim = slot.child;
  const kill = { at: window.start, node: slot.address, pid: victim.pid, downMs, servingAfterMs: 0 };
  kills.push(kill);
  process.kill(victim.pid, "SIGKILL");
  await victim.exited;
  await sleep(downMs);
  const clock = opts["clock-steps"] ? CLOCK_STEPS[restarts % CLOCK_STEPS.length] : undefined;
  restarts++;
  kill.clock = clock ?? "right time";
  await startNode(slot, clock);
  slot.up = true;
  const ready = now();
  slot.servingSince = ready;
  kill.servingAfterMs = ready - window.start;
  window.end = ready + GRACE_MS;
}

// --- the run -----------------------------------------------------------------------
const runStarted = new Date();
console.log(
  `chaos: seed ${SEED}, ${DURATION_MS / 1000} s of traffic, ${WORKERS} workers, ${KEYS} keys, nodes ${members.join(", ")}, source ${SOURCE_URL}`,
);
await Promise.all(slots.map((slot) => startNode(slot)));
for (const slot of slots) {
  slot.up = true;
  slot.servingSince = now();
}

const workers = Array.from({ length: WORKERS }, () => worker());
trafficStart = now();
await sleep(WARMUP_MS);

// Baseline at rest, after warm-up: no traffic for QUIET_MS, then every node's stats.
traffic = "paused";
resumed = new Promise((resolve) => {
  resume = resolve;
});
await quiesce();
const baseline = await snapshot();
slots.forEach((slot, i) => {
  slot.baseline = baseline[i];
});
pausedMs = now() - trafficStart - WARMUP_MS;
traffic = "running";
resume();
console.log(`chaos: baseline taken; traffic resumed (paused ${(pausedMs / 1000).toFixed(1)} s)`);

// RSS under load, every 5 s, per node: the RSS check takes the peak.
const sampler = setInterval(() => {
  for (const slot of slots) {
    if (!slot.up) continue;
    requestStats(slot).then(
      (s) => {
        slot.peakRss = Math.max(slot.peakRss, s.rss);
        slot.rssSamples.push(Math.round(s.rss / (1 << 20)));
      },
      () => {}, // killed meanwhile: the next sample asks its successor
    );
  }
}, 5_000);

// Traffic time excludes the pause. Kills every 20–40 s; for runs shorter than
// 80 s the interval shrinks so that at least one kill happens. No kill starts
// later than 12 s before the end, so the restart and its grace end in the run.
const runEnd = now() + DURATION_MS - WARMUP_MS;
const scale = DURATION_MS < 80_000 ? DURATION_MS / 80_000 : 1;
const lastKill = runEnd - 12_000;
// The first kill is scheduled no later than the last moment a kill may start.
let nextKill = Math.min(now() + uniform(faultRandom, 20_000, 40_000) * scale, lastKill);
while (now() < runEnd) {
  // Judged by the scheduled time: the loop wakes up to 250 ms after it.
  if (nextKill <= now() && nextKill <= lastKill) {
    await killAndRestart();
    const k = kills.at(-1);
    console.log(
      `chaos: t=${trafficSeconds(k.at)} s killed ${k.node} (pid ${k.pid}), serving again after ${(k.servingAfterMs / 1000).toFixed(1)} s`,
    );
    nextKill = now() + uniform(faultRandom, 20_000, 40_000) * scale;
  }
  await sleep(Math.max(0, Math.min(250, runEnd - now())));
}

traffic = "stopped";
clearInterval(sampler);
await Promise.all(workers);
const trafficMs = now() - trafficStart - pausedMs;
await quiesce();
const finals = await snapshot();
slots.forEach((slot, i) => {
  slot.final = finals[i];
});

// SIGTERM by pid; each must exit 0 within the drain timeout.
await Promise.all(
  slots.map(async (slot) => {
    slot.expectExit = true;
    const child = slot.child;
    const started = now();
    child.kill("SIGTERM");
    const result = await Promise.race([
      child.exited,
      sleep(DRAIN_TIMEOUT_MS + EXIT_ALLOWANCE_MS).then(() => undefined),
    ]);
    if (result === undefined) {
      process.kill(child.pid, "SIGKILL");
      slot.exit = { ok: false, text: "no exit in time (killed)" };
    } else {
      const ms = now() - started;
      slot.exit = {
        ok: result.code === 0,
        text: `${result.signal ?? result.code} in ${ms.toFixed(0)} ms`,
      };
    }
  }),
);
for (const session of sessions) session.abort();
source.closeAllConnections();
await new Promise((resolve) => source.close(resolve));

// --- summary -------------------------------------------------------------------
const MiB = (bytes) => `${(bytes / (1 << 20)).toFixed(1)} MiB`;
const pct = (n, of) => (of === 0 ? "–" : `${((100 * n) / of).toFixed(2)}%`);
function quantile(sorted, q) {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}
const ms = (x) => (Number.isNaN(x) ? "–" : x < 10 ? x.toFixed(2) : x.toFixed(1));
const isError = (outcome) =>
  outcome.startsWith("error:") || outcome === "in-band error" || outcome === "refused";
const handles = (s) => Object.values(s.activeResources).reduce((a, b) => a + b, 0);
const peerSessions = (s) => {
  const out = {};
  for (const [remote, n] of Object.entries(s.sockets.outbound)) {
    if (members.includes(remote)) out[remote] = n;
  }
  return out;
};

const requestRows = [];
let healthyRequests = 0;
let healthyErrors = 0;
let totalRequests = 0;
for (const op of ["get", "set", "delete"]) {
  for (const window of ["healthy", "faults"]) {
    const s = stats[op][window];
    totalRequests += s.requests;
    const errors = Object.entries(s.outcomes)
      .filter(([o]) => isError(o))
      .reduce((a, [, n]) => a + n, 0);
    if (window === "healthy") {
      healthyRequests += s.requests;
      healthyErrors += errors;
    }
    const sorted = Float64Array.from(s.latencies).sort();
    const outcomes = Object.entries(s.outcomes)
      .sort((a, b) => b[1] - a[1])
      .map(([o, n]) => `${o} ${n}`)
      .join(", ");
    requestRows.push([
      op,
      window === "healthy" ? "all nodes up" : "fault window",
      s.requests,
      outcomes || "–",
      pct(errors, s.requests),
      ms(quantile(sorted, 0.5)),
      ms(quantile(sorted, 0.99)),
    ]);
  }
}

const checks = [];
const check = (name, threshold, value, ok) => checks.push({ name, threshold, value, ok });
check("stale reads, all nodes up", "0", String(stale.healthy), stale.healthy === 0);
check("wrong values", "0", String(wrongValues), wrongValues === 0);
check(
  "errors, all nodes up",
  `<= ${HEALTHY_ERROR_RATE * 100}%`,
  `${healthyErrors} of ${healthyRequests} (${pct(healthyErrors, healthyRequests)})`,
  healthyRequests > 0 && healthyErrors <= HEALTHY_ERROR_RATE * healthyRequests,
);
check("faults injected", ">= 1 kill", String(kills.length), kills.length >= 1);
const nodeRows = [];
for (const slot of slots) {
  const b = slot.baseline;
  const f = slot.final;
  const rssLimit = BUDGET_BYTES + RSS_ALLOWANCE_BYTES;
  const peak = Math.max(slot.peakRss, b.rss, f.rss);
  check(
    `${slot.address} RSS, peak of 5 s samples`,
    `<= budget + ${MiB(RSS_ALLOWANCE_BYTES)} = ${MiB(rssLimit)}`,
    MiB(peak),
    peak <= rssLimit,
  );
  check(
    `${slot.address} cache bytes`,
    `<= ${MiB(BUDGET_BYTES)}`,
    `${f.group.bytes}`,
    f.group.bytes <= BUDGET_BYTES,
  );
  check(
    `${slot.address} fds`,
    `<= baseline + ${FD_SLACK}`,
    `${b.fds} → ${f.fds}`,
    f.fds <= b.fds + FD_SLACK,
  );
  const grown = Object.entries(f.activeResources)
    .filter(([type, n]) => n > (b.activeResources[type] ?? 0))
    .map(([type, n]) => `${type} +${n - (b.activeResources[type] ?? 0)}`);
  check(
    `${slot.address} active handles`,
    `<= baseline + ${HANDLE_SLACK}`,
    `${handles(b)} → ${handles(f)}${grown.length ? ` (${grown.join(", ")})` : ""}`,
    handles(f) <= handles(b) + HANDLE_SLACK,
  );
  const peersB = peerSessions(b);
  const peersF = peerSessions(f);
  const maxPeer = Math.max(0, ...Object.values(peersF));
  check(
    `${slot.address} sessions`,
    `inbound <= baseline + ${SESSION_SLACK}, <= 1 per peer`,
    `in ${b.sockets.inbound} → ${f.sockets.inbound}, to peers ${Object.values(peersB).reduce((a, n) => a + n, 0)} → ${Object.values(peersF).reduce((a, n) => a + n, 0)}`,
    f.sockets.inbound <= b.sockets.inbound + SESSION_SLACK && maxPeer <= 1,
  );
  check(
    `${slot.address} SIGTERM`,
    `exit 0 within ${(DRAIN_TIMEOUT_MS + EXIT_ALLOWANCE_MS) / 1000} s`,
    slot.exit.text,
    slot.exit.ok,
  );
  if (slot.unexpectedExits.length > 0) {
    check(`${slot.address} unexpected exits`, "none", slot.unexpectedExits.join("; "), false);
  }
  nodeRows.push([
    slot.address,
    slot.pids.length - 1,
    slot.loads,
    `${MiB(b.rss)} → ${MiB(f.rss)} (peak ${MiB(Math.max(slot.peakRss, b.rss, f.rss))})`,
    `${MiB(b.heapUsed)} → ${MiB(f.heapUsed)}`,
    `${b.fds} → ${f.fds}`,
    `${handles(b)} → ${handles(f)}`,
    `${b.activeResources.Timeout ?? 0} → ${f.activeResources.Timeout ?? 0}`,
    `${b.sockets.inbound} → ${f.sockets.inbound}`,
    `${f.group.items} / ${MiB(f.group.bytes)} / ${f.group.evictions}`,
    (f.pool.peers ?? []).reduce((sum, peer) => sum + peer.opened, 0),
  ]);
}

const failed = checks.filter((c) => !c.ok);
const lines = [];
lines.push(
  `Run ${runStarted.toISOString().slice(0, 16).replace("T", " ")} UTC on ${machine()}.`,
  `Seed ${SEED}; ${(trafficMs / 1000).toFixed(0)} s of traffic, ${WORKERS} workers, ${KEYS} keys ` +
    `(${HOT_KEYS} hot), mix ${MIX.get * 100}/${MIX.set * 100}/${MIX.delete * 100} Get/Set/Delete; ` +
    `${totalRequests} requests (${(totalRequests / (trafficMs / 1000)).toFixed(0)}/s); ` +
    `${sourceRequests} source GETs; budget ${MiB(BUDGET_BYTES)} per node.`,
  `Kills: ${
    kills.length === 0
      ? "none"
      : kills
          .map(
            (k) =>
              `${k.node} at t=${trafficSeconds(k.at)} s (serving again after ${(k.servingAfterMs / 1000).toFixed(1)} s${k.clock === undefined ? "" : `, clock ${k.clock}`})`,
          )
          .join("; ")
  }.`,
  "",
  markdownTable(
    ["op", "window", "requests", "outcomes", "errors", "p50 ms", "p99 ms"],
    requestRows,
    ["l", "l", "r", "l", "r", "r", "r"],
  ),
  "",
  markdownTable(
    ["stale reads", "all nodes up", "fault window"],
    [
      ["Gets judged (started after an ack)", stale.judged.healthy, stale.judged.faults],
      ["older than the acked version", stale.healthy, stale.faults],
    ],
    ["l", "r", "r"],
  ),
  "",
  markdownTable(
    [
      "node",
      "restarts",
      "getter calls",
      "RSS rest → rest (peak)",
      "heap used",
      "fds",
      "handles",
      "timers",
      "sessions in",
      "items / bytes / evictions",
      "breaker opens",
    ],
    nodeRows,
    ["l", "r", "r", "r", "r", "r", "r", "r", "r", "r", "r"],
  ),
  "",
  markdownTable(
    ["check", "threshold", "value", "result"],
    checks.map((c) => [c.name, c.threshold, c.value, c.ok ? "pass" : "FAIL"]),
    ["l", "l", "l", "l"],
  ),
);
if (partialAcksHealthy > 0)
  lines.push("", `Partial acks while all nodes were up: ${partialAcksHealthy}.`);
for (const window of ["healthy", "faults"]) {
  if (stale.examples[window].length === 0) continue;
  const title = window === "healthy" ? "all nodes up" : "fault window";
  const byNode = [...stale.byNode[window]].map(
    ([address, e]) =>
      `${address}: ${e.count}, ${e.min.toFixed(1)}–${e.max.toFixed(1)} s after it (re)started serving`,
  );
  lines.push(
    "",
    `Stale reads, ${title}, by the node that answered: ${byNode.join("; ")}.`,
    `Stale reads, ${title} (first few):`,
    ...stale.examples[window].map((e) => `- ${e}`),
  );
}
lines.push("", "RSS under load, MiB, every 5 s (a restart starts a new process):");
for (const slot of slots) lines.push(`- ${slot.address}: ${slot.rssSamples.join(" ")}`);
if (notes.size > 0) {
  lines.push("", "Failures and partial acks, first messages:");
  for (const [key, messages] of notes) {
    for (const message of messages) lines.push(`- ${key}: ${message}`);
  }
}
if (wrongExamples.length > 0)
  lines.push("", "Wrong values (first few):", ...wrongExamples.map((e) => `- ${e}`));
lines.push(
  "",
  failed.length === 0 ? "chaos: all checks passed" : `chaos: ${failed.length} check(s) failed`,
);
console.log(`\n${lines.join("\n")}`);
process.exit(failed.length === 0 ? 0 : 1);
