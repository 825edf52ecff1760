// ConnectPool, the one class applications use to cluster groups: it joins the
// membership (membership.ts), the peer clients (client/) and the node's server
// (server/) behind PeerPicker and serve/close.
import {
  type Group,
  getGroup,
  Incarnation,
  type PeerClient,
  type PeerPicker,
  type Placement,
} from "@distcache/core";
import { parseAddress } from "./address.js";
import { peerCallHeaders } from "./auth/peer-token.js";
import { checkPeerPlane, type PeerPlaneSecurity } from "./auth/secure-default.js";
import type { BreakerState } from "./client/circuit-breaker.js";
import { ConnectPeerClient } from "./client/peer-client.js";
import { Membership } from "./membership.js";
import { type ConnectPoolOptions, resolveOptions } from "./options.js";
import { makeSender } from "./peer-wire.js";
import type { ServerGuardStats } from "./server/guard.js";
import type { PeerRequestCounts, ServiceHost } from "./server/host.js";
import type { AuthStats } from "./server/peer-identity.js";
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
  /** Calls refused for want of credentials (UNAUTHENTICATED) or permission (PERMISSION_DENIED). */
  readonly auth: AuthStats;
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
  /** The epoch of every stamp this node's groups send (core's `stamps.ts`). */
  private readonly incarnation = new Incarnation();
  private readonly security: PeerPlaneSecurity;
  /** The credentials every peer call carries; shared with the peer clients, updated in place. */
  private readonly callHeaders: Record<string, string>;

  /**
   * @throws TypeError/RangeError for a bad option (options.ts); Error for a
   *   non-loopback `self` without peer authentication (see `peer.insecure`).
   */
  constructor(self: string, options: ConnectPoolOptions = {}) {
    parseAddress(self);
    this.self = self;
    const resolved = resolveOptions(options);
    const { secrets, insecure } = resolved.peer;
    const tls = resolved.tls;
    this.security = { secrets: secrets.length, mtls: tls?.ca !== undefined, insecure };
    checkPeerPlane([self], this.security);
    this.callHeaders = peerCallHeaders(self, secrets);
    const context = {
      sender: () => makeSender(self, this.membership.version),
      advance: (epoch: number) => {
        this.incarnation.advancePast(epoch);
      },
      timeoutMs: resolved.peer.timeoutMs,
      breaker: resolved.peer.breaker,
      headers: this.callHeaders,
      // With a CA, this node's certificate doubles as its client certificate.
      tls: tls === undefined ? undefined : { ca: tls.ca, cert: tls.cert, key: tls.key },
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
      epochSeen: (address) => {
        let seen = 0;
        for (const group of this.groups.values()) {
          seen = Math.max(seen, group.peerHandler.highestEpoch(address) ?? 0);
        }
        return seen;
      },
    };
    this.server = new NodeServer(host, resolved.server, { secrets, tls });
    this.server.setMembers(this.membership.members());
  }

  /**
   * Replaces the membership. This node is always a member, whether or not the
   * list names it. Sessions to removed peers are closed; new peers are
   * connected on first use. Peer requests are served from these members only.
   * @throws Error for a non-loopback member while the peer plane has no
   *   authentication and `peer.insecure` is not set (the membership is kept).
   */
  setPeers(...addresses: string[]): void {
    checkPeerPlane(addresses, this.security);
    this.membership.set(addresses);
    this.server.setMembers(this.membership.members());
  }

  /**
   * Replaces the peer secrets while the node runs (a rotation step, e.g. on
   * SIGHUP): this node signs with every one of them and accepts any one.
   * Same checks as `peer.secrets` (options.ts).
   * @throws RangeError for a bad secret; Error when the pool was made
   *   without secrets or `secrets` is empty (turning authentication on or
   *   off needs a restart).
   */
  setPeerSecrets(...secrets: string[]): void {
    const resolved = resolveOptions({ peer: { secrets } }).peer.secrets;
    this.server.setSecrets(resolved);
    const headers = peerCallHeaders(this.self, resolved);
    for (const name of Object.keys(this.callHeaders)) delete this.callHeaders[name];
    Object.assign(this.callHeaders, headers);
  }

  /**
   * This node's incarnation: the epoch of its stamps. It starts from a
   * wall-clock guess, moves above what the peers report in {@link serve},
   * and above any later epoch a peer says it has seen from this node.
   */
  epoch(): number {
    return this.incarnation.current;
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

  /** Serves `group` (called by `group.registerPeers(pool)`). */
  attach(group: Group): void {
    this.groups.set(group.name, group);
  }

  /** A snapshot of this pool's counters and membership. */
  stats(): PoolStats {
    return {
      received: { ...this.server.received },
      members: this.membership.members(),
      membershipVersion: this.membership.version.toString(16).padStart(16, "0"),
      guard: this.server.stats(),
      auth: this.server.authStats(),
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
    checkPeerPlane([address], this.security);
    await this.server.listen(host, port);
    await this.introduce();
  }

  /**
   * Asks every peer, at once, for the highest epoch it has seen in this
   * node's stamps, and moves this node's incarnation above the answers, so
   * its writes order after those of its previous process whatever the clock
   * says. A peer that does not answer within the peer timeout is skipped: if
   * it holds a higher epoch, its first answer to a write says so
   * (`ahead`), that write is reported as not acknowledged by it, and the
   * incarnation moves then.
   */
  private async introduce(): Promise<void> {
    await Promise.allSettled(this.membership.others().map((peer) => peer.introduce()));
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
