// A node's server (h2c, or TLS with HTTP/1.1 beside HTTP/2): the Connect
// adapter for both services, the stream listener in front of it (admission,
// authentication, then the fast paths), listening, and the session tracking
// that lets close() drain calls in flight.
import * as http2 from "node:http2";
import type { AddressInfo } from "node:net";
import type { ConnectRouter } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import type { ResolvedServerOptions, TlsOptions } from "../options.js";
import { AuthGate, type Http1Response } from "./auth-gate.js";
import { registerCacheService } from "./cache-service.js";
import { ClientTokens } from "./client-tokens.js";
import { createExchangeFastPath, type ExchangeStream } from "./fast-path/exchange.js";
import type { FastPath } from "./fast-path/fast-path.js";
import { createFetchManyFastPath } from "./fast-path/fetch-many.js";
import { createGetFastPath } from "./fast-path/get.js";
import { createStoreManyFastPath } from "./fast-path/store-many.js";
import {
  answerUnknownRoute,
  ServerGuard,
  type ServerGuardStats,
  strictJsonOptions,
} from "./guard.js";
import {
  noPeerRequests,
  type PeerRequestCounts,
  type ServiceContext,
  type ServiceHost,
} from "./host.js";
import { type AuthCounters, type AuthStats, noAuthCounts, PeerIdentity } from "./peer-identity.js";
import { registerPeerService } from "./peer-service.js";

/** How a server authenticates calls and encrypts its port. */
export interface ServerSecurity {
  /** The peer secrets (options.ts, `peer.secrets`); empty: none. */
  readonly secrets: readonly string[];
  /** TLS for the port; with `ca`, peer calls need a client certificate (options.ts, `tls`). */
  readonly tls: TlsOptions | undefined;
}

const NO_SECURITY: ServerSecurity = { secrets: [], tls: undefined };

/**
 * The server of one node: `distcache.CacheService` and
 * `distcache.peer.v1.PeerService` over gRPC, gRPC-Web and Connect on one h2c
 * port. Every stream passes admission control (guard.ts) first; with
 * `fastPaths`, Get (gRPC, gRPC-Web and Connect; fast-path/get-protocols.ts)
 * and plain gRPC FetchMany and StoreMany are then served by the fast paths,
 * and everything else by Connect.
 */
export class NodeServer {
  /** Peer requests this server has served, by method. */
  readonly received: PeerRequestCounts = noPeerRequests();
  private readonly services: ServiceContext;
  private readonly guard: ServerGuard;
  private readonly authCounts: AuthCounters = noAuthCounts();
  private readonly identity: PeerIdentity;
  private readonly gate: AuthGate;
  private server: http2.Http2Server | undefined;
  /** The pending listen of `server`, while there is one. */
  private starting: Promise<void> | undefined;
  private readonly sessions = new Set<http2.ServerHttp2Session>();
  /** Peers' Exchange streams open now (fast-path/exchange.ts). */
  private readonly exchanges = new Set<ExchangeStream>();

  /**
   * Peer requests are only served from the members given to
   * {@link setMembers} (none until then).
   * @param moreRoutes registers further services (health, reflection) beside the two of the cache.
   * @throws RangeError for a guard limit that is not an integer in range (see guard.ts).
   */
  constructor(
    host: ServiceHost,
    private readonly options: ResolvedServerOptions,
    private readonly security: ServerSecurity = NO_SECURITY,
    private readonly moreRoutes?: (router: ConnectRouter) => void,
  ) {
    this.guard = new ServerGuard(options, options.maxValueBytes + options.maxKeyBytes + 1_024);
    const mtls = security.tls?.ca !== undefined;
    this.identity = new PeerIdentity(security.secrets, mtls, this.authCounts);
    const clients =
      options.clientTokens === undefined
        ? undefined
        : new ClientTokens(options.clientTokens, this.authCounts);
    this.gate = new AuthGate(this.identity, clients);
    this.services = {
      host,
      limits: options,
      received: this.received,
      identity: this.identity,
      admission: this.guard,
    };
  }

  /** The members (this node included) whose peer requests are served. */
  setMembers(members: Iterable<string>): void {
    this.identity.setMembers(members);
  }

  /** Replaces the accepted peer secrets (see PeerIdentity.setSecrets). */
  setSecrets(secrets: readonly string[]): void {
    this.identity.setSecrets(secrets);
    // A long-lived stream was authenticated once, when it opened: one whose
    // credentials the new secrets no longer accept ends now (its caller opens
    // a new one with its current credentials).
    for (const exchange of [...this.exchanges]) {
      const refusal = this.gate.peerRefusal(exchange.headers, exchange.session);
      if (refusal !== undefined) exchange.fail(refusal[0], refusal[1]);
    }
  }

  /** Calls refused for want of credentials or permission. */
  authStats(): AuthStats {
    return { ...this.authCounts };
  }

  /**
   * Listens on `host:port` (port `0` picks a free one; see
   * {@link NodeServer.address}); resolves once listening.
   * @throws Error "already serving" while listening or starting to (it may
   *   listen again after {@link NodeServer.close}); the listen error (e.g.
   *   EADDRINUSE), after which it is not serving.
   */
  async listen(host: string, port: number): Promise<void> {
    if (this.server !== undefined) throw new Error("already serving");
    const server = this.createServer();
    // Taken before the first await: a second listen, or a close, sees it at once.
    this.server = server;
    const listening = new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(port, host, () => {
        server.off("error", reject);
        resolve();
      });
    });
    this.starting = listening;
    try {
      await listening;
    } catch (error) {
      if (this.server === server) this.server = undefined;
      throw error;
    } finally {
      if (this.starting === listening) this.starting = undefined;
    }
  }

  /** The address the server is bound to, while listening. */
  get address(): { host: string; port: number } | undefined {
    const bound = this.server?.address() as AddressInfo | null | undefined;
    return bound ? { host: bound.address, port: bound.port } : undefined;
  }

  /** The guard's counters: requests in flight, what it shed or refused, sessions. */
  stats(): ServerGuardStats {
    return this.guard.stats();
  }

  /**
   * Stops accepting connections and sends every session GOAWAY, so calls in
   * flight finish; after `drainTimeoutMs` the sessions still open are
   * destroyed. Resolves once the server has closed.
   */
  async close(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    if (server === undefined) return;
    // A close while listen is pending closes what that listen opens.
    await this.starting?.catch(() => {});
    if (!server.listening) return;
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    // Peers' Exchange streams take no new calls and end once theirs have answered.
    for (const exchange of this.exchanges) exchange.drain();
    // GOAWAY: clients open no new streams; streams in flight complete.
    for (const session of this.sessions) session.close();
    const timer = setTimeout(() => {
      for (const session of this.sessions) session.destroy();
    }, this.options.drainTimeoutMs);
    await closed;
    clearTimeout(timer);
  }

  private createServer(): http2.Http2Server {
    const services = this.services;
    const { maxValueBytes, maxKeyBytes, fastPaths } = this.options;
    // The largest value plus room for the key and framing.
    const readMaxBytes = maxValueBytes + maxKeyBytes + 1_024;
    const handler = connectNodeAdapter({
      routes: (router) => {
        registerCacheService(router, services);
        registerPeerService(router, services);
        this.moreRoutes?.(router);
      },
      readMaxBytes,
      jsonOptions: strictJsonOptions,
      fallback: answerUnknownRoute,
    });
    const guard = this.guard;
    const gate = this.gate;
    const tls = this.security.tls;
    let server: http2.Http2Server;
    if (tls === undefined) {
      server = http2.createServer(guard.serverOptions(), handler);
    } else {
      // HTTP/1.1 requests (gRPC-Web, Connect) reach the handler directly, not
      // as streams: the gate checks them there.
      const checked: typeof handler = (request, response) => {
        if (
          !("stream" in request) &&
          gate.active &&
          gate.refuseHttp1(request, response as Http1Response)
        )
          return;
        handler(request, response);
      };
      const secure = http2.createSecureServer(
        {
          ...guard.serverOptions(),
          cert: tls.cert,
          key: tls.key,
          allowHTTP1: true,
          // With a CA, every caller is asked for a certificate; one without
          // is let through the handshake (clients need none) and peer calls
          // check it (peer-identity.ts).
          ...(tls.ca === undefined
            ? {}
            : { ca: tls.ca, requestCert: true, rejectUnauthorized: false }),
        },
        checked,
      );
      server = secure as unknown as http2.Http2Server;
    }
    guard.attach(server);
    // Admission runs first for every stream: a shed one is answered at once,
    // its body unread, and neither a fast path nor Connect sees it. Then
    // authentication, unless nothing needs it; a Get that needs no token
    // takes its fast path before the gate ever looks at it.
    const admit: FastPath = (stream, headers) => !guard.admit(stream, headers);
    const refuse: FastPath | undefined = gate.active ? gate.refuse : undefined;
    let intercept: FastPath =
      refuse === undefined
        ? admit
        : (stream, headers) => admit(stream, headers) || refuse(stream, headers);
    if (fastPaths) {
      const get = createGetFastPath(services, { readMaxBytes });
      const fetchManyOnly = createFetchManyFastPath(services, { readMaxBytes });
      const storeMany = createStoreManyFastPath(services, { readMaxBytes });
      const exchange = createExchangeFastPath(
        services,
        { readMaxBytes },
        {
          keepOpen: (stream) => guard.keepOpen(stream),
          open: this.exchanges,
          idleMs: this.options.idleSessionTimeoutMs,
        },
      );
      // The peer fast paths: FetchMany, then StoreMany (replication pushes),
      // then Exchange (a peer's long-lived stream of both).
      const fetchMany: FastPath = (stream, headers) =>
        fetchManyOnly(stream, headers) || storeMany(stream, headers) || exchange(stream, headers);
      if (refuse === undefined) {
        intercept = (stream, headers) =>
          !guard.admit(stream, headers) || get(stream, headers) || fetchMany(stream, headers);
      } else if (gate.guardsReads) {
        intercept = (stream, headers) =>
          !guard.admit(stream, headers) ||
          refuse(stream, headers) ||
          get(stream, headers) ||
          fetchMany(stream, headers);
      } else {
        intercept = (stream, headers) =>
          !guard.admit(stream, headers) ||
          get(stream, headers) ||
          refuse(stream, headers) ||
          fetchMany(stream, headers);
      }
    }
    // What no fast path took goes to Connect, its large writes counted
    // against the byte budget as they are made.
    const served = intercept;
    interceptStreams(server, (stream, headers) => {
      if (served(stream, headers)) return true;
      guard.countWrites(stream);
      return false;
    });
    server.on("session", (session) => {
      this.sessions.add(session);
      session.once("close", () => this.sessions.delete(session));
    });
    return server;
  }
}

/**
 * Puts `intercept` in front of the Connect adapter on `server`: a stream it
 * answers (returning `true`) never reaches Connect.
 *
 * `server` must have been made with a request listener
 * (`http2.createServer(options, connectAdapter)`): Node serves the
 * compatibility API from a `stream` listener that it adds with the first
 * `request` listener. That listener (and any other `stream` listener) now
 * runs only for the streams `intercept` declines, so a stream it serves never
 * gets an `Http2ServerRequest`/`Http2ServerResponse` pair, which is costly to
 * make (docs/benchmarks.md).
 *
 * @throws Error when `server` has no request listener or no `stream`
 *   listener to put `intercept` in front of (then Node no longer dispatches
 *   requests the way this relies on, and serving both would answer twice).
 */
export function interceptStreams(server: http2.Http2Server, intercept: FastPath): void {
  const dispatch = server.listeners("stream") as ((...args: unknown[]) => void)[];
  if (server.listenerCount("request") === 0 || dispatch.length === 0) {
    throw new Error(
      "interceptStreams: the server has no request listener dispatched from a 'stream' listener",
    );
  }
  server.removeAllListeners("stream");
  server.on(
    "stream",
    function (
      this: http2.Http2Server,
      stream: http2.ServerHttp2Stream,
      headers: http2.IncomingHttpHeaders,
      flags: number,
      rawHeaders: string[],
    ) {
      if (intercept(stream, headers)) return;
      for (const listener of dispatch) listener.call(this, stream, headers, flags, rawHeaders);
    },
  );
}
