// ConnectPool, the one class applications use to cluster groups: it joins the
// membership (membership.ts), the peer clients (client/) and the node's server
// (server/) behind PeerPicker and serve/close.
import {
  type Group,
  getGroup,
  LoadLimiter,
  type LoadLimiterStats,
  type PeerClient,
  type PeerPicker,
  type Placement,
} from "@distcache/core";
import { parseAddress } from "./address.js";
import type { BreakerState } from "./client/circuit-breaker.js";
import { ConnectPeerClient } from "./client/peer-client.js";
import { Membership } from "./membership.js";
import { type ConnectPoolOptions, resolveOptions } from "./options.js";
import { makeSender } from "./peer-wire.js";
import type { ServerGuardStats } from "./server/guard.js";
import type { PeerRequestCounts, ServiceHost } from "./server/host.js";
import { NodeServer } from "./server/server.js";

/** Counters of one pool; see {@link ConnectPool.stats}. Plain data: `JSON.stringify` takes it. */
export interface PoolStats {
  /** Peer requests this node has served, by method. */
  readonly received: Readonly<PeerRequestCounts>;
  /** Members, this node included. */
  readonly members: readonly string[];
  /** This node's membership version (FNV-1a 64 of the sorted members), 16 hex digits. */
  readonly membershipVersion: string;
  /** Each peer's circuit breaker. */
  readonly peers: readonly PeerHealth[];
  /** What the server shed or refused: requests in flight, overload answers, connections. */
  readonly guard: ServerGuardStats;
  /** The node-wide bound on getter calls (`maxLoadsInFlight`): running, queued, refused. */
  readonly loads: LoadLimiterStats;
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

/**
 * A node's view of the cluster and its server. It places keys on a
 * consistent-hash ring of the members, keeps one HTTP/2 session per peer, and
 * serves the client-facing `distcache.CacheService` and the node-to-node
 * `distcache.peer.v1.PeerService` — gRPC, gRPC-Web and Connect — on one h2c
 * port. Options: see {@link ConnectPoolOptions} (options.ts).
 *
 * ```ts
 * const pool = new ConnectPool("127.0.0.1:8001");
 * pool.setPeers("127.0.0.1:8001", "127.0.0.1:8002", "127.0.0.1:8003");
 * group.registerPeers(pool);
 * await pool.serve();
 * ```
 */
export class ConnectPool implements PeerPicker {
  /** This node's member address, as the other members name it. */
  readonly self: string;
  private readonly membership: Membership<ConnectPeerClient>;
  /** Groups registered with this pool; others are found in core's registry. */
  private readonly groups = new Map<string, Group>();
  private readonly server: NodeServer;
  /** The node-wide bound on getter calls, shared by every group attached. */
  private readonly loads: LoadLimiter;

  constructor(self: string, options: ConnectPoolOptions = {}) {
    parseAddress(self);
    this.self = self;
    const resolved = resolveOptions(options);
    this.loads = new LoadLimiter(resolved.maxLoadsInFlight, resolved.maxLoadsQueued, "node-wide");
    const context = {
      sender: () => makeSender(self, this.membership.version),
      timeoutMs: resolved.peer.timeoutMs,
      breaker: resolved.peer.breaker,
    };
    this.membership = new Membership(
      self,
      resolved.replicas,
      resolved.virtualNodes,
      (address) => new ConnectPeerClient(address, context),
    );
    const host: ServiceHost = {
      membershipVersion: () => this.membership.version,
      group: (name) => this.groups.get(name) ?? getGroup(name),
      heardFrom: (address) => this.membership.peer(address)?.heard(),
    };
    this.server = new NodeServer(host, resolved.server);
  }

  /**
   * Replaces the membership. This node is always a member, whether or not the
   * list names it. Sessions to removed peers are closed; new peers are
   * connected on first use.
   */
  setPeers(...addresses: string[]): void {
    this.membership.set(addresses);
  }

  /** Where `key` lives on the ring: its owner, then `replicas` distinct members clockwise. */
  placement(key: string): Placement {
    return this.membership.placement(key);
  }

  /** Every member but this node. */
  others(): readonly PeerClient[] {
    return this.membership.others();
  }

  /** The member that owns `key`. */
  ownerOf(key: string): string {
    return this.membership.ownerOf(key);
  }

  /** Serves `group` (called by `group.registerPeers(pool)`); its getter calls count against `maxLoadsInFlight`. */
  attach(group: Group): void {
    this.groups.set(group.name, group);
    group.addLoadLimiter(this.loads);
  }

  /** A snapshot of this pool's counters and membership. */
  stats(): PoolStats {
    return {
      received: { ...this.server.received },
      members: this.membership.members(),
      membershipVersion: this.membership.version.toString(16).padStart(16, "0"),
      guard: this.server.stats(),
      loads: this.loads.stats(),
      peers: this.membership.others().map((peer) => ({
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
    const { host, port } = parseAddress(address);
    await this.server.listen(host, port);
  }

  /** The address the server is bound to (after {@link ConnectPool.serve}). */
  get address(): { host: string; port: number } | undefined {
    return this.server.address;
  }

  /**
   * Stops accepting connections, lets calls in flight finish (up to
   * `server.drainTimeoutMs`), then closes every session, client and peer.
   */
  async close(): Promise<void> {
    await this.server.close();
    this.membership.close();
  }
}
