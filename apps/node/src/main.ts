#!/usr/bin/env node
/**
 * distcache-node: one cache node serving the demo group over gRPC, gRPC-Web
 * and Connect. Every getter call prints "loaded from source: KEY".
 */
import { parseArgs } from "node:util";
import { NotFoundError, newGroup } from "@distcache/core";
import { ConnectPool } from "@distcache/transport-connect";
import { demoRows } from "./source.js";

const usage = `Usage: distcache-node [options]

  --host HOST              address to listen on and to be known by (default 127.0.0.1)
  --port PORT              port (default 8001)
  --peers H:P,H:P,...      every member of the cluster (default: this node alone);
                           name members exactly as the other nodes do
  --group NAME[:BYTES]     the demo group and its byte budget (default scores:2048)
  --replicas N             copies after the owner's (default 2)
  --peer-timeout MS        per-peer call timeout (default 1000)
  --no-client-set          refuse CacheService.Set from clients
  --help                   this text`;

function fail(message: string): never {
  console.error(`distcache-node: ${message}\n\n${usage}`);
  process.exit(2);
}

function integer(name: string, text: string, min: number, max: number): number {
  const value = Number(text);
  if (!Number.isInteger(value) || value < min || value > max) {
    fail(`--${name} must be an integer from ${min} to ${max}, got "${text}"`);
  }
  return value;
}

let args: ReturnType<typeof parse>;
function parse() {
  return parseArgs({
    options: {
      host: { type: "string", default: "127.0.0.1" },
      port: { type: "string", default: "8001" },
      peers: { type: "string" },
      group: { type: "string", default: "scores:2048" },
      replicas: { type: "string", default: "2" },
      "peer-timeout": { type: "string", default: "1000" },
      "no-client-set": { type: "boolean", default: false },
      help: { type: "boolean", default: false },
    },
    strict: true,
  });
}
try {
  args = parse();
} catch (error) {
  fail(error instanceof Error ? error.message : String(error));
}
if (args.values.help) {
  console.log(usage);
  process.exit(0);
}

const { host } = args.values;
const port = integer("port", args.values.port, 0, 65_535);
const self = `${host.includes(":") ? `[${host}]` : host}:${port}`;
const [groupName, budgetText] = args.values.group.split(":") as [string, string | undefined];
if (groupName === "") fail("--group needs a name");
const budget = budgetText === undefined ? 2048 : integer("group BYTES", budgetText, 0, 2 ** 50);
const peers = (args.values.peers ?? self)
  .split(",")
  .map((peer) => peer.trim())
  .filter((peer) => peer !== "");

const rows = demoRows();
const log = (line: string) => console.log(`[node ${self}] ${line}`);
const group = newGroup(groupName, budget, async (key) => {
  log(`loaded from source: ${key}`);
  const value = rows.get(key);
  if (value === undefined) throw new NotFoundError(key);
  return value;
});

let pool: ConnectPool;
try {
  pool = new ConnectPool(self, {
    replicas: integer("replicas", args.values.replicas, 0, 64),
    peerTimeoutMs: integer("peer-timeout", args.values["peer-timeout"], 1, 600_000),
    allowClientSet: !args.values["no-client-set"],
  });
  pool.setPeers(...peers);
} catch (error) {
  fail(error instanceof Error ? error.message : String(error));
}
group.registerPeers(pool);

let stopping = false;
async function stop(signal: string) {
  if (stopping) return;
  stopping = true;
  log(`${signal}: draining`);
  await pool.close();
  log("stopped");
  process.exit(0);
}
process.on("SIGINT", () => void stop("SIGINT"));
process.on("SIGTERM", () => void stop("SIGTERM"));

try {
  await pool.serve();
} catch (error) {
  console.error(
    `distcache-node: cannot listen on ${self}: ${error instanceof Error ? error.message : error}`,
  );
  process.exit(1);
}
log(`serving group "${groupName}" (${budget} bytes), members: ${pool.stats().members.join(", ")}`);
