#!/usr/bin/env node
// Entry of `pnpm bench` (the root script builds first, then runs this file).
//
//   node bench/run.mjs            full run (about three minutes: local ~30 s, memory ~10 s, cluster ~60 s, metrics ~60 s)
//   node bench/run.mjs --quick    a few-second smoke run for CI (also BENCH_QUICK=1)
//   node bench/run.mjs --only local,memory   only the named parts (local, memory, cluster, fanin, metrics, costs, fairness, gc, floor)
//   node bench/run.mjs --help     the parts and flags (USAGE below); runs nothing
//
// Prints the machine and markdown tables on stdout, progress on stderr. Exits 1
// only when a correctness check fails (e.g. the getter ran more than once for
// concurrent gets of one key); a missed speed target is shown as FAIL in the
// table but does not fail the run. Re-runs itself with --expose-gc so samples
// start from a collected heap.

import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { runCluster } from "./cluster.mjs";
import { runCosts } from "./costs.mjs";
import { runFairnessPart } from "./fairness.mjs";
import { runFanIn } from "./fanin.mjs";
import { runForwardFloor } from "./forward-floor.mjs";
import { runGcTail } from "./gc-tail.mjs";
import { checksum, gcExposed, machine } from "./harness.mjs";
import { runLocal } from "./local.mjs";
import { runMemory } from "./memory.mjs";
import { runMetrics } from "./metrics.mjs";

// Each part is a module run here in turn. The cluster part needs `h2load`
// (Debian: nghttp2-client) and prints a SKIP line without it.
const allParts = [
  { name: "local", run: runLocal },
  { name: "memory", run: runMemory },
  { name: "cluster", run: runCluster },
  { name: "fanin", run: runFanIn },
  { name: "metrics", run: runMetrics },
  { name: "costs", run: runCosts },
  { name: "fairness", run: runFairnessPart },
  { name: "gc", run: runGcTail },
  { name: "floor", run: runForwardFloor },
];
const PART_NAMES = allParts.map((part) => part.name);
const USAGE = `Usage: node bench/run.mjs [--quick] [--only PART,...] [--help]
       (pnpm bench [flags] builds first)

Parts, run in this order (all by default):
  local     one process: LRU, ByteLRU and a warm Group against lru-cache and a
            Map; 10,000 concurrent gets of one cold key load once
  memory    bytes per cached entry, each contender in a fresh child process
  cluster   gRPC Get over loopback h2c with h2load (3 nodes): bare responder,
            owner hit, forwarded hit; needs h2load (Debian: nghttp2-client),
            else prints SKIP
  fanin     10,000 cold Gets through one of 3 nodes (1,000 with --quick): each
            key loaded once, on its owner
  metrics   a Get hit on one node with metrics off and on (admin listener
            scraped once a second) against the bare responder; needs h2load
  costs     CPU per request summed over the nodes (from /proc): hit, forwarded
            hit (1×64 and serial), cold keys with 0 and 2 replicas, and Redis
            GET of the same keys (needs redis-server, else its rows are
            skipped); BENCH_NODE_FLAGS passes V8 flags to the nodes
  fairness  a good client's Gets/s and p99 alone and beside one slow-read
            attacker (window 0, never reads), as a ratio (target >= 0.8x)
  gc        a Get hit's latency tail at 1x64 with --trace-gc: distcache-node
            with V8 defaults, --max-semi-space-size=8, that with a heap cap,
            and the heap cap alone; the bare responder, defaults,
            --max-semi-space-size=8, and beside 16 MiB of live objects;
            then the node (defaults and --max-semi-space-size=8) and the
            bare responder (alone and beside the live heap) on the other
            Node line, 22 or 24 (fetched once by scripts/node-line.mjs)
            (target p99 <= 10 ms, max <= 25 ms); needs h2load
  floor     the floor under a forwarded hit with bare node:http2 and no
            DistCache code: CPU per request of a one-process hit and of an
            entry forwarding over one batched HTTP/2 stream to an owner (1x64
            and serial), as a ratio against the 1.2x target

Flags:
  --quick             a few-second smoke run (CI); numbers not meaningful
  --only PART,...     only these parts (also --only=PART,...)
  -h, --help          this text; runs nothing

Environment: BENCH_QUICK=1 (as --quick), BENCH_VERBOSE=1 (every sample on stderr).
Prints the machine and markdown tables on stdout, progress on stderr; exits 1
when a correctness check fails, 2 on a bad flag.`;

/** Reads the command line; prints the usage and exits on --help or a bad flag. */
function parseArgs(argv) {
  const options = { quick: false, only: undefined };
  const bad = (message) => {
    console.error(`bench: ${message}\n\n${USAGE}`);
    process.exit(2);
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === "--help" || arg === "-h") {
      console.log(USAGE);
      process.exit(0);
    } else if (arg === "--quick") options.quick = true;
    else if (arg === "--only" || arg.startsWith("--only=")) {
      const list = arg === "--only" ? argv[++i] : arg.slice("--only=".length);
      const names = (list ?? "").split(",").filter((name) => name !== "");
      const unknown = names.filter((name) => !PART_NAMES.includes(name));
      if (names.length === 0 || unknown.length > 0) {
        bad(`--only takes part names among ${PART_NAMES.join(", ")}; got "${list ?? ""}"`);
      }
      options.only = names;
    } else if (arg !== "--") bad(`unknown argument "${arg}"`);
  }
  return options;
}

const args = process.argv.slice(2);
const options = parseArgs(args);
// biome-ignore lint/suspicious/noUndeclaredEnvVars: run by node after the build, not a turbo task
const quick = options.quick || process.env.BENCH_QUICK === "1";

// biome-ignore lint/suspicious/noUndeclaredEnvVars: run by node after the build, not a turbo task
if (!gcExposed() && process.env.BENCH_NO_RESPAWN !== "1") {
  const child = spawnSync(
    process.execPath,
    ["--expose-gc", ...process.execArgv, fileURLToPath(import.meta.url), ...args],
    { stdio: "inherit", env: { ...process.env, BENCH_NO_RESPAWN: "1" } },
  );
  process.exit(child.status ?? 1);
}

const started = process.hrtime.bigint();
console.log("## DistCache benchmark\n");
console.log(`Machine: ${machine()}${gcExposed() ? "" : " (no --expose-gc)"}\n`);

const { only } = options;
const parts = only === undefined ? allParts : allParts.filter((part) => only.includes(part.name));

let ok = true;
for (const part of parts) {
  const report = await part.run({ quick });
  console.log(`${report.markdown}\n`);
  if (!report.ok) {
    ok = false;
    console.error(`bench: the ${part.name} part failed a correctness check`);
  }
}

const seconds = Number(process.hrtime.bigint() - started) / 1e9;
console.log(`_Total ${seconds.toFixed(1)} s (checksum ${checksum()})._`);
process.exit(ok ? 0 : 1);
