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
import { ConnectPeerClient, makeSender } from "./peer-client.js";
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

  /** A snapshot of this pool's counters and membership. */
  stats(): PoolStats {
    return {
      received: { ...this.received },
      members: this.ring.members(),
      membershipVersion: this.version,
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
    const handler = connectNodeAdapter({
      routes: (router) => {
        registerCacheService(router, this);
        registerPeerService(router, this);
      },
      // The largest value plus room for the key and framing.
      readMaxBytes: this.limits.maxValueBytes + this.limits.maxKeyBytes + 1_024,
    });
    const server = http2.createServer({}, handler);
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
