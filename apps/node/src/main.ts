#!/usr/bin/env node
// distcache-node: one cache node serving the demo group over gRPC, gRPC-Web
// and Connect. Every getter call prints "loaded from source: KEY". The getter
// reads the demo rows, or an HTTP data source with --source-url.
import { parseArgs } from "node:util";
import { NotFoundError, newGroup } from "@distcache/core";
import { ConnectPool } from "@distcache/transport-connect";
import { installIntrospection, SocketTracker } from "./introspection.js";
import { demoRows, HttpSource } from "./source.js";

const usage = `Usage: distcache-node [options]

  --host HOST              address to listen on and to be known by (default 127.0.0.1)
  --port PORT              port (default 8001)
  --peers H:P,H:P,...      every member of the cluster (default: this node alone);
                           name members exactly as the other nodes do
  --group NAME[:BYTES]     the demo group and its byte budget (default scores:2048)
  --source-url URL         load from GET URL/<group>/<key> (URL-encoded) instead of
                           the demo rows: 200 = the value, 404 = not found
  --load-timeout MS        longest getter call (the group's loadTimeout)
  --help                   this text

Cluster and server options (ConnectPoolOptions; what each means, its unit,
default and what 0 means: packages/transport-connect/src/options.ts):
  --replicas N             replicas
  --peer-timeout MS        peer.timeoutMs
  --no-client-set          server.allowClientSet = false
  --drain-timeout MS       server.drainTimeoutMs (on SIGTERM)
  --max-in-flight N        server.maxRequestsInFlight
  --max-loop-delay MS      server.maxEventLoopDelayMs
  --max-connections N      server.maxConnections
  --max-per-address N      server.maxRequestsPerAddress
  --peer-reserve N         server.peerReservedRequests
  --max-buffered-bytes N   server.maxBufferedBytes
  --write-timeout MS       server.responseWriteTimeoutMs
  --max-stream-life MS     server.maxStreamLifetimeMs
  --preface-timeout MS     server.prefaceTimeoutMs
  --idle-timeout MS        server.idleSessionTimeoutMs
  --max-conns-per-address N  server.maxConnectionsPerAddress
  --max-streams N          server.maxConcurrentStreams
  --max-loads N            maxLoadsInFlight (node-wide getter calls)
  --max-loads-queued N     maxLoadsQueued
  --max-key-bytes N        server.maxKeyBytes
  --max-value-bytes N      server.maxValueBytes

Limits and what clients see: docs/operations.md.`;

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function fail(message: string): never {
  console.error(`distcache-node: ${message}\n\n${usage}`);
  process.exit(2);
}

function integer(name: string, text: string, min: number, max: number): number {
  // Decimal digits only: Number() would take "" as 0, "1e3" and "0x10".
  const value = /^\d+$/.test(text) ? Number(text) : Number.NaN;
  if (!Number.isInteger(value) || value < min || value > max) {
    fail(`--${name} must be an integer from ${min} to ${max}, got "${text}"`);
  }
  return value;
}

/** An optional integer flag; `undefined` (the library default) when absent. */
function optional(name: keyof typeof args.values, min: number, max: number): number | undefined {
  const text = args.values[name];
  return typeof text === "string" ? integer(name, text, min, max) : undefined;
}

let args: ReturnType<typeof parse>;
function parse() {
  return parseArgs({
    options: {
      host: { type: "string", default: "127.0.0.1" },
      port: { type: "string", default: "8001" },
      peers: { type: "string" },
      group: { type: "string", default: "scores:2048" },
      replicas: { type: "string" },
      "peer-timeout": { type: "string" },
      "no-client-set": { type: "boolean", default: false },
      "source-url": { type: "string" },
      "load-timeout": { type: "string" },
      "drain-timeout": { type: "string" },
      "max-in-flight": { type: "string" },
      "max-loop-delay": { type: "string" },
      "max-connections": { type: "string" },
      "max-per-address": { type: "string" },
      "peer-reserve": { type: "string" },
      "max-buffered-bytes": { type: "string" },
      "write-timeout": { type: "string" },
      "max-stream-life": { type: "string" },
      "preface-timeout": { type: "string" },
      "idle-timeout": { type: "string" },
      "max-conns-per-address": { type: "string" },
      "max-streams": { type: "string" },
      "max-loads": { type: "string" },
      "max-loads-queued": { type: "string" },
      "max-key-bytes": { type: "string" },
      "max-value-bytes": { type: "string" },
      help: { type: "boolean", default: false },
    },
    strict: true,
  });
}
try {
  args = parse();
} catch (error) {
  fail(messageOf(error));
}
if (args.values.help) {
  console.log(usage);
  process.exit(0);
}

const { host } = args.values;
const port = integer("port", args.values.port, 0, 65_535);
const self = `${host.includes(":") ? `[${host}]` : host}:${port}`;
const groupFlag = /^([^:]*)(?::(.*))?$/.exec(args.values.group)!;
const [, groupName = "", budgetText] = groupFlag;
if (groupName === "") fail("--group needs a name");
const budget = budgetText === undefined ? 2048 : integer("group BYTES", budgetText, 0, 2 ** 50);
const peers = (args.values.peers ?? self)
  .split(",")
  .map((peer) => peer.trim())
  .filter((peer) => peer !== "");

let source: HttpSource | undefined;
try {
  const url = args.values["source-url"];
  source = url === undefined ? undefined : new HttpSource(url);
} catch (error) {
  fail(`--source-url: ${messageOf(error)}`);
}
const rows = demoRows();
const log = (line: string) => console.log(`[node ${self}] ${line}`);
const loadTimeout = optional("load-timeout", 0, 3_600_000);
const group = newGroup(
  groupName,
  budget,
  async (key, { signal }) => {
    log(`loaded from source: ${key}`);
    if (source !== undefined) return source.load(groupName, key, signal);
    const value = rows.get(key);
    if (value === undefined) throw new NotFoundError(key);
    return value;
  },
  loadTimeout === undefined ? {} : { loadTimeout },
);

let pool: ConnectPool;
try {
  pool = new ConnectPool(self, {
    replicas: optional("replicas", 0, 64),
    maxLoadsInFlight: optional("max-loads", 0, 1_000_000),
    maxLoadsQueued: optional("max-loads-queued", 0, 10_000_000),
    peer: { timeoutMs: optional("peer-timeout", 1, 600_000) },
    server: {
      allowClientSet: !args.values["no-client-set"],
      drainTimeoutMs: optional("drain-timeout", 0, 3_600_000),
      maxRequestsInFlight: optional("max-in-flight", 0, 10_000_000),
      maxEventLoopDelayMs: optional("max-loop-delay", 0, 600_000),
      maxConnections: optional("max-connections", 0, 10_000_000),
      maxRequestsPerAddress: optional("max-per-address", 0, 10_000_000),
      peerReservedRequests: optional("peer-reserve", 0, 10_000_000),
      maxBufferedBytes: optional("max-buffered-bytes", 0, 2 ** 40),
      responseWriteTimeoutMs: optional("write-timeout", 0, 3_600_000),
      maxStreamLifetimeMs: optional("max-stream-life", 0, 86_400_000),
      prefaceTimeoutMs: optional("preface-timeout", 0, 3_600_000),
      idleSessionTimeoutMs: optional("idle-timeout", 0, 86_400_000),
      maxConnectionsPerAddress: optional("max-conns-per-address", 0, 10_000_000),
      maxConcurrentStreams: optional("max-streams", 1, 1_000_000),
      maxKeyBytes: optional("max-key-bytes", 1, 1 << 20),
      maxValueBytes: optional("max-value-bytes", 1, 1 << 30),
    },
  });
  pool.setPeers(...peers);
} catch (error) {
  fail(messageOf(error));
}
group.registerPeers(pool);
// Only when a parent opened an IPC channel (scripts/chaos.mjs): answers {type: "stats"}.
if (process.send !== undefined) {
  installIntrospection(process, { pool, group, sockets: new SocketTracker().start() });
}

let stopping = false;
async function stop(signal: string) {
  if (stopping) return;
  stopping = true;
  log(`${signal}: draining`);
  await pool.close();
  source?.close();
  log("stopped");
  process.exit(0);
}
process.on("SIGINT", () => void stop("SIGINT"));
process.on("SIGTERM", () => void stop("SIGTERM"));

try {
  await pool.serve();
} catch (error) {
  console.error(`distcache-node: cannot listen on ${self}: ${messageOf(error)}`);
  process.exit(1);
}
log(`serving group "${groupName}" (${budget} bytes), members: ${pool.stats().members.join(", ")}`);
