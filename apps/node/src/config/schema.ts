// The config file's schema (zod): what `distcache-node --config FILE` accepts,
// validated strictly (unknown keys are errors) and converted to numbers
// (sizes, durations). Pool options keep ConnectPoolOptions' names; their
// meaning, unit and default are documented once in
// packages/transport-connect/src/options.ts.
import { z } from "zod";
import { parseDuration, parseHostPort, parseSize } from "./units.js";

/** A number or text read by `parse` (which returns a number, or an error message). */
const parsedBy = (parse: (value: string | number) => number | string) =>
  z.union([z.number(), z.string()]).transform((value, ctx) => {
    const parsed = parse(value);
    if (typeof parsed === "string") {
      ctx.addIssue({ code: "custom", message: parsed });
      return z.NEVER;
    }
    return parsed;
  });

/** A byte size: an integer or `64MiB`-style text. */
const size = parsedBy(parseSize);

/** A duration in milliseconds: an integer or `30s`-style text. */
const duration = parsedBy(parseDuration);

const count = (min: number, max: number) => z.number().int().min(min).max(max);

/** `HOST:PORT`, kept as written (members are compared as strings). */
const address = z.string().check((ctx) => {
  const parsed = parseHostPort(ctx.value);
  if (typeof parsed === "string")
    ctx.issues.push({ code: "custom", message: parsed, input: ctx.value });
});

const demoSource = z.strictObject({ type: z.literal("demo") });

const httpSource = z.strictObject({
  type: z.literal("http"),
  /** `GET URL/<group>/<key>`: 200 = the value, 404 = not found. */
  url: z.url({ protocol: /^http$/, error: "must be an http:// URL" }),
  maxBodyBytes: size.optional(),
  maxSockets: count(1, 10_000).optional(),
});

const postgresSource = z.strictObject({
  type: z.literal("postgres"),
  /** `postgres://user@host:port/db`; or the separate keys below. */
  connectionString: z.string().min(1).optional(),
  host: z.string().min(1).optional(),
  port: count(1, 65_535).optional(),
  database: z.string().min(1).optional(),
  user: z.string().min(1).optional(),
  /** A file holding the password (never the password itself in the config). */
  passwordFile: z.string().min(1).optional(),
  /** One parameter, `$1` = the key; the first column of the first row is the value. */
  query: z.string().includes("$1", { error: "must use $1 for the key" }),
  /** Connections open at most. Default 4. */
  poolSize: count(1, 1_000).default(4),
  /** Server-side statement_timeout. Default 5s; 0 = none. */
  statementTimeout: duration.default(5_000),
  /** Longest value accepted. Default 16MiB. */
  maxValueBytes: size.default(16 << 20),
});

export const sourceSchema = z.discriminatedUnion("type", [demoSource, httpSource, postgresSource]);

export const groupSchema = z.strictObject({
  name: z.string().min(1).max(256),
  /** The cache's byte budget (main + hot). */
  budget: size,
  /** How long an entry may be served after it was loaded. Default none. */
  ttl: duration.optional(),
  /** Longest getter call. Default the library's (core's DEFAULT_LOAD_TIMEOUT_MS). */
  loadTimeout: duration.optional(),
  /** The owner answers a load once its replicas hold the value (core's GroupOptions.awaitReplicas). */
  awaitReplicas: z.boolean().optional(),
  /** Getter calls of this group at once (core's GroupOptions.maxLoadsInFlight). */
  maxLoadsInFlight: count(0, 1_000_000).optional(),
  /** Loads of this group waiting for a getter slot (core's GroupOptions.maxLoadsQueued). */
  maxLoadsQueued: count(0, 10_000_000).optional(),
  source: sourceSchema,
});

const breakerSchema = z.strictObject({
  failureThreshold: count(1, 1_000).optional(),
  baseBackoffMs: duration.optional(),
  maxBackoffMs: duration.optional(),
});

/** ConnectPoolOptions.server, by the library's names. */
const serverSchema = z.strictObject({
  allowClientSet: z.boolean().optional(),
  maxKeyBytes: size.optional(),
  maxValueBytes: size.optional(),
  drainTimeoutMs: duration.optional(),
  maxRequestsInFlight: count(0, 10_000_000).optional(),
  maxRequestsPerAddress: count(0, 10_000_000).optional(),
  peerReservedRequests: count(0, 10_000_000).optional(),
  maxBufferedBytes: size.optional(),
  responseWriteTimeoutMs: duration.optional(),
  maxStreamLifetimeMs: duration.optional(),
  prefaceTimeoutMs: duration.optional(),
  maxConnectionsPerAddress: count(0, 10_000_000).optional(),
  maxEventLoopDelayMs: duration.optional(),
  maxConnections: count(0, 10_000_000).optional(),
  maxConcurrentStreams: count(0, 10_000_000).optional(),
  idleSessionTimeoutMs: duration.optional(),
  requestReceiveTimeoutMs: duration.optional(),
  maxSessionMemoryMiB: count(1, 1 << 20).optional(),
  maxHeaderListBytes: size.optional(),
  fastPaths: z.boolean().optional(),
  health: z.boolean().optional(),
  reflection: z.boolean().optional(),
});

export const LOG_LEVELS = ["trace", "debug", "info", "warn", "error", "fatal", "silent"] as const;
export const LOG_FORMATS = ["json", "pretty"] as const;

export const configFileSchema = z
  .strictObject({
    node: z
      .strictObject({
        /** Where the main port binds. */
        listen: address.optional(),
        /** How the other members name this node (must be in `members`). */
        advertise: address.optional(),
      })
      .optional(),
    /** Every member, this node included, as each node names it. */
    members: z.array(address).min(1).optional(),
    replicas: count(0, 64).optional(),
    /** Node-wide getter calls at once, and loads that may wait for one (ConnectPoolOptions). */
    maxLoadsInFlight: count(0, 1_000_000).optional(),
    maxLoadsQueued: count(0, 10_000_000).optional(),
    virtualNodes: count(1, 10_000).optional(),
    peer: z
      .strictObject({ timeoutMs: duration.optional(), breaker: breakerSchema.optional() })
      .optional(),
    server: serverSchema.optional(),
    /** The peer plane's and the clients' credentials: files, read at start (see apps/node/README.md). */
    security: z
      .strictObject({
        /** One peer secret per line, every node the same (`--peer-secret-file`). */
        peerSecretFile: z.string().min(1).optional(),
        /** Allow non-loopback members without peer authentication (`--insecure-peers`). */
        insecurePeers: z.boolean().optional(),
        /** PEM files: this node's certificate and key (TLS), the cluster CA (mutual TLS). */
        tls: z
          .strictObject({
            cert: z.string().min(1),
            key: z.string().min(1),
            ca: z.string().min(1).optional(),
          })
          .optional(),
        /** Lines `write TOKEN` / `read TOKEN` (`--client-token-file`). */
        clientTokenFile: z.string().min(1).optional(),
      })
      .optional(),
    /** The admin HTTP/1.1 listener (metrics, probes, status page); `false` = off. */
    admin: z
      .union([
        z.literal(false),
        z.strictObject({
          host: z.string().min(1).optional(),
          port: count(0, 65_535),
          statusPage: z.boolean().optional(),
        }),
      ])
      .optional(),
    log: z
      .strictObject({
        level: z.enum(LOG_LEVELS).optional(),
        format: z.enum(LOG_FORMATS).optional(),
      })
      .optional(),
    groups: z.array(groupSchema).optional(),
  })
  .superRefine((config, ctx) => {
    const seen = new Set<string>();
    config.groups?.forEach((group, index) => {
      if (seen.has(group.name)) {
        ctx.addIssue({
          code: "custom",
          path: ["groups", index, "name"],
          message: `duplicate group "${group.name}"`,
        });
      }
      seen.add(group.name);
    });
  });

/** A config file, validated and converted (sizes in bytes, durations in ms). */
export type ConfigFile = z.output<typeof configFileSchema>;
export type GroupConfig = z.output<typeof groupSchema>;
export type SourceConfig = z.output<typeof sourceSchema>;
export type LogLevel = (typeof LOG_LEVELS)[number];
export type LogFormat = (typeof LOG_FORMATS)[number];
