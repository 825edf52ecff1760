// The memory part of `pnpm bench`: what one cached entry really costs.
//
// Each contender runs in a fresh child process (`node --expose-gc`), so the
// figures are not mixed with the other parts' garbage or JIT state. The child
// first grows V8's young generation to its working size with short-lived
// strings (a fixed ~30 MiB that any busy process has, whatever it caches),
// collects garbage, reads `process.memoryUsage()`, stores N entries with
// 16-byte keys and 100-byte values, collects garbage again and reads it again.
// The keys are made inside the measured region (as decoded strings, the way a
// node receives them from the network), so their cost is part of the figure.
//
//   bytes per entry beyond key + value = RSS delta / N - (16 + 100)
//
// Goal (issue 5): <= 120 bytes for a Group holding 1M entries in a 256 MiB
// budget. `lru-cache` holding Buffers is a comparison row, not a target.
//
//   node bench/memory.mjs [--quick] [--entries N]   this part alone (quick: 100k entries)

import { spawnSync } from "node:child_process";
import path from "node:path";
import { fileURLToPath } from "node:url";
import v8 from "node:v8";
import { markdownTable } from "./harness.mjs";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const SELF = fileURLToPath(import.meta.url);
const KEY_BYTES = 16;
const VALUE_BYTES = 100;
const BUDGET = 256 * 1024 * 1024;
const GOAL = 120;
const FULL_ENTRIES = 1_000_000;
const QUICK_ENTRIES = 100_000;

/**
 * Contenders. `fill(n)` stores n entries; `read(n)`, when present, is run
 * after the fill by the "... after reading every entry" rows.
 */
const CONTENDERS = {
  group: { label: "@distcache/core Group (filled by set)", target: true, read: false },
  "group-read": {
    label: "@distcache/core Group, after one get of every entry",
    target: true,
    read: true,
  },
  "lru-cache": { label: "lru-cache v11 holding Buffers (comparison)", target: false, read: false },
};

/** The i-th key: "key:" + 12 digits, 16 bytes, a flat string as decoded from a message. */
function makeKey(scratch, i) {
  scratch.write(String(i).padStart(12, "0"), 4, "latin1");
  return scratch.toString("latin1", 0, KEY_BYTES);
}

/**
 * A young generation of one fixed size for every contender: V8 12 (Node 24)
 * grows it from 32 to 128 MiB while a million entries are stored, and the
 * RSS difference would count those 96 MiB as if they were per entry.
 */
const YOUNG_GENERATION = ["--min-semi-space-size=16", "--max-semi-space-size=16"];

/** Bytes V8's young generation spans now (its semi-spaces). */
function youngGeneration() {
  return v8.getHeapSpaceStatistics().find((space) => space.space_name === "new_space").space_size;
}

async function settle() {
  // Two full collections with turns of the event loop between them, so
  // finalizers and the array-buffer sweeper have run before we read the figures.
  for (let i = 0; i < 3; i++) {
    globalThis.gc();
    await new Promise((resolve) => setImmediate(resolve));
  }
}

/** Runs in the child: measures one contender and prints one JSON line. */
async function child(name, entries) {
  const contender = CONTENDERS[name];
  if (contender === undefined) throw new Error(`bench/memory: unknown contender ${name}`);
  if (typeof globalThis.gc !== "function") throw new Error("bench/memory: child needs --expose-gc");
  const scratch = Buffer.alloc(KEY_BYTES);
  scratch.write("key:", 0, "latin1");
  const value = new Uint8Array(VALUE_BYTES);
  for (let b = 0; b < VALUE_BYTES; b++) value[b] = (b * 31) & 0xff;

  let fill;
  let read;
  let count;
  let charged;
  if (name === "lru-cache") {
    const { LRUCache } = await import("lru-cache");
    const cache = new LRUCache({
      maxSize: BUDGET,
      sizeCalculation: (v, k) => k.length + v.byteLength,
    });
    fill = async (n) => {
      for (let i = 0; i < n; i++) {
        value[0] = i & 0xff;
        cache.set(makeKey(scratch, i), Buffer.from(value));
      }
    };
    count = () => cache.size;
    charged = () => cache.calculatedSize;
  } else {
    let core;
    try {
      core = await import(path.join(ROOT, "packages/core/dist/index.js"));
    } catch (error) {
      throw new Error(
        `cannot load the built packages (${error.message}); build first: npx -y pnpm@12.4.2 build`,
      );
    }
    const group = new core.Group("bench-memory", BUDGET, () => {
      throw new Error("bench/memory: the getter must not run (every key was set)");
    });
    fill = async (n) => {
      for (let i = 0; i < n; i++) {
        value[0] = i & 0xff;
        await group.set(makeKey(scratch, i), value);
      }
    };
    read = async (n) => {
      let total = 0;
      for (let i = 0; i < n; i++) total += (await group.get(makeKey(scratch, i))).length;
      if (total !== n * VALUE_BYTES)
        throw new Error("bench/memory: a read returned a wrong length");
      // Keep the views reachable until here, as a server does until it has answered.
    };
    count = () => group.stats().items;
    charged = () => group.stats().bytes;
  }

  // Grow the young generation to its working size before the baseline, as the
  // fill would: otherwise its growth (2 -> 32 MiB) counts as 30 bytes per entry.
  let garbage = 0;
  for (let i = 0; i < 3_000_000; i++) garbage += makeKey(scratch, i).length;
  if (garbage !== 3_000_000 * KEY_BYTES) throw new Error("bench/memory: warm-up went wrong");
  await settle();
  const youngBefore = youngGeneration();
  const before = process.memoryUsage();
  const t0 = process.hrtime.bigint();
  await fill(entries);
  const fillSeconds = Number(process.hrtime.bigint() - t0) / 1e9;
  let readSeconds;
  if (contender.read) {
    const t1 = process.hrtime.bigint();
    await read(entries);
    readSeconds = Number(process.hrtime.bigint() - t1) / 1e9;
  }
  await settle();
  const after = process.memoryUsage();
  const held = count();
  const delta = (field) => after[field] - before[field];
  process.stdout.write(
    `${JSON.stringify({
      name,
      entries,
      held,
      charged: charged(),
      rss: delta("rss"),
      heapUsed: delta("heapUsed"),
      external: delta("external"),
      arrayBuffers: delta("arrayBuffers"),
      rssAfter: after.rss,
      youngBefore,
      youngAfter: youngGeneration(),
      fillSeconds,
      readSeconds,
    })}\n`,
  );
}

function mib(bytes) {
  return `${(bytes / (1024 * 1024)).toFixed(1)} MiB`;
}

/**
 * Runs the memory part and returns its report.
 *
 * @param {{quick?: boolean, entries?: number, log?: (line: string) => void}} [options]
 *   `quick`: 100k entries instead of 1M (CI smoke run); `entries`: any other count.
 * @returns {Promise<{ok: boolean, markdown: string, results: object[]}>}
 *   `ok` is false when a child failed or did not hold every entry; a missed
 *   goal shows as FAIL in the table but does not make `ok` false.
 */
export async function runMemory({
  quick = false,
  entries = undefined,
  log = (line) => process.stderr.write(`${line}\n`),
} = {}) {
  entries = entries ?? (quick ? QUICK_ENTRIES : FULL_ENTRIES);
  const results = [];
  let ok = true;
  for (const name of Object.keys(CONTENDERS)) {
    log(`memory: ${name}, ${entries.toLocaleString("en")} entries, fresh process`);
    const run = spawnSync(
      process.execPath,
      ["--expose-gc", ...YOUNG_GENERATION, SELF, "--child", name, String(entries)],
      { encoding: "utf8", maxBuffer: 1 << 20 },
    );
    const line = run.stdout.trim().split("\n").at(-1) ?? "";
    if (run.status !== 0 || !line.startsWith("{")) {
      ok = false;
      log(`memory: ${name} failed (exit ${run.status}): ${run.stderr.trim()}`);
      continue;
    }
    const result = JSON.parse(line);
    if (result.held !== entries) {
      ok = false;
      log(`memory: ${name} holds ${result.held} of ${entries} entries`);
    }
    results.push(result);
  }

  const rows = results.map((r) => {
    const { label, target } = CONTENDERS[r.name];
    const beyond = r.rss / r.entries - (KEY_BYTES + VALUE_BYTES);
    r.bytesPerEntryBeyond = beyond;
    return [
      label,
      r.held.toLocaleString("en"),
      mib(r.rss),
      mib(r.heapUsed),
      mib(r.external),
      mib(r.arrayBuffers),
      `${(r.rss / r.entries).toFixed(0)} B`,
      `${(r.charged / r.entries).toFixed(0)} B`,
      `${mib(r.youngBefore)} → ${mib(r.youngAfter)}`,
      `${beyond.toFixed(0)} B`,
      target ? `≤ ${GOAL} B` : "",
      // The goal is stated for 1M entries; fewer are dominated by fixed costs.
      !target ? "" : entries !== FULL_ENTRIES ? "(at 1M)" : beyond <= GOAL ? "PASS" : "FAIL",
    ];
  });
  const table = markdownTable(
    [
      "contender",
      "entries",
      "RSS Δ",
      "heapUsed Δ",
      "external Δ",
      "arrayBuffers Δ",
      "RSS Δ / entry",
      "charged / entry",
      "young gen.",
      "beyond key+value",
      "goal",
      "result",
    ],
    rows,
    ["l", "r", "r", "r", "r", "r", "r", "r", "r", "r", "l", "l"],
  );
  const markdown = [
    `### Memory (${entries.toLocaleString("en")} entries${quick ? ", QUICK smoke run: goal stated for 1M" : ""})`,
    "",
    `Each row is a fresh \`node --expose-gc ${YOUNG_GENERATION.join(" ")}\` process (a young generation of one size: V8 12 grows it during the fill otherwise, and RSS would count that per entry): young generation grown to its working size, ` +
      `full GC, \`process.memoryUsage()\`, store ${entries.toLocaleString("en")} entries ` +
      `(${KEY_BYTES}-byte keys made in the loop, ${VALUE_BYTES}-byte values) in a ${mib(BUDGET)} budget, ` +
      `full GC, read again. Beyond key+value = RSS Δ / entries − ${KEY_BYTES + VALUE_BYTES}. ` +
      "Charged: what the cache counts against its budget (lru-cache: key length + value length).",
    "",
    table,
  ].join("\n");
  return { ok, markdown, results };
}

const argv = process.argv.slice(2);
if (process.argv[1] === SELF) {
  if (argv[0] === "--child") {
    await child(argv[1], Number(argv[2]));
  } else {
    const at = argv.indexOf("--entries");
    const entries = at >= 0 ? Number(argv[at + 1]) : undefined;
    if (entries !== undefined && !(Number.isInteger(entries) && entries > 0)) {
      throw new Error("bench/memory: --entries needs a positive integer");
    }
    const report = await runMemory({ quick: argv.includes("--quick"), entries });
    console.log(report.markdown);
    process.exit(report.ok ? 0 : 1);
  }
}
