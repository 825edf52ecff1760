import * as http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import {
  type Group,
  getGroup,
  type PeerClient,
  type PeerPicker,
  type Placement,
} from "@distcache/core";
import { HashRing } from "@distcache/hashring";
import { membershipVersion, parseAddress } from "./address.js";
import type { BreakerState, CircuitBreakerOptions } from "./circuit-breaker.js";
import { createFetchManyFastPath } from "./fetch-many-fast-path.js";
import { createGrpcFastPath, installGrpcFastPath } from "./grpc-fast-path.js";
import { ConnectPeerClient, makeSender } from "./peer-client.js";
import {
  answerUnknownRoute,
  ServerGuard,
  type ServerGuardStats,
  strictJsonOptions,
} from "./server-guard.js";
import {
  type PeerRequestCounts,
  registerCacheService,
  registerPeerService,
  type ServiceHost,
  type ServiceLimits,
} from "./services.js";

/** Options for {@link ConnectPool}. */
export interface ConnectPoolOptions {
  /** Copies of each value kept after its owner's, on the next distinct members clockwise. Default `2`. */
  replicas?: number;
  /** Virtual nodes per member on the hash ring. Default: `@distcache/hashring`'s. */
  virtualNodes?: number;
  /**
   * Milliseconds each peer call may take (owner fetch, replica read, push,
   * invalidation) before the next source is tried. Default `1_000`. A getter
   * slower than this on the owner makes the asking node fall back to replicas
   * and then its own getter.
   */
  peerTimeoutMs?: number;
  /**
   * The circuit breaker kept per peer: after `failureThreshold` (default 3)
   * failed calls in a row (refused, reset, timed out) the peer is skipped —
   * calls to it fail at once and reads go to the replicas — for a backoff
   * from `baseBackoffMs` (250) doubling to `maxBackoffMs` (10 000), then one
   * probe call decides whether it is back.
   */
  breaker?: CircuitBreakerOptions;
  /**
   * Whether clients may call `CacheService.Set`. Default `true`, as in the
   * reference. Set writes into the cache without the getter, so anyone who can
   * reach the port can change what every client reads: turn it off unless the
   * port is reachable by trusted clients only. Turning it off does not close
   * the door: peer calls (`PeerService.Store`, `Invalidate`) share the port and
   * are not authenticated yet, so the port must only be reachable from trusted
   * hosts until authenticated peer calls arrive.
   */
  allowClientSet?: boolean;
  /** Longest key in UTF-8 bytes accepted over the wire. Default `1_024`. */
  maxKeyBytes?: number;
  /** Largest value accepted by Set and replication. Default `1 MiB`. */
  maxValueBytes?: number;
  /** Milliseconds `close()` waits for calls in flight before cutting sessions. Default `5_000`. */
  drainTimeoutMs?: number;
  /**
   * Requests this node serves at once (all sessions, client and peer calls);
   * one more is answered RESOURCE_EXHAUSTED at once, its body unread. Default
   * `4_096`: a stuck Get costs ~40 KiB of heap (~60 KiB RSS), so the default
   * bounds stuck work near 250 MiB, while at ~10 ms per request it allows
   * ~400k requests/s — far past one process, so only stuck work reaches it.
   * `0` turns the limit off.
   */
  maxRequestsInFlight?: number;
  /**
   * Event-loop delay (ms) past which new requests are answered UNAVAILABLE
   * until the loop catches up; only delay this process spent on the CPU
   * counts, not time the OS did not run it. Default `1_000`, the default
   * `peerTimeoutMs`: past it, callers time out anyway, so an UNAVAILABLE at
   * once sends a peer to a replica without the wait. Lower is possible (a
   * saturated node's p99 delay measured 30–90 ms) but a burst of thousands of
   * requests in one loop turn measured ~470 ms without a real overload.
   * `0` turns the probe off.
   */
  maxEventLoopDelayMs?: number;
  /**
   * Open TCP connections; a connection past this is closed on accept.
   * Default `4_096`: an idle session costs ~10 KiB, and a cluster of hundreds
   * of members plus clients fits. Keep it under `ulimit -n`. `0`: no limit.
   */
  maxConnections?: number;
  /**
   * Streams one HTTP/2 session may have open at once (advertised in SETTINGS;
   * a client queues past it, a stream past it is refused). Default `1_000`:
   * Node's default is unbounded; 1 000 is ample for multiplexing and bounds
   * what one connection can pin.
   */
  maxConcurrentStreams?: number;
  /**
   * A session with no open stream for this long (ms) is sent GOAWAY; clients
   * reconnect on their next call. Default `600_000` (10 min): above the peer
   * clients' own 5-minute idle close, so peers close their sessions first.
   * `0`: never.
   */
  idleSessionTimeoutMs?: number;
  /**
   * A request whose body has not fully arrived this long (ms) after its
   * headers is reset (CANCEL), so a stalled or truncated upload cannot hold a
   * slot for ever. Default `10_000`: a whole max-size message at 100 KiB/s.
   * `0`: never.
   */
  requestReceiveTimeoutMs?: number;
  /**
   * Node's memory credit per HTTP/2 session, in MiB (header tables, queued
   * frames, unread data); past it new streams on that session are refused.
   * Default `10` (Node's).
   */
  maxSessionMemoryMiB?: number;
  /**
   * Largest request header list (bytes, HTTP/2 SETTINGS_MAX_HEADER_LIST_SIZE);
   * a larger one resets the stream. Default `16_384`: twice gRPC's usual
   * 8 KiB metadata limit — keys travel in the body, not in headers.
   */
  maxHeaderListBytes?: number;
}

/** Counters of one pool; see {@link ConnectPool.stats}. */
export interface PoolStats {
  /** Peer requests this node has served, by method. */
  readonly received: Readonly<PeerRequestCounts>;
  /** Members, this node included. */
  readonly members: readonly string[];
  /** This node's membership version (FNV-1a 64 of the sorted members). */
  readonly membershipVersion: bigint;
  /** Each peer's circuit breaker. */
  readonly peers: readonly PeerHealth[];
  /** What the server shed or refused: requests in flight, overload answers, connections. */
  readonly guard: ServerGuardStats;
}

/** How this node sees one peer; see {@link PoolStats.peers}. */
export interface PeerHealth {
  readonly address: string;
  /** `open`: calls are refused without trying; `half-open`: the next call is a probe. */
  readonly breaker: BreakerState;
  /** Times the breaker opened. */
  readonly opened: number;
  /** Calls refused without trying while it was open. */
  readonly refused: number;
}

const DEFAULTS = {
  replicas: 2,
  peerTimeoutMs: 1_000,
  allowClientSet: true,
  maxKeyBytes: 1_024,
  maxValueBytes: 1 << 20,
  drainTimeoutMs: 5_000,
  maxRequestsInFlight: 4_096,
  maxEventLoopDelayMs: 1_000,
  maxConnections: 4_096,
  maxConcurrentStreams: 1_000,
  idleSessionTimeoutMs: 600_000,
  requestReceiveTimeoutMs: 10_000,
  maxSessionMemoryMiB: 10,
  maxHeaderListBytes: 16_384,
};

/**
 * A node's view of the cluster and its server. It places keys on a
 * consistent-hash ring of the members, keeps one HTTP/2 session per peer, and
 * serves the client-facing `distcache.CacheService` and the node-to-node
 * `distcache.peer.v1.PeerService` — gRPC, gRPC-Web and Connect — on one h2c
 * port.
 *
 * ```ts
 * const pool = new ConnectPool("127.0.0.1:8001");
 * pool.setPeers("127.0.0.1:8001", "127.0.0.1:8002", "127.0.0.1:8003");
 * group.registerPeers(pool);
 * await pool.serve();
 * ```
 */
export class ConnectPool implements PeerPicker, ServiceHost {
  /** This node's member address, as the other members name it. */
  readonly self: string;
  readonly limits: ServiceLimits;
  readonly received: PeerRequestCounts = {
    fetch: 0,
    fetchMany: 0,
    fetchManyKeys: 0,
    storeMany: 0,
    storeManyItems: 0,
    store: 0,
    invalidate: 0,
    membershipMismatches: 0,
  };
  private readonly replicas: number;
  private readonly peerTimeoutMs: number;
  private readonly breakerOptions: CircuitBreakerOptions | undefined;
  private readonly drainTimeoutMs: number;
  private readonly ring: HashRing;
  private readonly peers = new Map<string, ConnectPeerClient>();
  private peerList: readonly ConnectPeerClient[] = [];
  private version = 0n;
  private server: http2.Http2Server | undefined;
  private readonly sessions = new Set<http2.ServerHttp2Session>();
  private readonly groups = new Map<string, Group>();
  private readonly guard: ServerGuard;

  constructor(self: string, options: ConnectPoolOptions = {}) {
    parseAddress(self);
    const settings = { ...DEFAULTS, ...withoutUndefined(options) };
    if (!Number.isInteger(settings.replicas) || settings.replicas < 0) {
      throw new RangeError(`replicas must be an integer >= 0, got ${settings.replicas}`);
    }
    this.self = self;
    this.replicas = settings.replicas;
    this.peerTimeoutMs = settings.peerTimeoutMs;
    this.breakerOptions = options.breaker;
    this.drainTimeoutMs = settings.drainTimeoutMs;
    this.guard = new ServerGuard(settings);
    this.limits = {
      maxKeyBytes: settings.maxKeyBytes,
      maxValueBytes: settings.maxValueBytes,
      allowClientSet: settings.allowClientSet,
    };
    this.ring = new HashRing(
      options.virtualNodes === undefined ? {} : { replicas: options.virtualNodes },
    );
    this.setPeers(self);
  }

  /**
   * Replaces the membership. This node is always a member, whether or not the
   * list names it. Sessions to removed peers are closed; new peers are
   * connected on first use.
   */
  setPeers(...addresses: string[]): void {
    const members = new Set([this.self]);
    for (const address of addresses) {
      parseAddress(address);
      members.add(address);
    }
    for (const [address, client] of this.peers) {
      if (!members.has(address)) {
        client.close();
        this.peers.delete(address);
      }
    }
    const context = {
      sender: () => makeSender(this.self, this.version),
      timeoutMs: this.peerTimeoutMs,
      breaker: this.breakerOptions,
    };
    for (const address of members) {
      if (address !== this.self && !this.peers.has(address)) {
        this.peers.set(address, new ConnectPeerClient(address, context));
      }
    }
    this.ring.set(members);
    this.peerList = [...this.peers.values()];
    this.version = membershipVersion([...members]);
  }

  /** Where `key` lives on the ring: its owner, then `replicas` distinct members clockwise. */
  placement(key: string): Placement {
    const [owner, ...rest] = this.ring.successors(key, 1 + this.replicas);
    const replicas: PeerClient[] = [];
    let selfIsReplica = false;
    for (const address of rest) {
      if (address === this.self) selfIsReplica = true;
      else replicas.push(this.peers.get(address)!);
    }
    return {
      owner: owner === this.self || owner === undefined ? undefined : this.peers.get(owner),
      replicas,
      selfIsReplica,
    };
  }

  /** Every member but this node. */
  others(): readonly PeerClient[] {
    return this.peerList;
  }

  /** The member that owns `key`. */
  ownerOf(key: string): string {
    return this.ring.ownerOf(key)!;
  }

  /** Serves `group` (called by `group.registerPeers(pool)`). */
  attach(group: Group): void {
    this.groups.set(group.name, group);
  }

  /** The group named `name`: one registered with this pool, else the process-wide registry's. */
  group(name: string): Group | undefined {
    return this.groups.get(name) ?? getGroup(name);
  }

  membershipVersion(): bigint {
    return this.version;
  }

  /** A peer request from `address` arrived: its peer client counts it as progress. */
  heardFrom(address: string): void {
    this.peers.get(address)?.heard();
  }

  /** A snapshot of this pool's counters and membership. */
  stats(): PoolStats {
    return {
      received: { ...this.received },
      members: this.ring.members(),
      membershipVersion: this.version,
      guard: this.guard.stats(),
      peers: this.peerList.map((peer) => ({
        address: peer.id,
        breaker: peer.breaker.state,
        opened: peer.breaker.opened,
        refused: peer.breaker.refused,
      })),
    };
  }

  /**
   * Listens on `address` (default: this node's own) for gRPC, gRPC-Web and
   * Connect over h2c. Resolves once listening. Port `0` picks a free port;
   * see {@link ConnectPool.address}.
   */
  async serve(address: string = this.self): Promise<void> {
    if (this.server !== undefined) throw new Error("already serving");
    const { host, port } = parseAddress(address);
    // The largest value plus room for the key and framing.
    const readMaxBytes = this.limits.maxValueBytes + this.limits.maxKeyBytes + 1_024;
    const handler = connectNodeAdapter({
      routes: (router) => {
        registerCacheService(router, this);
        registerPeerService(router, this);
      },
      readMaxBytes,
      jsonOptions: strictJsonOptions,
      fallback: answerUnknownRoute,
    });
    const guard = this.guard;
    const server = http2.createServer(guard.serverOptions(), handler);
    guard.attach(server);
    // gRPC CacheService/Get is answered from the stream; everything else reaches `handler`.
    const fastPath = createGrpcFastPath(this, { readMaxBytes });
    // gRPC PeerService/FetchMany (forwarded Gets, batched) likewise.
    const fetchManyPath = createFetchManyFastPath(this, { readMaxBytes });
    // Admission runs first for every stream: a shed one is answered at once,
    // its body unread, and neither the fast path nor Connect sees it.
    installGrpcFastPath(
      server,
      (stream, headers) =>
        !guard.admit(stream, headers) ||
        fastPath(stream, headers) ||
        fetchManyPath(stream, headers),
    );
    server.on("session", (session) => {
      this.sessions.add(session);
      session.once("close", () => this.sessions.delete(session));
    });
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(port, host, () => {
        server.off("error", reject);
        resolve();
      });
    });
    this.server = server;
  }

  /** The address the server is bound to (after {@link ConnectPool.serve}). */
  get address(): { host: string; port: number } | undefined {
    const bound = this.server?.address() as AddressInfo | null | undefined;
    return bound ? { host: bound.address, port: bound.port } : undefined;
  }

  /**
   * Stops accepting connections, lets calls in flight finish (up to
   * `drainTimeoutMs`), then closes every session, client and peer.
   */
  async close(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    if (server !== undefined) {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      // GOAWAY: clients open no new streams; streams in flight complete.
      for (const session of this.sessions) session.close();
      const timer = setTimeout(() => {
        for (const session of this.sessions) session.destroy();
      }, this.drainTimeoutMs);
      await closed;
      clearTimeout(timer);
    }
    for (const client of this.peers.values()) client.close();
  }
}

function withoutUndefined<T extends object>(options: T): Partial<T> {
  return Object.fromEntries(
    Object.entries(options).filter(([, v]) => v !== undefined),
  ) as Partial<T>;
}
