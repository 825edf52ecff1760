#!/usr/bin/env node
// distcache-node: one cache node serving its groups over gRPC, gRPC-Web and
// Connect. Settings come from the flags and an optional config file
// (src/config/); groups and their sources from src/groups.ts; logs are pino's.
import { readFileSync } from "node:fs";
import { createServer } from "node:net";
import { ConfigError, type LoadedConfig, loadConfigFile } from "./config/file.js";
import { type FlagSettings, parseFlags, usage } from "./config/flags.js";
import { membersWith, type NodeConfig, resolveConfig, selfAddress } from "./config/resolve.js";
import { formatHostPort } from "./config/units.js";
import type { NodeGroup } from "./groups.js";
import { readClientTokens, readPeerSecrets } from "./secret-files.js";

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** Bad flags or config: every problem on stderr, exit 2. */
function fail(error: unknown, withUsage = false): never {
  const problems = error instanceof ConfigError ? error.problems : [messageOf(error)];
  console.error(problems.map((p) => `distcache-node: ${p}`).join("\n"));
  if (withUsage) console.error(`\n${usage()}`);
  process.exit(2);
}

let flags: FlagSettings;
let config: NodeConfig;
try {
  flags = parseFlags(process.argv.slice(2));
} catch (error) {
  fail(error, true);
}
if (flags.help === true) {
  console.log(usage());
  process.exit(0);
}
try {
  const file: LoadedConfig | undefined =
    flags.configPath === undefined ? undefined : loadConfigFile(flags.configPath);
  config = resolveConfig(flags, file);
} catch (error) {
  fail(error);
}

/**
 * A free port on `host` for `--port 0`: the member address must be known before
 * the pool exists, so the port is picked first (a moment's race with another
 * process; losing it is a clean "cannot listen" exit).
 */
async function pickPort(host: string): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, host, resolve);
  });
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

const listenPort =
  config.listen.port === 0 ? await pickPort(config.listen.host) : config.listen.port;
const listen = formatHostPort(config.listen.host, listenPort);
const self = selfAddress(config, listenPort);
let members: readonly string[];
try {
  members = membersWith(config, self);
} catch (error) {
  fail(error);
}

/** A credential file's contents, or exit 2 naming it. */
function readCredential(what: string, path: string): Buffer {
  try {
    return readFileSync(path);
  } catch (error) {
    fail(`${what} ${path}: ${messageOf(error)}`);
  }
}
const { security } = config;
let secrets: string[] = [];
let clientTokens: ReturnType<typeof readClientTokens> | undefined;
try {
  if (security.peerSecretFile !== undefined) secrets = readPeerSecrets(security.peerSecretFile);
  if (security.clientTokenFile !== undefined) {
    clientTokens = readClientTokens(security.clientTokenFile);
  }
} catch (error) {
  fail(error);
}
const tls =
  security.tls === undefined
    ? undefined
    : {
        cert: readCredential("--tls-cert", security.tls.cert),
        key: readCredential("--tls-key", security.tls.key),
        ...(security.tls.ca === undefined
          ? {}
          : { ca: readCredential("--tls-ca", security.tls.ca) }),
      };
// The heavy modules load once the settings are known good: a bad flag or file
// is reported without paying for them.
const [
  { ConnectPool, InsecurePeerPlaneError },
  { createGroups },
  { installIntrospection, SocketTracker },
  { createLogger },
  { logPoolEvents },
] = await Promise.all([
  import("@distcache/transport-connect"),
  import("./groups.js"),
  import("./introspection.js"),
  import("./log/logger.js"),
  import("./log/pool-events.js"),
]);
const log = createLogger({ ...config.log, node: self });

let groups: NodeGroup[];
let pool: InstanceType<typeof ConnectPool>;
try {
  groups = await createGroups(config.groups, log);
  pool = new ConnectPool(self, {
    ...config.pool,
    peer: { ...config.pool.peer, secrets, insecure: security.insecurePeers },
    tls,
    server: { ...config.pool.server, clientTokens },
    admin: config.admin,
  });
  logPoolEvents(pool, log);
  pool.setPeers(...members);
} catch (error) {
  fail(error);
}
for (const { group } of groups) group.registerPeers(pool);
// Only when a parent opened an IPC channel (scripts/chaos.mjs): answers {type: "stats"}.
if (process.send !== undefined && groups[0] !== undefined) {
  installIntrospection(process, {
    pool,
    group: groups[0].group,
    sockets: new SocketTracker().start(),
  });
}

let stopping = false;
async function stop(signal: string) {
  if (stopping) return;
  stopping = true;
  // The pool logs "draining" and "stopped" (its events).
  log.info({ signal }, `${signal}: stopping`);
  await pool.close();
  await Promise.allSettled(groups.map((g) => g.close()));
  process.exit(0);
}
process.on("SIGINT", () => void stop("SIGINT"));
process.on("SIGTERM", () => void stop("SIGTERM"));
// SIGHUP re-reads the peer secret file: a rotation step without a restart.
process.on("SIGHUP", () => {
  const file = security.peerSecretFile;
  if (file === undefined) return;
  try {
    pool.setPeerSecrets(...readPeerSecrets(file));
    log.info({ file }, `SIGHUP: peer secrets re-read from ${file}`);
  } catch (error) {
    log.warn({ file, err: messageOf(error) }, `SIGHUP: kept the peer secrets: ${messageOf(error)}`);
  }
});

try {
  await pool.serve(listen);
} catch (error) {
  // A listen address beyond loopback without peer authentication: a setting to fix, not a failure to listen.
  if (error instanceof InsecurePeerPlaneError) fail(error);
  const admin =
    config.admin === undefined
      ? ""
      : ` (or the admin port ${formatHostPort(config.admin.host, config.admin.port)})`;
  log.fatal(
    { listen, err: messageOf(error) },
    `cannot listen on ${listen}${admin}: ${messageOf(error)}`,
  );
  process.exit(1);
}
const served = groups.map(
  ({ config: g }) => `group "${g.name}" (${g.budget} bytes, ${g.source.type})`,
);
const bound = pool.adminAddress;
const admin = bound === undefined ? undefined : formatHostPort(bound.host, bound.port);
log.info(
  { listen, admin },
  `serving ${served.join(", ")} as ${self}, members: ${pool.stats().members.join(", ")}; ` +
    (admin === undefined
      ? "no admin port"
      : `admin http://${admin}/ (metrics, probes, status page)`),
);
if (
  config.admin?.statusPage === true &&
  !/^(127\.\d+\.\d+\.\d+|::1|localhost)$/.test(config.admin.host)
) {
  // The status page's lookup box reads any key through this node.
  log.warn(
    { admin },
    `the admin port listens on ${config.admin.host} with the status page on: anyone who reaches it can read keys (admin.statusPage: false keeps only /metrics and the probes)`,
  );
}
