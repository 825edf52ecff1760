#!/usr/bin/env node
// Entry of `pnpm bench` (the root script builds first, then runs this file).
//
//   node bench/run.mjs            full run (about two minutes: local ~30 s, memory ~10 s, cluster ~60 s)
//   node bench/run.mjs --quick    a few-second smoke run for CI (also BENCH_QUICK=1)
//   node bench/run.mjs --only local,memory   only the named parts (local, memory, cluster, fanin)
//
// Prints the machine and markdown tables on stdout, progress on stderr. Exits 1
// only when a correctness check fails (e.g. the getter ran more than once for
// concurrent gets of one key); a missed speed target is shown as FAIL in the
// table but does not fail the run. Re-runs itself with --expose-gc so samples
// start from a collected heap.

import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { runCluster } from "./cluster.mjs";
import { runFanIn } from "./fanin.mjs";
import { checksum, gcExposed, machine } from "./harness.mjs";
import { runLocal } from "./local.mjs";
import { runMemory } from "./memory.mjs";

const args = process.argv.slice(2);
// biome-ignore lint/suspicious/noUndeclaredEnvVars: run by node after the build, not a turbo task
const quick = args.includes("--quick") || process.env.BENCH_QUICK === "1";

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

// Each part is a module run here in turn. The cluster part needs `h2load`
// (Debian: nghttp2-client) and prints a SKIP line without it.
const allParts = [
  { name: "local", run: runLocal },
  { name: "memory", run: runMemory },
  { name: "cluster", run: runCluster },
  { name: "fanin", run: runFanIn },
];
const onlyAt = args.findIndex((arg) => arg === "--only" || arg.startsWith("--only="));
const only =
  onlyAt < 0
    ? undefined
    : (args[onlyAt].startsWith("--only=") ? args[onlyAt].slice(7) : (args[onlyAt + 1] ?? ""))
        .split(",")
        .filter((name) => name !== "");
const unknown = (only ?? []).filter((name) => !allParts.some((part) => part.name === name));
if (unknown.length > 0 || only?.length === 0) {
  console.error(`bench: --only takes part names among ${allParts.map((p) => p.name).join(", ")}`);
  process.exit(2);
}
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
