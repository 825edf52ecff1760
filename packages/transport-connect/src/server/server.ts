// A node's h2c server: the Connect adapter for both services, the stream
// listener in front of it (admission, then the fast paths), listening, and
// the session tracking that lets close() drain calls in flight.
import * as http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import type { ResolvedServerOptions } from "../options.js";
import { registerCacheService } from "./cache-service.js";
import type { FastPath } from "./fast-path/fast-path.js";
import { createFetchManyFastPath } from "./fast-path/fetch-many.js";
import { createGetFastPath } from "./fast-path/get.js";
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
import { registerPeerService } from "./peer-service.js";

/**
 * The server of one node: `distcache.CacheService` and
 * `distcache.peer.v1.PeerService` over gRPC, gRPC-Web and Connect on one h2c
 * port. Every stream passes admission control (guard.ts) first; with
 * `fastPaths`, plain gRPC Get and FetchMany are then served by the fast
 * paths, and everything else by Connect.
 */
export class NodeServer {
  /** Peer requests this server has served, by method. */
  readonly received: PeerRequestCounts = noPeerRequests();
  private readonly services: ServiceContext;
  private readonly guard: ServerGuard;
  private server: http2.Http2Server | undefined;
  /** The pending listen of `server`, while there is one. */
  private starting: Promise<void> | undefined;
  private readonly sessions = new Set<http2.ServerHttp2Session>();

  /** @throws RangeError for a guard limit that is not an integer in range (see guard.ts). */
  constructor(
    host: ServiceHost,
    private readonly options: ResolvedServerOptions,
  ) {
    this.guard = new ServerGuard(options, options.maxValueBytes + options.maxKeyBytes + 1_024);
    this.services = { host, limits: options, received: this.received, admission: this.guard };
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
      },
      readMaxBytes,
      jsonOptions: strictJsonOptions,
      fallback: answerUnknownRoute,
    });
    const guard = this.guard;
    const server = http2.createServer(guard.serverOptions(), handler);
    guard.attach(server);
    // Admission runs first for every stream: a shed one is answered at once,
    // its body unread, and neither a fast path nor Connect sees it.
    let intercept: FastPath = (stream, headers) => !guard.admit(stream, headers);
    if (fastPaths) {
      const get = createGetFastPath(services, { readMaxBytes });
      const fetchMany = createFetchManyFastPath(services, { readMaxBytes });
      intercept = (stream, headers) =>
        !guard.admit(stream, headers) || get(stream, headers) || fetchMany(stream, headers);
    }
    interceptStreams(server, intercept);
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
