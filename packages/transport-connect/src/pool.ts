// ConnectPool, the one class applications use to cluster groups: it joins the
// membership (membership.ts), the peer clients (client/) and the node's server
// (server/) behind PeerPicker and serve/close.
import {
  type Group,
  getGroup,
  Incarnation,
  LoadLimiter,
  type PeerClient,
  type PeerPicker,
  type Placement,
} from "@distcache/core";
import type { Registry } from "prom-client";
import { parseAddress } from "./address.js";
import { AdminServer } from "./admin/admin-server.js";
import { type StatusReport, statusReport } from "./admin/status.js";
import { peerCallHeaders } from "./auth/peer-token.js";
import { checkPeerPlane, type PeerPlaneSecurity } from "./auth/secure-default.js";
import { ConnectPeerClient } from "./client/peer-client.js";
import { PoolEmitter, type PoolEvents, type PoolListener, type ShedReason } from "./events.js";
import { file_distcache_cache } from "./gen/distcache/cache_pb.js";
import { file_distcache_peer_v1_peer } from "./gen/distcache/peer/v1/peer_pb.js";
import { file_grpc_health_v1_health } from "./gen/grpc/health/v1/health_pb.js";
import { file_grpc_reflection_v1_reflection } from "./gen/grpc/reflection/v1/reflection_pb.js";
import { file_grpc_reflection_v1alpha_reflection } from "./gen/grpc/reflection/v1alpha/reflection_pb.js";
import { Membership } from "./membership.js";
import { createPoolMetrics, PACKAGE_VERSION } from "./metrics.js";
import { type ConnectPoolOptions, resolveOptions } from "./options.js";
import { makeSender } from "./peer-wire.js";
import type { PoolStats } from "./pool-stats.js";
import type { ServerGuardStats } from "./server/guard.js";
import { HealthState, registerHealthService } from "./server/health.js";
import type { ServiceHost } from "./server/host.js";
import { ReflectionIndex, registerReflectionService } from "./server/reflection.js";
import { NodeServer } from "./server/server.js";

/** The cache's own services, as health and reflection name them. */
const CACHE_SERVICES = ["distcache.CacheService", "distcache.peer.v1.PeerService"];
/** How often the pool looks at the server's shed counters for `shedding` events, in ms. */
const SHEDDING_POLL_MS = 1_000;

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
  private readonly events = new PoolEmitter();
  /** The node's serving status, as health and `/readyz` report it. */
  private readonly health = new HealthState(CACHE_SERVICES);
  private readonly admin: AdminServer | undefined;
  private registry: Registry | undefined;
  /** `setPeers` has been called: the member list is loaded. */
  private membersLoaded = false;
  private lastMembershipVersion: string | undefined;
  private shedding: SheddingWatch | undefined;
  /** The node-wide bound on getter calls, shared by every group attached. */
  private readonly loads: LoadLimiter;

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
    this.loads = new LoadLimiter(resolved.maxLoadsInFlight, resolved.maxLoadsQueued, "node-wide");
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
    this.membership = new Membership(self, resolved.replicas, resolved.virtualNodes, (address) => {
      const client = new ConnectPeerClient(address, context);
      client.breaker.onChange = (state) => this.events.emit("breaker", { peer: address, state });
      return client;
    });
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
    const { health, reflection } = resolved.server;
    const services = [...CACHE_SERVICES];
    if (health) services.push("grpc.health.v1.Health");
    if (reflection)
      services.push(
        "grpc.reflection.v1.ServerReflection",
        "grpc.reflection.v1alpha.ServerReflection",
      );
    const index = reflection
      ? new ReflectionIndex(services, [
          file_distcache_cache,
          file_distcache_peer_v1_peer,
          ...(health ? [file_grpc_health_v1_health] : []),
          file_grpc_reflection_v1_reflection,
          file_grpc_reflection_v1alpha_reflection,
        ])
      : undefined;
    this.server = new NodeServer(host, resolved.server, { secrets, tls }, (router) => {
      if (health) registerHealthService(router, this.health);
      if (index !== undefined) registerReflectionService(router, index);
    });
    this.server.setMembers(this.membership.members());
    if (resolved.admin !== undefined) {
      this.admin = new AdminServer(
        {
          metrics: () => this.metrics,
          ready: () => this.health.phase === "serving",
          status: () => this.status(),
          group: (name) => this.groups.get(name) ?? getGroup(name),
          maxKeyBytes: resolved.server.maxKeyBytes,
        },
        resolved.admin,
      );
    }
  }

  /** Listens to one of the pool's state changes (see {@link PoolEvents}). */
  on<E extends keyof PoolEvents>(event: E, listener: PoolListener<E>): this {
    this.events.on(event, listener);
    return this;
  }

  /** Stops listening (the same function given to {@link on}). */
  off<E extends keyof PoolEvents>(event: E, listener: PoolListener<E>): this {
    this.events.off(event, listener);
    return this;
  }

  /**
   * This pool's prom-client Registry: every `distcache_*` family (read from
   * the counters at scrape time) and prom-client's default process and Node
   * metrics. Served at `/metrics` on the admin port; an application may
   * register its own metrics here too. Made on first use.
   */
  get metrics(): Registry {
    this.registry ??= createPoolMetrics({
      groups: () => this.groups.values(),
      stats: () => this.stats(),
      peerCalls: () =>
        this.membership.others().map((peer) => ({ peer: peer.id, calls: peer.calls })),
    });
    return this.registry;
  }

  /** What `/status.json` on the admin port reports. */
  status(): StatusReport {
    return statusReport({
      self: this.self,
      listening: () => {
        const bound = this.server.address;
        return bound === undefined ? undefined : formatAddress(bound.host, bound.port);
      },
      phase: () => this.health.phase,
      draining: () => this.health.phase === "draining",
      version: PACKAGE_VERSION,
      stats: () => this.stats(),
      groups: () => this.groups.values(),
      peerCalls: (peer) => this.membership.peer(peer)?.calls,
    });
  }

  /** The admin listener's address, once listening (see `admin` in options.ts). */
  get adminAddress(): { host: string; port: number } | undefined {
    return this.admin?.address;
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
    this.membersLoaded = true;
    const version = this.membership.version.toString(16).padStart(16, "0");
    if (version !== this.lastMembershipVersion) {
      this.lastMembershipVersion = version;
      this.events.emit("members", { members: this.membership.members(), version });
    }
    this.updateHealth();
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
      auth: this.server.authStats(),
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
    checkPeerPlane([address], this.security);
    this.health.reopen();
    if (this.admin !== undefined) {
      // Made now rather than at the first scrape, so the process metrics
      // (event-loop lag, GC) cover the node's whole life.
      void this.metrics;
      // The admin port first, so probes answer (not ready) while the node starts.
      await this.admin.listen();
    }
    try {
      await this.server.listen(host, port);
    } catch (error) {
      await this.admin?.close();
      throw error;
    }
    const bound = this.server.address!;
    this.shedding = new SheddingWatch(
      () => this.server.stats(),
      (reason, active) => this.events.emit("shedding", { reason, active }),
    );
    this.events.emit("listening", { address: formatAddress(bound.host, bound.port) });
    this.updateHealth();
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
    // Health and readiness fail first, so balancers and peers stop sending here
    // while calls in flight finish; then GOAWAY, then Watch streams end.
    this.health.set("draining");
    this.events.emit("draining", {});
    const closing = this.server.close();
    this.health.endWatches();
    await closing;
    this.shedding?.stop();
    this.shedding = undefined;
    this.membership.close();
    await this.admin?.close();
    this.events.emit("stopped", {});
  }

  /** SERVING once listening with a member list; `close()` moves it to draining for good. */
  private updateHealth(): void {
    if (
      this.health.phase === "starting" &&
      this.membersLoaded &&
      this.server.address !== undefined
    ) {
      this.health.set("serving");
    }
  }
}

/** `host:port`, with an IPv6 host in brackets. */
function formatAddress(host: string, port: number): string {
  return host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`;
}

/**
 * Turns the server's shed counters into `shedding` events: started when a
 * poll sees a counter grow, stopped after a poll interval with no growth.
 * Polling (1 s) rather than a hook per shed request: an overloaded server
 * does no extra work, and a flood of sheds makes two events, not thousands.
 */
class SheddingWatch {
  private readonly timer: NodeJS.Timeout;
  private readonly last: Record<ShedReason, number>;
  private readonly active: Record<ShedReason, boolean> = {
    "in-flight": false,
    "event-loop-delay": false,
  };

  constructor(
    private readonly read: () => ServerGuardStats,
    private readonly report: (reason: ShedReason, active: boolean) => void,
  ) {
    this.last = this.counts();
    this.timer = setInterval(() => this.poll(), SHEDDING_POLL_MS);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
    this.poll();
    for (const reason of Object.keys(this.active) as ShedReason[]) {
      if (this.active[reason]) {
        this.active[reason] = false;
        this.report(reason, false);
      }
    }
  }

  private counts(): Record<ShedReason, number> {
    const stats = this.read();
    return { "in-flight": stats.shedInFlight, "event-loop-delay": stats.shedEventLoopDelay };
  }

  private poll(): void {
    const now = this.counts();
    for (const reason of Object.keys(now) as ShedReason[]) {
      const growing = now[reason] > this.last[reason];
      if (growing !== this.active[reason]) {
        this.active[reason] = growing;
        this.report(reason, growing);
      }
    }
    Object.assign(this.last, now);
  }
}
