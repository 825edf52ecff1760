// The metrics part of `pnpm bench`: what metrics cost on the hit path. One
// node serving a cache hit with no admin listener ("metrics off") and one with
// the admin listener scraped once a second during the run ("metrics on"),
// each against the bare `node:http2` responder, by h2load over loopback h2c.
// Rounds of bare / off / on back to back (rotating which goes first); the
// median of each round's ratio to bare decides, as in the cluster part.
//
// If `h2load` is not on PATH this part prints a SKIP line and does not fail the run.

import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import http from "node:http";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { startChild, stopChild } from "../scripts/lib/node-process.mjs";
import { freePorts } from "../scripts/lib/ports.mjs";
import {
  BARE_RESPONDER,
  BENCH_ENV,
  h2load,
  h2loadVersion,
  INSTALL,
  median,
  truncate2,
} from "./cluster.mjs";
import { getRequestFrame } from "./grpc-load.mjs";
import { formatRate, markdownTable } from "./harness.mjs";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const TRANSPORT = path.join(ROOT, "packages/transport-connect/dist/index.js");
const CORE = path.join(ROOT, "packages/core/dist/index.js");
const HOST = "127.0.0.1";
/** The issue's bar: a hit with metrics on keeps ≥ this share of bare node:http2. */
const TARGET = 0.85;
const CONFIGS = [
  { clients: 1, streams: 64 },
  { clients: 4, streams: 32 },
];
const FULL = { requests: 20_000, warmup: 3_000, rounds: 5 };
const QUICK = { requests: 2_000, warmup: 500, rounds: 1 };

/** One node serving group "scores" (Tom = 630); argv: port [adminPort]. */
const NODE = `
const [port, adminPort] = process.argv.slice(1);
const { ConnectPool } = await import(${JSON.stringify(TRANSPORT)});
const { newGroup, NotFoundError } = await import(${JSON.stringify(CORE)});
const group = newGroup("scores", 1 << 20, (key) => {
  if (key !== "Tom") throw new NotFoundError(key);
  return "630";
});
const address = "${HOST}:" + port;
const pool = new ConnectPool(address, adminPort ? { admin: { port: Number(adminPort) } } : {});
pool.setPeers(address);
group.registerPeers(pool);
await pool.serve();
const stop = () => pool.close().then(() => process.exit(0));
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
console.log("serving group scores" + (adminPort ? " with admin :" + adminPort : ""));
`;

/**
 * CPU seconds (user + system) process `pid` has used, from /proc (Linux);
 * `NaN` elsewhere. Wall-clock rates on a shared machine swing with what else
 * runs; the CPU a server spends per request does not, so it shows a cost the
 * rates cannot resolve. Clock ticks are 1/100 s on Linux.
 */
function cpuSeconds(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // Fields after the command name (which may hold spaces) start at state, field 3.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return Number.NaN;
  }
}

/** GET /metrics once; resolves with the body's length (rejects on a non-200). */
function scrape(port) {
  return new Promise((resolve, reject) => {
    http
      .get({ host: HOST, port, path: "/metrics", agent: false }, (response) => {
        let bytes = 0;
        response.on("data", (chunk) => {
          bytes += chunk.length;
        });
        response.on("end", () =>
          response.statusCode === 200
            ? resolve(bytes)
            : reject(new Error(`/metrics answered ${response.statusCode}`)),
        );
      })
      .on("error", reject);
  });
}

/**
 * Runs the metrics benchmark and returns its report.
 * @param {{quick?: boolean, log?: (line: string) => void}} [options]
 */
export async function runMetrics({
  quick = false,
  log = (line) => process.stderr.write(`${line}\n`),
} = {}) {
  const version = h2loadVersion();
  if (version === undefined) {
    const line = `SKIP metrics: \`h2load\` is not on PATH. Install it (Debian/Ubuntu, as root): \`${INSTALL}\`, then re-run.`;
    log(line);
    return { ok: true, skipped: true, markdown: `### Metrics cost\n\n${line}` };
  }
  if (!existsSync(TRANSPORT) || !existsSync(CORE)) {
    throw new Error("build first: npx -y pnpm@12.4.2 build");
  }
  const cfg = quick ? QUICK : FULL;
  const t0 = process.hrtime.bigint();
  const tmp = mkdtempSync(path.join(os.tmpdir(), "distcache-bench-metrics-"));
  const children = [];
  const problems = [];
  let scrapes = 0;
  let scrapeBytes = 0;
  try {
    const [barePort, offPort, onPort, adminPort] = await freePorts(4);
    const start = (label, args, ready) => {
      const child = startChild(label, args, ready, { env: BENCH_ENV });
      children.push(child);
      return child;
    };
    start("bare node:http2", ["-e", BARE_RESPONDER, String(barePort)], "serving");
    const off = start(
      "metrics off",
      ["--input-type=module", "-e", NODE, String(offPort)],
      "serving group",
    );
    const on = start(
      "metrics on",
      ["--input-type=module", "-e", NODE, String(onPort), String(adminPort)],
      "serving group",
    );
    await Promise.all(children.map((c) => c.ready));
    const reqFile = path.join(tmp, "req.bin");
    writeFileSync(reqFile, getRequestFrame("scores", "Tom"));
    const scenarios = [
      { id: "bare", port: barePort },
      { id: "off", port: offPort, child: off.child },
      { id: "on", port: onPort, scraped: true, child: on.child },
    ];
    const run = async (scenario, clients, streams, requests) => {
      // Metrics on: scraped once a second for the whole run, as Prometheus would.
      let scraper;
      if (scenario.scraped) {
        const once = () =>
          scrape(adminPort).then(
            (bytes) => {
              scrapes++;
              scrapeBytes = bytes;
            },
            (error) => problems.push(`scrape: ${error.message}`),
          );
        await once();
        scraper = setInterval(once, 1_000);
      }
      const cpuBefore = scenario.child ? cpuSeconds(scenario.child.pid) : Number.NaN;
      try {
        const r = await h2load({
          port: scenario.port,
          reqFile,
          requests,
          clients,
          streams,
          logFile: path.join(tmp, `${scenario.id}.log`),
        });
        if (r.succeeded !== requests || r.status2xx !== requests || r.failed !== 0) {
          problems.push(
            `${scenario.id} ${clients}x${streams}: ${r.succeeded}/${requests} succeeded, ${r.failed} failed`,
          );
        }
        // Scrapes during the run count: they are what metrics on costs.
        const cpu = scenario.child ? cpuSeconds(scenario.child.pid) - cpuBefore : Number.NaN;
        return { ...r, cpuMicrosPerRequest: (cpu * 1e6) / requests };
      } finally {
        clearInterval(scraper);
      }
    };
    for (const s of scenarios) await run(s, 1, 64, cfg.warmup);
    const rows = [];
    for (const { clients, streams } of CONFIGS) {
      const rounds = [];
      for (let round = 0; round < cfg.rounds; round++) {
        // Rotate the order so no scenario always runs first (or right after another).
        const order = scenarios.map((_, i) => scenarios[(i + round) % scenarios.length]);
        const rates = {};
        const cpu = {};
        for (const s of order) {
          log(`metrics: round ${round + 1} ${s.id} ${clients}x${streams}`);
          const r = await run(s, clients, streams, cfg.requests);
          rates[s.id] = r.rate;
          cpu[s.id] = r.cpuMicrosPerRequest;
        }
        rounds.push({ off: rates.off / rates.bare, on: rates.on / rates.bare, rates, cpu });
      }
      rows.push({ clients, streams, rounds });
    }
    // What one scrape costs the node, measured alone on the idle node.
    const SCRAPES = quick ? 5 : 50;
    const cpuBeforeScrapes = cpuSeconds(on.child.pid);
    for (let i = 0; i < SCRAPES; i++) await scrape(adminPort);
    const scrapeMs = ((cpuSeconds(on.child.pid) - cpuBeforeScrapes) * 1_000) / SCRAPES;
    const table = markdownTable(
      [
        "conns×streams",
        "rounds",
        "bare req/s (median)",
        "metrics off req/s",
        "metrics on req/s",
        "off / bare per round",
        "on / bare per round",
        "median off",
        "median on",
        `on ≥ ${TARGET}×`,
        "CPU µs/request off",
        "CPU µs/request on",
      ],
      rows.map(({ clients, streams, rounds }) => {
        const on = median(rounds.map((r) => r.on));
        return [
          `${clients}×${streams}`,
          String(rounds.length),
          formatRate(median(rounds.map((r) => r.rates.bare))),
          formatRate(median(rounds.map((r) => r.rates.off))),
          formatRate(median(rounds.map((r) => r.rates.on))),
          rounds.map((r) => truncate2(r.off).toFixed(2)).join(" "),
          rounds.map((r) => truncate2(r.on).toFixed(2)).join(" "),
          `${truncate2(median(rounds.map((r) => r.off))).toFixed(2)}×`,
          `${truncate2(on).toFixed(2)}×`,
          truncate2(on) >= TARGET ? "PASS" : "FAIL",
          micros(median(rounds.map((r) => r.cpu.off))),
          micros(median(rounds.map((r) => r.cpu.on))),
        ];
      }),
      ["l", "r", "r", "r", "r", "l", "l", "r", "r", "l", "r", "r"],
    );
    const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
    const markdown = [
      "### Metrics cost (gRPC Get hit on one node, h2load over loopback h2c)",
      "",
      `${version}; ${cfg.requests.toLocaleString("en")} requests per run after a ${cfg.warmup.toLocaleString("en")}-request warm-up; ` +
        "each server is its own process: the bare `node:http2` responder, a node without an admin listener (metrics off) " +
        "and a node with one, its `/metrics` scraped once a second during its runs (metrics on). " +
        "Each round runs the three back to back, rotating the order; ratios are to the bare responder in the same round, truncated. " +
        "CPU µs/request: the node process's user + system CPU during the run (from /proc, 10 ms ticks; scrapes included) over its requests, median of the rounds.",
      "",
      table,
      "",
      `Scrapes during the runs: ${scrapes} (last body ${scrapeBytes.toLocaleString("en")} bytes). ` +
        `One scrape costs the node ${Number.isFinite(scrapeMs) ? `${scrapeMs.toFixed(2)} ms` : "n/a"} of CPU (${SCRAPES} scrapes of the idle node, back to back). Took ${seconds.toFixed(1)} s.` +
        (problems.length > 0 ? `\n\n**FAILED checks:** ${problems.join("; ")}` : ""),
    ].join("\n");
    return { ok: problems.length === 0, markdown, rows };
  } finally {
    await Promise.all(children.map((c) => stopChild(c)));
    rmSync(tmp, { recursive: true, force: true });
  }
}

function micros(v) {
  return Number.isFinite(v) ? `${v.toFixed(1)} µs` : "n/a";
}

// Standalone: node bench/metrics.mjs [--quick]
if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const report = await runMetrics({ quick: process.argv.includes("--quick") });
  console.log(report.markdown);
  process.exit(report.ok ? 0 : 1);
}
