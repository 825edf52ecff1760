// A small benchmark harness with no dependencies, shared by the parts of `pnpm bench`.
//
// Method: every contender of one operation runs a fixed number of operations per
// sample; one warm-up round is discarded; the rounds interleave the contenders
// (the starting contender rotates each round) so slow drifts of the machine hit
// all of them alike; the result is the median of the rounds. Results of the
// measured loops go into `sink` so the JIT cannot drop the work.

import { spawnSync } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import os from "node:os";

/** Accumulates every loop's result; read by {@link checksum} so it stays live. */
let sink = 0;

/** The sink's value, printed by the runner (proves the loops' results were used). */
export function checksum() {
  return sink;
}

/** Deterministic 32-bit PRNG (mulberry32); returns floats in [0, 1). */
export function mulberry32(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Runs a full collection between samples when node was started with --expose-gc. */
const collect = typeof globalThis.gc === "function" ? globalThis.gc : () => {};

export function gcExposed() {
  return typeof globalThis.gc === "function";
}

function median(sorted) {
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/**
 * Measures one operation.
 *
 * @param {object} spec
 * @param {string} spec.operation   row label, e.g. "get (hit), 100k keys"
 * @param {{name: string, run: (n: number) => number | Promise<number>}[]} spec.contenders
 *        `run(n)` performs n operations and returns how many succeeded (hit, stored);
 *        anything but n means the contender measured something else, and throws.
 * @param {number} spec.ops         operations per sample
 * @param {number} spec.rounds      measured rounds (one sample per contender per round)
 * @param {number} [spec.warmup=1]  discarded rounds before measuring
 * @param {boolean} [spec.gc=true]  collect garbage before each sample (needs --expose-gc)
 * @returns {Promise<{operation: string, name: string, median: number, min: number, max: number, samples: number[]}[]>}
 */
export async function measure({ operation, contenders, ops, rounds, warmup = 1, gc = true }) {
  const samples = contenders.map(() => []);
  const k = contenders.length;
  for (let round = -warmup; round < rounds; round++) {
    const start = ((round % k) + k) % k;
    for (let j = 0; j < k; j++) {
      const c = (start + j) % k;
      if (gc) collect();
      const t0 = process.hrtime.bigint();
      let result = contenders[c].run(ops);
      if (result instanceof Promise) result = await result;
      const t1 = process.hrtime.bigint();
      if (result !== ops) {
        throw new Error(
          `${operation} / ${contenders[c].name}: ${result} of ${ops} operations succeeded`,
        );
      }
      sink += result;
      if (round >= 0) samples[c].push((ops * 1e9) / Number(t1 - t0));
    }
  }
  // biome-ignore lint/suspicious/noUndeclaredEnvVars: run by node after the build, not a turbo task
  if (process.env.BENCH_VERBOSE === "1") {
    for (let c = 0; c < k; c++) {
      const list = samples[c].map((x) => formatRate(x)).join(", ");
      process.stderr.write(`  ${operation} / ${contenders[c].name}: ${list}\n`);
    }
  }
  return contenders.map((contender, c) => {
    const sorted = [...samples[c]].sort((a, b) => a - b);
    return {
      operation,
      name: contender.name,
      median: median(sorted),
      min: sorted[0],
      max: sorted[sorted.length - 1],
      samples: samples[c],
    };
  });
}

/**
 * Median over the rounds of `row`'s rate divided by `baseline`'s rate in the
 * same round. Samples of one round ran back to back, so a slow phase of the
 * machine (another process, a noisy neighbour) cancels out of each ratio.
 */
export function pairedRatio(row, baseline) {
  const ratios = row.samples.map((x, r) => x / baseline.samples[r]).sort((a, b) => a - b);
  return median(ratios);
}

/** One line describing the machine and the runtime. */
export function machine() {
  const cpus = os.cpus();
  const model = cpus.length > 0 ? cpus[0].model.trim() : "unknown CPU";
  return `${model}, ${cpus.length} cores, ${os.platform()} ${os.release()}, Node ${process.version}`;
}

/** 12345678.9 -> "12.35 M". */
export function formatRate(opsPerSecond) {
  if (opsPerSecond >= 1e6) return `${(opsPerSecond / 1e6).toFixed(2)} M`;
  if (opsPerSecond >= 1e3) return `${(opsPerSecond / 1e3).toFixed(1)} k`;
  return opsPerSecond.toFixed(0);
}

/** A markdown table; `rows` are arrays of cells, `align` "l" or "r" per column. */
export function markdownTable(header, rows, align) {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => String(r[i]).length)));
  const pad = (cell, i) =>
    align[i] === "r" ? String(cell).padStart(widths[i]) : String(cell).padEnd(widths[i]);
  const line = (cells) => `| ${cells.map(pad).join(" | ")} |`;
  const rule = `|${widths.map((w, i) => (align[i] === "r" ? `${"-".repeat(w + 1)}:` : "-".repeat(w + 2))).join("|")}|`;
  return [line(header), rule, ...rows.map(line)].join("\n");
}

/** The nearest-rank `p`th percentile of ascending `sorted` (NaN when empty). */
export function percentile(sorted, p) {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1];
}

// --- CPU of other processes, from /proc (the cost parts) -------------------------

let ticksPerSecond;
/** Clock ticks per second of /proc/PID/stat's utime and stime (`getconf CLK_TCK`, usually 100). */
function clockTicks() {
  if (ticksPerSecond === undefined) {
    const out = spawnSync("getconf", ["CLK_TCK"], { encoding: "utf8" });
    const n = Number.parseInt(out.stdout ?? "", 10);
    ticksPerSecond = Number.isInteger(n) && n > 0 ? n : 100;
  }
  return ticksPerSecond;
}

/**
 * CPU time of process `pid` in milliseconds: the time on CPU of each of its
 * live threads (`/proc/PID/task/TID/schedstat`, nanoseconds), summed. Where
 * schedstat is missing, utime+stime from `/proc/PID/stat`, in clock ticks
 * (10 ms: ±1 tick per process in every reading).
 *
 * Why schedstat: a run of 10,000 Gets at ~30 µs each is 30 ticks over three
 * processes, so tick rounding alone moved a row's CPU per request by ~10%.
 * A thread that exits between two readings takes its time with it (a node's
 * V8 and libuv threads live as long as the process).
 */
export function processCpuMs(pid) {
  const precise = schedstatMs(pid);
  return precise ?? statCpuMs(pid);
}

/** Summed schedstat run time of `pid`'s threads (ms), or `undefined` without schedstat. */
function schedstatMs(pid) {
  let tasks;
  try {
    tasks = readdirSync(`/proc/${pid}/task`);
  } catch {
    return undefined;
  }
  let ns = 0;
  for (const task of tasks) {
    try {
      ns += Number(readFileSync(`/proc/${pid}/task/${task}/schedstat`, "utf8").split(" ")[0]);
    } catch (error) {
      // A thread that ended since the listing: its time is gone either way.
      if (error?.code === "ENOENT" || error?.code === "ESRCH") continue;
      return undefined;
    }
  }
  return Number.isFinite(ns) ? ns / 1e6 : undefined;
}

/** utime+stime of process `pid` (every thread, the dead ones too) in milliseconds. */
function statCpuMs(pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  // The command name (field 2) may hold spaces: fields after its ")" are fixed.
  const rest = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const ticks = Number(rest[11]) + Number(rest[12]); // fields 14 and 15
  return (ticks * 1000) / clockTicks();
}

/** {@link processCpuMs} summed over `pids`. */
export const totalCpuMs = (pids) => pids.reduce((sum, pid) => sum + processCpuMs(pid), 0);

/** The median of `values` (any order; NaN when empty). */
export function medianOf(values) {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted.length === 0 ? Number.NaN : median(sorted);
}

/** A latency in ms for a table cell ("n/a" when not measured). */
export function formatMs(v) {
  if (!Number.isFinite(v)) return "n/a";
  return v >= 100 ? `${v.toFixed(0)} ms` : `${v.toFixed(2)} ms`;
}

/** A CPU time in µs for a table cell ("n/a" when not measured). */
export function formatUs(v) {
  if (!Number.isFinite(v)) return "n/a";
  return v >= 100 ? `${v.toFixed(0)} µs` : `${v.toFixed(1)} µs`;
}

/** The 1, 5 and 15 minute load averages, as a report prints them ("1.9, 1.8, 1.8"). */
export function loadAverage() {
  return os
    .loadavg()
    .map((v) => v.toFixed(1))
    .join(", ");
}

/**
 * The command line of an in-process bench that compares trees:
 * `[--rounds N] [OTHER_TREE]`, and `--child TREE` in the runs
 * {@link runTreesAlternating} starts.
 */
export function treeBenchArgs(argv, defaultRounds) {
  const flagValue = (flag) => (argv.includes(flag) ? argv[argv.indexOf(flag) + 1] : undefined);
  return {
    rounds: Number(flagValue("--rounds") ?? defaultRounds),
    child: flagValue("--child"),
    other: argv.find((a, i) => !a.startsWith("--") && !argv[i - 1]?.startsWith("--")),
  };
}

/**
 * For the in-process benches that compare trees (miss-path.mjs,
 * peer-codec.mjs): runs `node SCRIPT --rounds ROUNDS --child TREE` for each
 * of `trees`, 3 passes with the order reversed every other pass, each run in a
 * fresh process so that one tree's JIT state does not carry into the other's.
 * Returns each tree's runs, as `parse` reads each run's stdout.
 */
export function runTreesAlternating(script, trees, rounds, parse) {
  const runs = new Map(trees.map((tree) => [tree, []]));
  for (let pass = 0; pass < 3; pass++) {
    for (const tree of pass % 2 === 0 ? trees : [...trees].reverse()) {
      const run = spawnSync(
        process.execPath,
        [script, "--rounds", String(rounds), "--child", tree],
        { encoding: "utf8" },
      );
      if (run.status !== 0) throw new Error(`${script} run failed:\n${run.stderr}`);
      runs.get(tree).push(parse(run.stdout.trim()));
    }
  }
  return runs;
}
