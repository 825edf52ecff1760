// distcache-node's command-line flags: one table (name, argument, help, and
// what each sets), the usage text built from it, and parsing into
// FlagSettings, which resolve.ts lays over the config file.
import { parseArgs } from "node:util";
import type { ServerOptions } from "@distcache/transport-connect";
import { ConfigError } from "./file.js";
import { LOG_FORMATS, LOG_LEVELS, type LogFormat, type LogLevel } from "./schema.js";
import { parseDuration, parseHostPort, parseSize } from "./units.js";

/** What the flags given set; absent = not given (the file or the default decides). */
export interface FlagSettings {
  configPath?: string;
  listen?: { host: string; port: number };
  host?: string;
  port?: number;
  advertise?: string;
  members?: string[];
  group?: { name: string; budget: number };
  sourceUrl?: string;
  loadTimeout?: number;
  awaitReplicas?: boolean;
  groupMaxLoadsInFlight?: number;
  groupMaxLoadsQueued?: number;
  replicas?: number;
  maxLoadsInFlight?: number;
  maxLoadsQueued?: number;
  peerTimeoutMs?: number;
  server: ServerOptions;
  /** `false`: --no-admin / --admin-port off. */
  adminPort?: number | false;
  adminHost?: string;
  peerSecretFile?: string;
  insecurePeers?: boolean;
  tlsCert?: string;
  tlsKey?: string;
  tlsCa?: string;
  clientTokenFile?: string;
  logLevel?: LogLevel;
  logFormat?: LogFormat;
  help?: boolean;
}

interface Flag {
  readonly name: string;
  /** The argument's name in the usage text; absent for a boolean flag. */
  readonly arg?: string;
  readonly help: string;
  /** Section of the usage text. */
  readonly section: "node" | "group" | "pool" | "security" | "admin" | "log";
  /** Stores the flag's value (throws a message string when it is bad). */
  readonly set: (into: FlagSettings, value: string) => void;
}

/** A bad flag value; parseFlags collects them into one ConfigError. */
class FlagProblem extends Error {}

const problem = (name: string, message: string): never => {
  throw new FlagProblem(`--${name} ${message}`);
};

function integer(name: string, text: string, min: number, max: number): number {
  // Decimal digits only: Number() would take "" as 0, "1e3" and "0x10".
  const value = /^\d+$/.test(text) ? Number(text) : Number.NaN;
  if (!Number.isInteger(value) || value < min || value > max) {
    problem(name, `must be an integer from ${min} to ${max}, got "${text}"`);
  }
  return value;
}

function ms(name: string, text: string, min: number, max: number): number {
  const value = parseDuration(text);
  if (typeof value === "string") return problem(name, value);
  if (value < min || value > max) problem(name, `must be from ${min} to ${max} ms, got "${text}"`);
  return value;
}

function bytes(name: string, text: string, min: number, max: number): number {
  const value = parseSize(text);
  if (typeof value === "string") return problem(name, value);
  if (value < min || value > max)
    problem(name, `must be from ${min} to ${max} bytes, got "${text}"`);
  return value;
}

function hostPort(name: string, text: string): { host: string; port: number } {
  const value = parseHostPort(text);
  return typeof value === "string" ? problem(name, value) : value;
}

/**
 * The flag that sets one `server` limit of ConnectPoolOptions: `--NAME N`
 * (or `MS` for a duration), parsed by `parse` within `min`..`max`.
 */
function serverLimit(
  name: string,
  field: keyof ServerOptions,
  parse: typeof integer,
  min: number,
  max: number,
): Flag {
  return {
    name,
    arg: parse === ms ? "MS" : "N",
    section: "pool",
    help: `server.${field}`,
    set: (s, v) => {
      (s.server as Record<string, number>)[field] = parse(name, v, min, max);
    },
  };
}

/** Every flag, in usage order. Flags override the config file's values. */
export const FLAGS: readonly Flag[] = [
  {
    name: "config",
    arg: "FILE",
    section: "node",
    help: "read the node, members, limits, admin, log and groups from FILE (YAML or JSON)",
    set: (s, v) => {
      s.configPath = v;
    },
  },
  {
    name: "listen",
    arg: "HOST:PORT",
    section: "node",
    help: "where the main port binds (file: node.listen; default 127.0.0.1:8001)",
    set: (s, v) => {
      s.listen = hostPort("listen", v);
    },
  },
  {
    name: "advertise",
    arg: "HOST:PORT",
    section: "node",
    help: "how the other members name this node (file: node.advertise; default: the\nlisten address with the port actually bound)",
    set: (s, v) => {
      hostPort("advertise", v);
      s.advertise = v;
    },
  },
  {
    name: "host",
    arg: "HOST",
    section: "node",
    help: "the listen host (and, without --advertise, the advertised one)",
    set: (s, v) => {
      s.host = v;
    },
  },
  {
    name: "port",
    arg: "PORT",
    section: "node",
    help: "the listen port; 0 picks a free one (the ready line prints it)",
    set: (s, v) => {
      s.port = integer("port", v, 0, 65_535);
    },
  },
  {
    name: "peers",
    arg: "H:P,H:P,...",
    section: "node",
    help: "every member of the cluster, this node included (file: members; default:\nthis node alone); name members exactly as the other nodes do",
    set: (s, v) => {
      s.members = v
        .split(",")
        .map((peer) => peer.trim())
        .filter((peer) => peer !== "");
      for (const member of s.members) hostPort("peers", member);
    },
  },
  {
    name: "group",
    arg: "NAME[:BYTES]",
    section: "group",
    help: "without groups in the file: the one group and its budget (default scores:2048;\nBYTES may be 64MiB-style)",
    set: (s, v) => {
      const [, name = "", budget] = /^([^:]*)(?::(.*))?$/.exec(v)!;
      if (name === "") problem("group", "needs a name");
      s.group = {
        name,
        budget: budget === undefined ? 2048 : bytes("group", budget, 0, 2 ** 50),
      };
    },
  },
  {
    name: "source-url",
    arg: "URL",
    section: "group",
    help: "that group loads from GET URL/<group>/<key> (URL-encoded) instead of the\ndemo rows: 200 = the value, 404 = not found",
    set: (s, v) => {
      s.sourceUrl = v;
    },
  },
  {
    name: "load-timeout",
    arg: "MS",
    section: "group",
    help: "that group's longest getter call (loadTimeout; 30s-style or ms)",
    set: (s, v) => {
      s.loadTimeout = ms("load-timeout", v, 0, 3_600_000);
    },
  },
  {
    name: "group-max-loads",
    arg: "N",
    section: "group",
    help: "that group's getter calls at once (the group's maxLoadsInFlight)",
    set: (s, v) => {
      s.groupMaxLoadsInFlight = integer("group-max-loads", v, 0, 1_000_000);
    },
  },
  {
    name: "group-max-loads-queued",
    arg: "N",
    section: "group",
    help: "that group's loads waiting for a getter slot (the group's maxLoadsQueued)",
    set: (s, v) => {
      s.groupMaxLoadsQueued = integer("group-max-loads-queued", v, 0, 10_000_000);
    },
  },
  {
    name: "await-replicas",
    section: "group",
    help: "that group's owner answers a load once its replicas hold the value\n(awaitReplicas; default: it answers at once, the copies follow in the turn's batch)",
    set: (s) => {
      s.awaitReplicas = true;
    },
  },
  {
    name: "replicas",
    arg: "N",
    section: "pool",
    help: "replicas",
    set: (s, v) => {
      s.replicas = integer("replicas", v, 0, 64);
    },
  },
  {
    name: "peer-timeout",
    arg: "MS",
    section: "pool",
    help: "peer.timeoutMs",
    set: (s, v) => {
      s.peerTimeoutMs = ms("peer-timeout", v, 1, 600_000);
    },
  },
  {
    name: "no-client-set",
    section: "pool",
    help: "server.allowClientSet = false",
    set: (s) => {
      s.server.allowClientSet = false;
    },
  },
  serverLimit("drain-timeout", "drainTimeoutMs", ms, 0, 3_600_000),
  serverLimit("max-in-flight", "maxRequestsInFlight", integer, 0, 10_000_000),
  serverLimit("max-loop-delay", "maxEventLoopDelayMs", ms, 0, 600_000),
  serverLimit("max-connections", "maxConnections", integer, 0, 10_000_000),
  serverLimit("max-key-bytes", "maxKeyBytes", bytes, 1, 1 << 20),
  serverLimit("max-value-bytes", "maxValueBytes", bytes, 1, 1 << 30),
  serverLimit("max-per-address", "maxRequestsPerAddress", integer, 0, 10_000_000),
  serverLimit("peer-reserve", "peerReservedRequests", integer, 0, 10_000_000),
  serverLimit("max-buffered-bytes", "maxBufferedBytes", bytes, 0, 2 ** 40),
  serverLimit("write-timeout", "responseWriteTimeoutMs", ms, 0, 3_600_000),
  serverLimit("max-stream-life", "maxStreamLifetimeMs", ms, 0, 86_400_000),
  serverLimit("preface-timeout", "prefaceTimeoutMs", ms, 0, 3_600_000),
  serverLimit("idle-timeout", "idleSessionTimeoutMs", ms, 0, 86_400_000),
  serverLimit("max-conns-per-address", "maxConnectionsPerAddress", integer, 0, 10_000_000),
  serverLimit("max-streams", "maxConcurrentStreams", integer, 1, 1_000_000),
  {
    name: "max-loads",
    arg: "N",
    section: "pool",
    help: "maxLoadsInFlight (node-wide getter calls)",
    set: (s, v) => {
      s.maxLoadsInFlight = integer("max-loads", v, 0, 1_000_000);
    },
  },
  {
    name: "max-loads-queued",
    arg: "N",
    section: "pool",
    help: "maxLoadsQueued",
    set: (s, v) => {
      s.maxLoadsQueued = integer("max-loads-queued", v, 0, 10_000_000);
    },
  },
  {
    name: "peer-secret-file",
    arg: "FILE",
    section: "security",
    help: "peer.secrets: the cluster's shared secrets, one per line (every node the\nsame; two lines while rotating; SIGHUP re-reads the file); the file must not\nbe world-readable (file: security.peerSecretFile)",
    set: (s, v) => {
      s.peerSecretFile = v;
    },
  },
  {
    name: "insecure-peers",
    section: "security",
    help: "peer.insecure: allow non-loopback members without a peer secret or mutual\nTLS (anyone who reaches the port can then read and write the cache)",
    set: (s) => {
      s.insecurePeers = true;
    },
  },
  {
    name: "tls-cert",
    arg: "FILE",
    section: "security",
    help: "tls.cert: serve TLS (HTTP/2 via ALPN, and HTTP/1.1 for gRPC-Web/Connect on\nthe same port); peers are dialled over https (with --tls-key)",
    set: (s, v) => {
      s.tlsCert = v;
    },
  },
  {
    name: "tls-key",
    arg: "FILE",
    section: "security",
    help: "tls.key: the key of --tls-cert",
    set: (s, v) => {
      s.tlsKey = v;
    },
  },
  {
    name: "tls-ca",
    arg: "FILE",
    section: "security",
    help: "tls.ca: the cluster CA; peers must present a certificate it signed that\nnames their host (mutual TLS)",
    set: (s, v) => {
      s.tlsCa = v;
    },
  },
  {
    name: "client-token-file",
    arg: "FILE",
    section: "security",
    help: 'server.clientTokens: lines "write TOKEN" / "read TOKEN"; Set and Delete\nneed a write token, Get a token only if a read token is listed\n(authorization: Bearer TOKEN)',
    set: (s, v) => {
      s.clientTokenFile = v;
    },
  },
  {
    name: "admin-port",
    arg: "PORT|off",
    section: "admin",
    help: "the admin HTTP/1.1 listener: /metrics, /livez, /readyz, /status.json and the\nstatus page (file: admin.port; default: the main port + 1000, or 0 when the\nmain port is 0; 0 picks a free one; off = none)",
    set: (s, v) => {
      s.adminPort = v === "off" ? false : integer("admin-port", v, 0, 65_535);
    },
  },
  {
    name: "admin-host",
    arg: "HOST",
    section: "admin",
    help: "where the admin listener binds (file: admin.host; default 127.0.0.1)",
    set: (s, v) => {
      s.adminHost = v;
    },
  },
  {
    name: "no-admin",
    section: "admin",
    help: "no admin listener (same as --admin-port off)",
    set: (s) => {
      s.adminPort = false;
    },
  },
  {
    name: "log-level",
    arg: "LEVEL",
    section: "log",
    help: `${LOG_LEVELS.join(", ")} (file: log.level; default info)`,
    set: (s, v) => {
      if (!(LOG_LEVELS as readonly string[]).includes(v))
        problem("log-level", `must be one of ${LOG_LEVELS.join(", ")}`);
      s.logLevel = v as LogLevel;
    },
  },
  {
    name: "log-format",
    arg: "FORMAT",
    section: "log",
    help: "json (one JSON object a line) or pretty (file: log.format; default pretty\nwhen stdout is a terminal, else json)",
    set: (s, v) => {
      if (!(LOG_FORMATS as readonly string[]).includes(v))
        problem("log-format", `must be json or pretty`);
      s.logFormat = v as LogFormat;
    },
  },
  {
    name: "help",
    section: "node",
    help: "this text",
    set: (s) => {
      s.help = true;
    },
  },
];

const SECTIONS: Readonly<Record<Flag["section"], string>> = {
  node: "",
  group: "The one group when the config file declares none:",
  pool: "Cluster and server options (ConnectPoolOptions; what each means, its unit,\ndefault and what 0 means: packages/transport-connect/src/options.ts):",
  security:
    'Security (docs/operations.md, "Security"; a node whose listen address or\nmembers are not loopback refuses to start without --peer-secret-file, mutual\nTLS or --insecure-peers):',
  admin: "Admin listener:",
  log: "Logs:",
};

/** The usage text, built from {@link FLAGS}. */
export function usage(): string {
  const lines = ["Usage: distcache-node [--config FILE] [options]", ""];
  for (const section of Object.keys(SECTIONS) as Flag["section"][]) {
    if (SECTIONS[section] !== "") lines.push("", SECTIONS[section]);
    for (const flag of FLAGS.filter((f) => f.section === section)) {
      const head = `  --${flag.name}${flag.arg === undefined ? "" : ` ${flag.arg}`}`;
      const [first, ...rest] = flag.help.split("\n");
      lines.push(`${head.padEnd(26)} ${first}`, ...rest.map((line) => `${"".padEnd(26)} ${line}`));
    }
  }
  lines.push(
    "",
    "Flags override the config file; the file overrides the defaults.",
    "Every flag and config key: apps/node/README.md. Limits and what clients see: docs/operations.md.",
  );
  return lines.join("\n");
}

/** Parses `argv`; throws {@link ConfigError} naming the bad flag. */
export function parseFlags(argv: readonly string[]): FlagSettings {
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs({
      args: [...argv],
      options: Object.fromEntries(
        FLAGS.map((f) => [f.name, { type: f.arg === undefined ? "boolean" : "string" }] as const),
      ),
      strict: true,
      allowPositionals: false,
    });
  } catch (error) {
    throw new ConfigError([(error as Error).message]);
  }
  const settings: FlagSettings = { server: {} };
  const problems: string[] = [];
  for (const flag of FLAGS) {
    const value = parsed.values[flag.name];
    if (value === undefined || value === false) continue;
    try {
      flag.set(settings, typeof value === "string" ? value : "");
    } catch (error) {
      if (!(error instanceof FlagProblem)) throw error;
      problems.push(error.message);
    }
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return settings;
}
