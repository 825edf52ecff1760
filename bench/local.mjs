// The local part of `pnpm bench`: one process, no network.
//
// Compares @distcache/lru (`LRU`, and `ByteLRU`, the slab store under every
// Group, read through `ByteView.adoptRange` as the Group reads it) and a warm
// @distcache/core Group with `lru-cache` (v11, sized by bytes with maxSize +
// sizeCalculation) and a bare Map, on the same keys and the same pseudo-random
// access sequence, and checks that 10,000 concurrent gets of one cold key call
// the getter once.

import { LRUCache } from "lru-cache";
import { formatRate, markdownTable, measure, mulberry32, pairedRatio } from "./harness.mjs";

const KEY_COUNT = 100_000; // keys for the hit / replace rows
const VALUE_BYTES = 100;
const EVICT_CAPACITY = 10_000; // entries the evicting caches hold
const EVICT_STREAM = 200_000; // distinct keys cycled through by the evicting rows (>> capacity)
const SEQ_LENGTH = 1 << 20; // precomputed access sequence, a power of two
const POOL = 256; // distinct values cycled through by the set rows

const FULL = {
  rounds: 7,
  warmup: 1,
  gc: true,
  getOps: 2_000_000,
  setOps: 1_000_000,
  evictOps: 1_000_000,
  groupOps: 500_000,
};
const QUICK = {
  rounds: 3,
  warmup: 1,
  gc: false,
  getOps: 200_000,
  setOps: 100_000,
  evictOps: 100_000,
  groupOps: 50_000,
};

const TARGETS = {
  get: 1.0,
  evict: 1.0,
  group: 0.5,
};

/** Loads the workspace packages from their build output, with a useful message if it is missing. */
async function loadPackages() {
  try {
    const lru = await import("../packages/lru/dist/index.js");
    const core = await import("../packages/core/dist/index.js");
    return {
      LRU: lru.LRU,
      ENTRY_OVERHEAD_BYTES: lru.ENTRY_OVERHEAD_BYTES,
      ByteLRU: lru.ByteLRU,
      BYTE_ENTRY_OVERHEAD_BYTES: lru.BYTE_ENTRY_OVERHEAD_BYTES,
      chargedValueBytes: lru.chargedValueBytes,
      Group: core.Group,
      ByteView: core.ByteView,
    };
  } catch (error) {
    throw new Error(
      `cannot load the built packages (${error.message}); build first: npx -y pnpm@12.4.2 build`,
    );
  }
}

function makeValue(seed) {
  const value = new Uint8Array(VALUE_BYTES);
  for (let b = 0; b < VALUE_BYTES; b++) value[b] = (seed + b * 31) & 0xff;
  return value;
}

/** Fixed-width keys ("key:123456"), so byte budgets are exact. */
function makeKeys(prefix, count, base) {
  const keys = new Array(count);
  for (let i = 0; i < count; i++) keys[i] = `${prefix}${base + i}`;
  return keys;
}

// Each contender gets its own loop function so every call site inside stays
// monomorphic: a shared loop would see three receiver types and slow all down.

function mapGetLoop(map, keys, seq, n) {
  const mask = seq.length - 1;
  let acc = 0;
  for (let i = 0; i < n; i++) if (map.get(keys[seq[i & mask]]) !== undefined) acc++;
  return acc;
}

function ourGetLoop(cache, keys, seq, n) {
  const mask = seq.length - 1;
  let acc = 0;
  for (let i = 0; i < n; i++) if (cache.get(keys[seq[i & mask]]) !== undefined) acc++;
  return acc;
}

function byteGetLoop(cache, keys, seq, n) {
  const mask = seq.length - 1;
  let acc = 0;
  for (let i = 0; i < n; i++) if (cache.get(keys[seq[i & mask]]) !== undefined) acc++;
  return acc;
}

function lruCacheGetLoop(cache, keys, seq, n) {
  const mask = seq.length - 1;
  let acc = 0;
  for (let i = 0; i < n; i++) if (cache.get(keys[seq[i & mask]]) !== undefined) acc++;
  return acc;
}

function ourSetLoop(cache, keys, seq, pool, n) {
  const mask = seq.length - 1;
  let acc = 0;
  for (let i = 0; i < n; i++) if (cache.set(keys[seq[i & mask]], pool[i & (POOL - 1)])) acc++;
  return acc;
}

function byteSetLoop(cache, keys, seq, pool, n) {
  const mask = seq.length - 1;
  let acc = 0;
  for (let i = 0; i < n; i++) if (cache.set(keys[seq[i & mask]], pool[i & (POOL - 1)])) acc++;
  return acc;
}

function lruCacheSetLoop(cache, keys, seq, pool, n) {
  const mask = seq.length - 1;
  let acc = 0;
  for (let i = 0; i < n; i++) if (cache.set(keys[seq[i & mask]], pool[i & (POOL - 1)])) acc++;
  return acc;
}

function ourEvictLoop(cache, stream, cursor, pool, n) {
  let pos = cursor.pos;
  let acc = 0;
  for (let i = 0; i < n; i++) {
    if (cache.set(stream[pos], pool[pos & (POOL - 1)])) acc++;
    pos = pos + 1 === stream.length ? 0 : pos + 1;
  }
  cursor.pos = pos;
  return acc;
}

function byteEvictLoop(cache, stream, cursor, pool, n) {
  let pos = cursor.pos;
  let acc = 0;
  for (let i = 0; i < n; i++) {
    if (cache.set(stream[pos], pool[pos & (POOL - 1)])) acc++;
    pos = pos + 1 === stream.length ? 0 : pos + 1;
  }
  cursor.pos = pos;
  return acc;
}

function lruCacheEvictLoop(cache, stream, cursor, pool, n) {
  let pos = cursor.pos;
  let acc = 0;
  for (let i = 0; i < n; i++) {
    if (cache.set(stream[pos], pool[pos & (POOL - 1)])) acc++;
    pos = pos + 1 === stream.length ? 0 : pos + 1;
  }
  cursor.pos = pos;
  return acc;
}

async function groupGetLoop(group, keys, seq, n) {
  const mask = seq.length - 1;
  let acc = 0;
  for (let i = 0; i < n; i++) if ((await group.get(keys[seq[i & mask]])) !== undefined) acc++;
  return acc;
}

/** Reference only: what `await` alone costs on top of a synchronous lru-cache get. */
async function lruCacheAwaitedGetLoop(cache, keys, seq, n) {
  const mask = seq.length - 1;
  let acc = 0;
  for (let i = 0; i < n; i++) if ((await cache.get(keys[seq[i & mask]])) !== undefined) acc++;
  return acc;
}

/** 10,000 concurrent gets of one cold key; the getter must run once. */
async function singleflightCheck(Group, callers) {
  const value = makeValue(7);
  let calls = 0;
  const group = new Group("bench-singleflight", 1 << 20, async () => {
    calls++;
    await new Promise((resolve) => setTimeout(resolve, 5));
    return value;
  });
  const t0 = process.hrtime.bigint();
  const views = await Promise.all(Array.from({ length: callers }, () => group.get("cold:key")));
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  const allEqual = views.every((view) => view.length === VALUE_BYTES && view.equals(value));
  const stats = group.stats();
  return { calls, ms, allEqual, loads: stats.loads, deduped: stats.loadsDeduped };
}

function fail(message) {
  throw new Error(`bench/local: setup invalid: ${message}`);
}

/**
 * Runs the local benchmark and returns its report.
 *
 * @param {{quick?: boolean, log?: (line: string) => void}} [options]
 *   `quick`: a few-second smoke run (CI): fewer operations and rounds.
 *   `log`: progress lines (default: stderr), kept apart from the report.
 * @returns {Promise<{ok: boolean, markdown: string, results: object[]}>}
 *   `ok` is false only when the singleflight check failed; ratio misses are
 *   reported as FAIL in the table but do not make `ok` false.
 */
export async function runLocal({
  quick = false,
  log = (line) => process.stderr.write(`${line}\n`),
} = {}) {
  const cfg = quick ? QUICK : FULL;
  const t0 = process.hrtime.bigint();
  const say = (line) =>
    log(`[${(Number(process.hrtime.bigint() - t0) / 1e9).toFixed(1)} s] ${line}`);
  const {
    LRU,
    ENTRY_OVERHEAD_BYTES,
    ByteLRU,
    BYTE_ENTRY_OVERHEAD_BYTES,
    chargedValueBytes,
    Group,
    ByteView,
  } = await loadPackages();

  // --- data: same keys, same values, same access sequence for everyone
  const keys = makeKeys("key:", KEY_COUNT, 100_000); // "key:100000" .. "key:199999", 10 bytes each
  const values = keys.map((_, i) => makeValue(i));
  const pool = Array.from({ length: POOL }, (_, i) => makeValue(i * 7 + 3));
  const random = mulberry32(0x5eed);
  const seq = new Uint32Array(SEQ_LENGTH);
  for (let i = 0; i < SEQ_LENGTH; i++) seq[i] = Math.floor(random() * KEY_COUNT);
  const keyBytes = keys[0].length;
  const entryBytes = keyBytes + VALUE_BYTES; // what lru-cache is told per entry

  // --- caches holding all 100k keys
  const map = new Map();
  const ours = new LRU({ maxBytes: KEY_COUNT * (entryBytes + ENTRY_OVERHEAD_BYTES) * 2 });
  const theirs = new LRUCache({
    maxSize: KEY_COUNT * entryBytes * 2,
    sizeCalculation: (value, key) => key.length + value.byteLength,
  });
  // Charged per entry by ByteLRU: key + the value's chunk + its per-entry overhead.
  const byteEntry = keyBytes + chargedValueBytes(VALUE_BYTES) + BYTE_ENTRY_OVERHEAD_BYTES;
  const slab = new ByteLRU({ maxBytes: KEY_COUNT * byteEntry * 2, view: ByteView.adoptRange });
  for (let i = 0; i < KEY_COUNT; i++) {
    map.set(keys[i], values[i]);
    ours.set(keys[i], values[i]);
    slab.set(keys[i], values[i]);
    theirs.set(keys[i], values[i]);
  }
  if (ours.length !== KEY_COUNT || slab.length !== KEY_COUNT || theirs.size !== KEY_COUNT) {
    fail("caches do not hold every key");
  }

  // --- evicting caches: budgets for exactly EVICT_CAPACITY entries
  const stream = makeKeys("evk:", EVICT_STREAM, 100_000);
  const oursSmall = new LRU({ maxBytes: EVICT_CAPACITY * (entryBytes + ENTRY_OVERHEAD_BYTES) });
  const theirsSmall = new LRUCache({
    maxSize: EVICT_CAPACITY * entryBytes,
    sizeCalculation: (value, key) => key.length + value.byteLength,
  });
  const slabSmall = new ByteLRU({
    maxBytes: EVICT_CAPACITY * byteEntry,
    view: ByteView.adoptRange,
  });
  const slabCursor = { pos: 0 };
  const oursCursor = { pos: 0 };
  const theirsCursor = { pos: 0 };

  // --- a warm Group holding all 100k keys
  const byKey = new Map(keys.map((key, i) => [key, values[i]]));
  const group = new Group(
    "bench-local",
    KEY_COUNT * (entryBytes + ENTRY_OVERHEAD_BYTES) * 2,
    (key) => byKey.get(key),
  );
  const warmStart = process.hrtime.bigint();
  for (let i = 0; i < KEY_COUNT; i += 1000) {
    await Promise.all(keys.slice(i, i + 1000).map((key) => group.get(key)));
  }
  const warmSeconds = Number(process.hrtime.bigint() - warmStart) / 1e9;
  {
    const s = group.stats();
    if (s.items !== KEY_COUNT || s.localLoads !== KEY_COUNT) fail("group did not warm every key");
  }

  const rounds = { rounds: cfg.rounds, warmup: cfg.warmup, gc: cfg.gc };
  const results = [];

  say(`local: get (hit) x ${cfg.getOps} ops x ${cfg.rounds} rounds`);
  results.push({
    key: "get",
    rows: await measure({
      operation: "get (hit), 100k keys",
      ops: cfg.getOps,
      ...rounds,
      contenders: [
        { name: "@distcache/lru", run: (n) => ourGetLoop(ours, keys, seq, n) },
        { name: "ByteLRU (Group's store)", run: (n) => byteGetLoop(slab, keys, seq, n) },
        { name: "lru-cache", run: (n) => lruCacheGetLoop(theirs, keys, seq, n) },
        { name: "Map (no LRU)", run: (n) => mapGetLoop(map, keys, seq, n) },
      ],
    }),
  });

  say(`local: set (replace) x ${cfg.setOps} ops`);
  results.push({
    key: "set",
    rows: await measure({
      operation: "set (replace, no eviction)",
      ops: cfg.setOps,
      ...rounds,
      contenders: [
        { name: "@distcache/lru", run: (n) => ourSetLoop(ours, keys, seq, pool, n) },
        { name: "ByteLRU (Group's store)", run: (n) => byteSetLoop(slab, keys, seq, pool, n) },
        { name: "lru-cache", run: (n) => lruCacheSetLoop(theirs, keys, seq, pool, n) },
      ],
    }),
  });
  if (ours.length !== KEY_COUNT || slab.length !== KEY_COUNT || theirs.size !== KEY_COUNT) {
    fail("replacing sets evicted");
  }

  say(`local: set (evicting) x ${cfg.evictOps} ops`);
  results.push({
    key: "evict",
    rows: await measure({
      operation: "set (new key, evicts), 10k-entry budget",
      ops: cfg.evictOps,
      ...rounds,
      contenders: [
        {
          name: "@distcache/lru",
          run: (n) => ourEvictLoop(oursSmall, stream, oursCursor, pool, n),
        },
        {
          name: "ByteLRU (Group's store)",
          run: (n) => byteEvictLoop(slabSmall, stream, slabCursor, pool, n),
        },
        {
          name: "lru-cache",
          run: (n) => lruCacheEvictLoop(theirsSmall, stream, theirsCursor, pool, n),
        },
      ],
    }),
  });
  if (
    oursSmall.length !== EVICT_CAPACITY ||
    slabSmall.length !== EVICT_CAPACITY ||
    theirsSmall.size !== EVICT_CAPACITY
  ) {
    fail(
      `evicting caches hold ${oursSmall.length} / ${slabSmall.length} / ${theirsSmall.size} entries, not ${EVICT_CAPACITY}`,
    );
  }
  const totalEvictOps = (cfg.rounds + cfg.warmup) * cfg.evictOps;
  if (
    oursSmall.stats().evictions !== totalEvictOps - EVICT_CAPACITY ||
    slabSmall.stats().evictions !== totalEvictOps - EVICT_CAPACITY
  ) {
    fail("not every evicting set evicted");
  }

  say(`local: awaited Group.get (hit) x ${cfg.groupOps} ops`);
  results.push({
    key: "group",
    rows: await measure({
      operation: "awaited Group.get (hit)",
      ops: cfg.groupOps,
      ...rounds,
      contenders: [
        { name: "@distcache/core Group", run: (n) => groupGetLoop(group, keys, seq, n) },
        { name: "lru-cache (sync get)", run: (n) => lruCacheGetLoop(theirs, keys, seq, n) },
        {
          name: "await lru-cache get (reference)",
          run: (n) => lruCacheAwaitedGetLoop(theirs, keys, seq, n),
        },
      ],
    }),
  });

  say("local: singleflight, 10,000 concurrent gets of one cold key");
  const sf = await singleflightCheck(Group, 10_000);
  const sfOk = sf.calls === 1 && sf.allEqual;

  // --- report
  const tableRows = [];
  for (const { key, rows } of results) {
    const baseline = rows.find((r) => r.name.startsWith("lru-cache"));
    for (const r of rows) {
      // Truncated, not rounded, so a ratio shown as 1.00× never FAILs a 1.0× target.
      const ratio = Math.floor(pairedRatio(r, baseline) * 100) / 100;
      // ByteLRU rows are shown without a target: it copies each value in and
      // hands a view out, work the pointer-holding caches do not do (see
      // docs/benchmarks.md); the Group row measures what that costs a caller.
      const isOurs = r.name === "@distcache/lru" || r.name === "@distcache/core Group";
      const target = isOurs ? TARGETS[key] : undefined;
      const spread = ((r.max - r.min) / r.median) * 100;
      tableRows.push([
        r.operation,
        r.name,
        formatRate(r.median),
        `±${(spread / 2).toFixed(0)}%`,
        `${ratio.toFixed(2)}×`,
        target === undefined ? "" : `≥ ${target.toFixed(1)}×`,
        target === undefined ? "" : ratio >= target ? "PASS" : "FAIL",
      ]);
    }
  }
  const table = markdownTable(
    [
      "operation",
      "contender",
      "ops/s (median)",
      "spread",
      "ratio vs lru-cache",
      "target",
      "result",
    ],
    tableRows,
    ["l", "l", "r", "r", "r", "l", "l"],
  );
  const sfTable = markdownTable(
    ["check", "getter calls", "loads / deduped", "all values equal", "time", "result"],
    [
      [
        "10,000 concurrent Group.get of one cold key (getter waits 5 ms)",
        sf.calls,
        `${sf.loads} / ${sf.deduped}`,
        sf.allEqual ? "yes" : "NO",
        `${sf.ms.toFixed(1)} ms`,
        sfOk ? "PASS" : "FAIL",
      ],
    ],
    ["l", "r", "r", "l", "r", "l"],
  );
  const markdown = [
    `### Local (one process${quick ? ", QUICK smoke run: numbers not meaningful" : ""})`,
    "",
    `${cfg.rounds} rounds after ${cfg.warmup} warm-up; ops per sample: get ${cfg.getOps.toLocaleString("en")}, ` +
      `set ${cfg.setOps.toLocaleString("en")}, evicting set ${cfg.evictOps.toLocaleString("en")}, ` +
      `Group.get ${cfg.groupOps.toLocaleString("en")}. Spread: half of (max - min) / median over the rounds. ` +
      "Ratio: median over the rounds of the contender's rate / lru-cache's rate in the same round.",
    "",
    table,
    "",
    sfTable,
    "",
    `Cold loads (not a target): warming the Group took ${warmSeconds.toFixed(2)} s for ` +
      `${KEY_COUNT.toLocaleString("en")} misses with a synchronous getter, 1,000 at a time ` +
      `(${formatRate(KEY_COUNT / warmSeconds)} loads/s).`,
  ].join("\n");
  return { ok: sfOk, markdown, results, singleflight: sf };
}
