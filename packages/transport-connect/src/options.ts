// Every option of ConnectPool in one table: what it is, its unit, its default
// and what `0` means. The READMEs, `distcache-node --help` and
// docs/operations.md point here instead of restating it.
import { MAX_PEER_SECRETS, MIN_PEER_SECRET_LENGTH } from "./auth/peer-token.js";
import type { CircuitBreakerOptions } from "./client/circuit-breaker.js";

/** How this node calls its peers. */
export interface PeerOptions {
  /**
   * Milliseconds each peer call may take (owner fetch, replica read, push,
   * invalidation) before the next source is tried. Default `1_000`. A getter
   * slower than this on the owner makes the asking node fall back to replicas
   * and then its own getter. Must be > 0. A call the peer relays on (a
   * Delete's fan-out through the owner, a forwarded Set) gets twice this
   * plus 250 ms, since the owner calls the others before it answers.
   */
  timeoutMs?: number;
  /**
   * The circuit breaker kept per peer: after `failureThreshold` (default 3)
   * failed calls in a row (refused, reset, timed out) the peer is skipped —
   * calls to it fail at once and reads go to the replicas — for a backoff
   * from `baseBackoffMs` (250) doubling to `maxBackoffMs` (10 000), then one
   * probe call decides whether it is back. Writes are always tried.
   */
  breaker?: CircuitBreakerOptions;
  /**
   * The cluster's shared peer secrets (the issue's `peerSecret`; the CLI's
   * `--peer-secret-file`). With any, every PeerService call carries this
   * node's address and one token per secret (HMAC-SHA256 of the address),
   * and a call whose token matches none of this node's secrets is refused
   * UNAUTHENTICATED before its body is read. Each secret: a string of at
   * least 16 characters (e.g. `head -c 32 /dev/urandom | base64`); at most 4.
   * Rotation: give every node `[old, new]`, then `[new]` (every secret signs,
   * any one accepted; docs/operations.md, "Security"). Default `[]`: no
   * secret — peer calls are only checked to name a member, which anyone can
   * claim, so the node then needs loopback members, mutual TLS, or `insecure`.
   */
  secrets?: readonly string[];
  /**
   * Serve and call an unauthenticated peer plane (no secret, no mutual TLS)
   * although a member or the listen address is not loopback. Default
   * `false`: such a node throws on `setPeers`/`serve` with how to fix it
   * (the CLI's `--insecure-peers` sets this).
   */
  insecure?: boolean;
}

/**
 * TLS for the node's port and its peer calls (the CLI's `--tls-cert`,
 * `--tls-key`, `--tls-ca`). PEM text or buffers.
 */
export interface TlsOptions {
  /** This node's certificate chain: served to clients and, with `ca`, presented to peers. */
  cert: string | Buffer;
  /** Its private key. */
  key: string | Buffer;
  /**
   * The cluster's CA. Peer calls dial `https://` and trust it (without it,
   * the system's CAs). With it the server also asks every caller for a
   * client certificate: peer calls must present one signed by this CA that
   * names the sender's host (DNS or IP SAN) — mutual TLS, which counts as
   * peer authentication — while clients may still call without one.
   */
  ca?: string | Buffer;
}

/** Bearer tokens clients must present (the CLI's `--client-token-file`). */
export interface ClientTokenOptions {
  /** Tokens that may Set and Delete (and Get). Default `[]`: with tokens configured at all, no client may write. */
  write?: readonly string[];
  /** Tokens that may only Get; with any, Get needs a read or write token. Default `[]`: Get stays open. */
  read?: readonly string[];
}

/** What this node's server accepts, and how it sheds load. */
export interface ServerOptions {
  /**
   * Whether clients may call `CacheService.Set`. Default `true`, as in the
   * reference. Set writes into the cache without the getter, so anyone who can
   * reach the port can change what every client reads: turn it off unless the
   * port is reachable by trusted clients only, or require a write token
   * (`clientTokens`). Peer calls (`PeerService.Store`, `Invalidate`) share
   * the port and are only answered for members: authenticated with
   * `peer.secrets` or mutual TLS (`tls.ca`), else merely named.
   */
  allowClientSet?: boolean;
  /** Longest key in UTF-8 bytes accepted over the wire; longer is INVALID_ARGUMENT. Default `1_024`. */
  maxKeyBytes?: number;
  /** Largest value in bytes accepted by Set and replication. Default `1_048_576` (1 MiB). */
  maxValueBytes?: number;
  /** Milliseconds `close()` waits for calls in flight before cutting sessions. Default `5_000`. */
  drainTimeoutMs?: number;
  /**
   * Requests this node serves at once (all sessions, client and peer calls;
   * each key of a `PeerService/FetchMany` counts as one); one more is
   * answered RESOURCE_EXHAUSTED at once, its body unread. Default `4_096`:
   * far above what one process completes concurrently, so only stuck work
   * reaches it, and it bounds the memory stuck work holds
   * (docs/operations.md, "Limits"). `0` turns the limit off.
   */
  maxRequestsInFlight?: number;
  /**
   * Client requests in flight from one remote IP address, over all its
   * connections; one more is answered RESOURCE_EXHAUSTED "... the limit per
   * address is N". Default `1_024`: a quarter of `maxRequestsInFlight`, so
   * one host cannot take the node. Peer calls are not counted here (they
   * have the reserve). `0`: no limit.
   */
  maxRequestsPerAddress?: number;
  /**
   * Part of `maxRequestsInFlight` that only peer calls
   * (`distcache.peer.v1.PeerService/*`) may use: client requests are refused
   * RESOURCE_EXHAUSTED "... the limit for clients is N" once
   * `maxRequestsInFlight - peerReservedRequests` are in flight, so clients
   * cannot starve forwarded reads, replication and invalidation. Default
   * `512`. Ignored when more than half of `maxRequestsInFlight`. `0`: none.
   */
  peerReservedRequests?: number;
  /**
   * Bytes this node holds for requests and responses not yet consumed, in
   * bytes, node-wide: the declared size of requests in flight (their
   * `content-length`, or the largest message for a Set/Store without one),
   * answers of 4 KiB or more from when they are made until they are sent,
   * and smaller response bytes queued behind a client's flow control
   * (measured by the stream sweep). Past it a request that may bring more
   * than 64 KiB is answered RESOURCE_EXHAUSTED "... bytes buffered ...", and
   * so is a Get whose large answer would not fit (node-wide, or a quarter of
   * it for one client address); small Gets are still served. Default
   * `67_108_864` (64 MiB: 64 largest values). `0`: no limit.
   */
  maxBufferedBytes?: number;
  /**
   * Milliseconds a response may have bytes queued with none of them sent
   * (the client's flow-control window stays shut: it does not read); the
   * stream is then reset (CANCEL), freeing its slot and buffers. Checked by a
   * sweep every ≤ 1 s. Default `10_000`. `0`: never.
   */
  responseWriteTimeoutMs?: number;
  /**
   * Longest life of a stream in milliseconds, from admission to close, when
   * it states no shorter deadline (`grpc-timeout`, `connect-timeout-ms`; a
   * stated deadline is enforced at it plus 1 s). The stream is then reset
   * (CANCEL); a client sees CANCELED or a reset. Default `60_000`. `0`: no
   * limit beyond a stated deadline. A member's `Exchange` stream is exempt
   * (it carries calls for as long as the member has them; each call has its
   * own deadline).
   */
  maxStreamLifetimeMs?: number;
  /**
   * Milliseconds a new connection has to send its HTTP/2 preface (the magic
   * and SETTINGS); one that has not is closed. Default `5_000`. `0`: never.
   */
  prefaceTimeoutMs?: number;
  /**
   * Open TCP connections from one remote IP address; one more is closed on
   * accept. Default `1_024`: a quarter of `maxConnections`. `0`: no limit.
   */
  maxConnectionsPerAddress?: number;
  /**
   * Event-loop delay in milliseconds past which new requests are answered
   * UNAVAILABLE until the loop catches up; only delay this process spent on
   * the CPU counts, not time the OS did not run it. Default `1_000`, the
   * default peer timeout: past it callers time out anyway, so an UNAVAILABLE
   * at once sends a peer to a replica without the wait. `0` turns the probe off.
   */
  maxEventLoopDelayMs?: number;
  /**
   * Open TCP connections; a connection past this is closed on accept.
   * Default `4_096`; keep it under `ulimit -n`. `0`: no limit.
   */
  maxConnections?: number;
  /**
   * Streams one HTTP/2 session may have open at once (advertised in
   * SETTINGS; a client queues past it, a stream past it is refused): the
   * per-connection share of `maxRequestsInFlight`. Default `1_000` (Node's
   * own default is unbounded), a quarter of `maxRequestsInFlight`; lower
   * refuses (REFUSED_STREAM) the bursts clients send before they have read
   * the server's SETTINGS.
   */
  maxConcurrentStreams?: number;
  /**
   * Milliseconds a session may have no open stream before it is sent GOAWAY;
   * clients reconnect on their next call. Default `120_000` (2 min): above
   * the peer clients' own 1-minute idle close, so peers close theirs first.
   * A member's `Exchange` stream with no call open for this long is ended
   * too (its caller ends it after 30 s; this bounds one that does not).
   * `0`: never.
   */
  idleSessionTimeoutMs?: number;
  /**
   * Milliseconds after its headers within which a request's body must have
   * fully arrived; a stalled or truncated upload is then reset (CANCEL).
   * Default `10_000`: a whole max-size message at 100 KiB/s. `0`: never.
   * A member's `Exchange` stream, whose request side stays open, is exempt.
   */
  requestReceiveTimeoutMs?: number;
  /**
   * Node's memory credit per HTTP/2 session, in MiB (header tables, queued
   * frames, unread data); past it new streams on that session are refused.
   * Default `10` (Node's).
   */
  maxSessionMemoryMiB?: number;
  /**
   * Largest request header list in bytes (HTTP/2 SETTINGS_MAX_HEADER_LIST_SIZE);
   * a larger one resets the stream. Default `16_384`: twice gRPC's usual
   * 8 KiB metadata limit — keys travel in the body, not in headers.
   */
  maxHeaderListBytes?: number;
  /**
   * Whether plain gRPC `CacheService/Get` and `PeerService/FetchMany` are
   * served by the hand-written fast paths (same answers, a fraction of the
   * cost) instead of Connect. Default `true`; `false` gives a pure-Connect
   * server (the reference the differential tests compare against).
   */
  fastPaths?: boolean;
  /**
   * Client bearer tokens (`authorization: Bearer <token>`): with this set,
   * Set and Delete need a `write` token, and Get needs one too when any
   * `read` token is listed. A missing or unknown token is UNAUTHENTICATED,
   * a read token on a write PERMISSION_DENIED, both before the body is read.
   * Default `undefined`: no client call needs a token.
   */
  clientTokens?: ClientTokenOptions | undefined;
  /**
   * Whether the main port serves `grpc.health.v1.Health` (Check and Watch):
   * SERVING once the pool listens and `setPeers` has been called, NOT_SERVING
   * from the first step of `close()`. Default `true`.
   */
  health?: boolean;
  /**
   * Whether the main port serves gRPC server reflection
   * (`grpc.reflection.v1` and `v1alpha`), so `buf curl --reflect` and
   * grpcurl work without the .proto files. It tells callers nothing the
   * published .proto does not. Default `true`.
   */
  reflection?: boolean;
}

/**
 * The admin listener: plain HTTP/1.1 on its own port, for Prometheus and
 * Kubernetes probes (`/metrics`, `/livez`, `/readyz`) and people (`/`, the
 * status page; `/status.json`; `/lookup`). Absent: no admin listener.
 */
export interface AdminOptions {
  /** Address to bind. Default `"127.0.0.1"`: the page can read keys, so keep it off public interfaces. */
  host?: string;
  /** Port to bind; `0` picks a free one (see `ConnectPool.adminAddress`). Required. */
  port: number;
  /**
   * Whether to serve the status page, `/status.json` and `/lookup` (which
   * reads a key through this node). Default `true`; `false` leaves only
   * `/metrics`, `/livez` and `/readyz`.
   */
  statusPage?: boolean;
  /** Milliseconds a `/lookup` may take before it answers with a timeout. Default `2_000`. Must be > 0. */
  lookupTimeoutMs?: number;
}

/** Options for {@link ConnectPool}. */
export interface ConnectPoolOptions {
  /** Copies of each value kept after its owner's, on the next distinct members clockwise. Default `2`; `0`: none. */
  replicas?: number;
  /** Virtual nodes per member on the hash ring. Default: `@distcache/hashring`'s. */
  virtualNodes?: number;
  /** How this node calls its peers. */
  peer?: PeerOptions;
  /** What this node's server accepts, and how it sheds load. */
  server?: ServerOptions;
  /** TLS for this node's port and its peer calls; default `undefined`: h2c (cleartext). */
  tls?: TlsOptions | undefined;
  /** The admin HTTP/1.1 listener (metrics, probes, status page). Default: none. */
  admin?: AdminOptions;
  /**
   * Getter calls running at once on this node over all groups served by this
   * pool (origin protection; each group also has its own bound,
   * `GroupOptions.maxLoadsInFlight`, default 64). Loads past it wait in
   * order while their callers wait; a `FetchMany`'s keys count one by one.
   * Default `256`: four groups at their own bound, or what one database's
   * connection pool serves without queueing in it. `0`: no node-wide bound.
   */
  maxLoadsInFlight?: number;
  /**
   * Loads that may wait for a slot of `maxLoadsInFlight`; one more fails at
   * once: a Get answers RESOURCE_EXHAUSTED "overloaded: ... loads in flight
   * and N queued", a forwarded key its LOAD_FAILED. Default `4_096`. `0`:
   * none wait.
   */
  maxLoadsQueued?: number;
}

/** {@link PeerOptions} with every default applied. */
export interface ResolvedPeerOptions {
  readonly timeoutMs: number;
  readonly breaker: CircuitBreakerOptions | undefined;
  readonly secrets: readonly string[];
  readonly insecure: boolean;
}

/** {@link ClientTokenOptions} with every default applied. */
export interface ResolvedClientTokens {
  readonly write: readonly string[];
  readonly read: readonly string[];
}

/** {@link ServerOptions} with every default applied. */
export type ResolvedServerOptions = Readonly<
  Required<Omit<ServerOptions, "clientTokens">> & {
    clientTokens: ResolvedClientTokens | undefined;
  }
>;

/** {@link AdminOptions} with every default applied. */
export type ResolvedAdminOptions = Readonly<Required<AdminOptions>>;

/** {@link ConnectPoolOptions} with every default applied. */
export interface ResolvedOptions {
  readonly replicas: number;
  readonly maxLoadsInFlight: number;
  readonly maxLoadsQueued: number;
  readonly virtualNodes: number | undefined;
  readonly peer: ResolvedPeerOptions;
  readonly server: ResolvedServerOptions;
  readonly tls: TlsOptions | undefined;
  readonly admin: ResolvedAdminOptions | undefined;
}

/** The defaults of {@link ServerOptions}. */
export const SERVER_DEFAULTS: ResolvedServerOptions = Object.freeze({
  allowClientSet: true,
  maxKeyBytes: 1_024,
  maxValueBytes: 1 << 20,
  drainTimeoutMs: 5_000,
  maxRequestsInFlight: 4_096,
  maxEventLoopDelayMs: 1_000,
  maxConnections: 4_096,
  maxConcurrentStreams: 1_000,
  idleSessionTimeoutMs: 120_000,
  maxRequestsPerAddress: 1_024,
  peerReservedRequests: 512,
  maxBufferedBytes: 64 << 20,
  responseWriteTimeoutMs: 10_000,
  maxStreamLifetimeMs: 60_000,
  prefaceTimeoutMs: 5_000,
  maxConnectionsPerAddress: 1_024,
  requestReceiveTimeoutMs: 10_000,
  maxSessionMemoryMiB: 10,
  maxHeaderListBytes: 16_384,
  fastPaths: true,
  clientTokens: undefined,
  health: true,
  reflection: true,
});

/** The defaults of {@link AdminOptions} (the port has none). */
export const ADMIN_DEFAULTS = Object.freeze({
  host: "127.0.0.1",
  statusPage: true,
  lookupTimeoutMs: 2_000,
});

/** The default of {@link ConnectPoolOptions.maxLoadsInFlight}. */
export const DEFAULT_MAX_LOADS_IN_FLIGHT = 256;
/** The default of {@link ConnectPoolOptions.maxLoadsQueued}. */
export const DEFAULT_MAX_LOADS_QUEUED = 4_096;
/** The default of {@link ConnectPoolOptions.replicas}. */
export const DEFAULT_REPLICAS = 2;
/** The default of {@link PeerOptions.timeoutMs}. */
export const DEFAULT_PEER_TIMEOUT_MS = 1_000;

/** Where each option of the flat 0.1 layout moved (a JavaScript caller may still pass one). */
const MOVED: Readonly<Record<string, string>> = {
  peerTimeoutMs: "peer.timeoutMs",
  breaker: "peer.breaker",
  peerSecret: "peer.secrets",
  ...Object.fromEntries(Object.keys(SERVER_DEFAULTS).map((name) => [name, `server.${name}`])),
};
const TOP_LEVEL = new Set([
  "replicas",
  "virtualNodes",
  "peer",
  "server",
  "tls",
  "admin",
  "maxLoadsInFlight",
  "maxLoadsQueued",
]);
const ADMIN_KEYS = new Set(["host", "port", "statusPage", "lookupTimeoutMs"]);
const PEER_KEYS = new Set(["timeoutMs", "breaker", "secrets", "insecure"]);
const TLS_KEYS = new Set(["cert", "key", "ca"]);
const CLIENT_TOKEN_KEYS = new Set(["write", "read"]);

/**
 * `options` with every default applied, checked.
 * @throws TypeError for an option this version does not know (naming where a
 *   0.1 option moved); RangeError for a limit or replica count that is not an
 *   integer >= 0, or a peer timeout that is not > 0, a peer secret shorter
 *   than 16 characters or more than 4 of them, an empty client token.
 */
export function resolveOptions(options: ConnectPoolOptions = {}): ResolvedOptions {
  for (const name of Object.keys(options)) {
    if (TOP_LEVEL.has(name)) continue;
    const moved = MOVED[name];
    throw new TypeError(
      moved === undefined
        ? `unknown ConnectPool option "${name}"`
        : `ConnectPool option "${name}" is now "${moved}"`,
    );
  }
  for (const name of Object.keys(options.peer ?? {})) {
    if (!PEER_KEYS.has(name)) throw new TypeError(`unknown ConnectPool option "peer.${name}"`);
  }
  for (const name of Object.keys(options.server ?? {})) {
    if (!(name in SERVER_DEFAULTS)) {
      throw new TypeError(`unknown ConnectPool option "server.${name}"`);
    }
  }
  for (const name of Object.keys(options.tls ?? {})) {
    if (!TLS_KEYS.has(name)) throw new TypeError(`unknown ConnectPool option "tls.${name}"`);
  }
  const server = {
    ...SERVER_DEFAULTS,
    ...withoutUndefined(options.server ?? {}),
    clientTokens: resolveClientTokens(options.server?.clientTokens),
  };
  for (const [name, value] of Object.entries(server)) {
    if (typeof value === "number") nonNegativeInteger(`server.${name}`, value);
  }
  const replicas = nonNegativeInteger("replicas", options.replicas ?? DEFAULT_REPLICAS);
  const timeoutMs = options.peer?.timeoutMs ?? DEFAULT_PEER_TIMEOUT_MS;
  if (!(timeoutMs > 0) || !Number.isFinite(timeoutMs)) {
    throw new RangeError(`peer.timeoutMs must be a number > 0, got ${timeoutMs}`);
  }
  const secrets = stringList("peer.secrets", options.peer?.secrets);
  if (secrets.length > MAX_PEER_SECRETS) {
    throw new RangeError(
      `peer.secrets holds ${secrets.length} secrets; at most ${MAX_PEER_SECRETS}`,
    );
  }
  for (const [i, secret] of secrets.entries()) {
    if (secret.length < MIN_PEER_SECRET_LENGTH) {
      throw new RangeError(
        `peer.secrets[${i}] is ${secret.length} characters; a secret needs at least ${MIN_PEER_SECRET_LENGTH}`,
      );
    }
  }
  const insecure = options.peer?.insecure ?? false;
  if (typeof insecure !== "boolean") throw new TypeError("peer.insecure must be a boolean");
  const tls = options.tls;
  if (tls !== undefined && (tls.cert === undefined || tls.key === undefined)) {
    throw new TypeError("tls needs both cert and key");
  }
  return {
    replicas,
    maxLoadsInFlight: nonNegativeInteger(
      "maxLoadsInFlight",
      options.maxLoadsInFlight ?? DEFAULT_MAX_LOADS_IN_FLIGHT,
    ),
    maxLoadsQueued: nonNegativeInteger(
      "maxLoadsQueued",
      options.maxLoadsQueued ?? DEFAULT_MAX_LOADS_QUEUED,
    ),
    virtualNodes: options.virtualNodes,
    peer: { timeoutMs, breaker: options.peer?.breaker, secrets, insecure },
    server,
    tls,
    admin: options.admin === undefined ? undefined : resolveAdmin(options.admin),
  };
}

function resolveClientTokens(
  tokens: ClientTokenOptions | undefined,
): ResolvedClientTokens | undefined {
  if (tokens === undefined) return undefined;
  for (const name of Object.keys(tokens)) {
    if (!CLIENT_TOKEN_KEYS.has(name)) {
      throw new TypeError(`unknown ConnectPool option "server.clientTokens.${name}"`);
    }
  }
  const write = stringList("server.clientTokens.write", tokens.write);
  const read = stringList("server.clientTokens.read", tokens.read);
  for (const token of [...write, ...read]) {
    if (token === "" || /\s/.test(token)) {
      throw new RangeError("a client token must be non-empty and hold no whitespace");
    }
  }
  return { write, read };
}

/** A list of strings option (absent: empty). */
function stringList(name: string, list: readonly string[] | undefined): readonly string[] {
  if (list === undefined) return [];
  if (!Array.isArray(list) || list.some((item) => typeof item !== "string")) {
    throw new TypeError(`${name} must be an array of strings`);
  }
  return Object.freeze([...list]);
}

function resolveAdmin(options: AdminOptions): ResolvedAdminOptions {
  for (const name of Object.keys(options)) {
    if (!ADMIN_KEYS.has(name)) throw new TypeError(`unknown ConnectPool option "admin.${name}"`);
  }
  const admin: ResolvedAdminOptions = {
    ...ADMIN_DEFAULTS,
    ...withoutUndefined(options),
    port: options.port,
  };
  if (!Number.isInteger(admin.port) || admin.port < 0 || admin.port > 65_535) {
    throw new RangeError(`admin.port must be an integer from 0 to 65535, got ${admin.port}`);
  }
  if (typeof admin.host !== "string" || admin.host.length === 0) {
    throw new TypeError("admin.host must be a non-empty string");
  }
  if (!(admin.lookupTimeoutMs > 0) || !Number.isFinite(admin.lookupTimeoutMs)) {
    throw new RangeError(
      `admin.lookupTimeoutMs must be a number > 0, got ${admin.lookupTimeoutMs}`,
    );
  }
  return admin;
}

function nonNegativeInteger(name: string, value: number): number {
  if (!Number.isInteger(value) || value < 0) {
    throw new RangeError(`${name} must be an integer >= 0, got ${value}`);
  }
  return value;
}

function withoutUndefined<T extends object>(options: T): Partial<T> {
  return Object.fromEntries(
    Object.entries(options).filter(([, v]) => v !== undefined),
  ) as Partial<T>;
}
