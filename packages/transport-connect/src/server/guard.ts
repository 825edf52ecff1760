// Admission control and connection limits for a node's h2c server, applied
// before a request's body is read and before any handler (a fast path or
// Connect): an overloaded node answers at once instead of queueing work.
import type * as http2 from "node:http2";
import { constants as h2 } from "node:http2";
import type { Socket } from "node:net";
import { performance } from "node:perf_hooks";
import { Code } from "@connectrpc/connect";
import { codeToHttpStatus, codeToString } from "@connectrpc/connect/protocol-connect";
import type { ConnectNodeAdapterOptions } from "@connectrpc/connect-node";
import { respondWithStatus } from "../grpc/status.js";
import { type AddressShare, FairShare, type FairShareStats, type Ticket } from "./fair-share.js";
import {
  type StreamRecord,
  StreamWatch,
  type StreamWatchStats,
  statedTimeoutMs,
} from "./stream-watch.js";

/** The server-side limits a {@link ServerGuard} enforces; defaults and units: `ServerOptions` (options.ts). */
export interface ServerLimits {
  /** Requests admitted and not yet finished, across all sessions; more are RESOURCE_EXHAUSTED. `0`: no limit. */
  readonly maxRequestsInFlight: number;
  /**
   * Event-loop delay (ms) past which new requests are UNAVAILABLE; only delay
   * this process spent on the CPU counts. `0`: no probe.
   */
  readonly maxEventLoopDelayMs: number;
  /** Open TCP connections; more are closed on accept. `0`: no limit. */
  readonly maxConnections: number;
  /** Streams one session may have open at once (HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS). */
  readonly maxConcurrentStreams: number;
  /** A session with no open stream for this long (ms) gets GOAWAY. `0`: never. */
  readonly idleSessionTimeoutMs: number;
  /** A request whose body has not fully arrived this long (ms) after its headers is reset. `0`: never. */
  readonly requestReceiveTimeoutMs: number;
  /** Node's per-session memory credit (MiB); past it new streams are refused. */
  readonly maxSessionMemoryMiB: number;
  /** Largest request header list (HTTP/2 SETTINGS_MAX_HEADER_LIST_SIZE, bytes). */
  readonly maxHeaderListBytes: number;
  /** Client requests in flight from one remote address; more are RESOURCE_EXHAUSTED. `0`: no limit. */
  readonly maxRequestsPerAddress: number;
  /** Part of `maxRequestsInFlight` only peer calls may use. */
  readonly peerReservedRequests: number;
  /** Request and response bytes held in memory, node-wide; past it large requests are RESOURCE_EXHAUSTED. `0`: no limit. */
  readonly maxBufferedBytes: number;
  /** A response with bytes queued and none sent for this long (ms) is reset. `0`: never. */
  readonly responseWriteTimeoutMs: number;
  /** Longest life (ms) of a stream that states no shorter deadline. `0`: no limit. */
  readonly maxStreamLifetimeMs: number;
  /** A connection that has not sent the HTTP/2 preface this long (ms) after connecting is closed. `0`: never. */
  readonly prefaceTimeoutMs: number;
  /** Open TCP connections from one remote address; more are closed on accept. `0`: no limit. */
  readonly maxConnectionsPerAddress: number;
}

/**
 * What a node's server refused or shed; see `ConnectPool.stats`. The
 * admission counters are {@link FairShareStats}, the stream resets
 * {@link StreamWatchStats}.
 */
export interface ServerGuardStats extends FairShareStats, StreamWatchStats {
  /** HTTP/2 sessions (connections) open now. */
  readonly sessions: number;
  /** Requests answered UNAVAILABLE because the event loop lagged past `maxEventLoopDelayMs`. */
  readonly shedEventLoopDelay: number;
  /** Connections closed on accept because `maxConnections` were open. */
  readonly refusedConnections: number;
  /** Connections closed on accept because their address had `maxConnectionsPerAddress` open. */
  readonly refusedConnectionsPerAddress: number;
  /** Sessions sent GOAWAY after `idleSessionTimeoutMs` without a stream. */
  readonly closedIdleSessions: number;
  /** Connections closed because they sent no HTTP/2 preface within `prefaceTimeoutMs`. */
  readonly closedNoPreface: number;
  /**
   * The event-loop delay the probe measured last, in ms, counting only time
   * this process was on the CPU (`0` when the probe is off).
   */
  readonly eventLoopDelayMs: number;
}

/**
 * What the guard keeps on a stream it took in, until the stream closes: one
 * property (no lookup per large write) and one shared close listener
 * ({@link onAdmittedClose}), not a closure and a `once` wrapper per request.
 */
interface Admission {
  readonly guard: ServerGuard;
  readonly session: SessionState | undefined;
  /** The admission ticket, until the close (or keepOpen) gives it back; none for a refused stream. */
  ticket: Ticket | undefined;
  /** The stream's record in the watch, when the watch is on. */
  readonly record: StreamRecord | undefined;
}
const ADMISSION = Symbol("distcache.admission");
type AdmittedStream = http2.ServerHttp2Stream & { [ADMISSION]?: Admission };

/** A stream the guard took in closed: its session's count, its ticket and its record. */
function onAdmittedClose(this: AdmittedStream): void {
  const admission = this[ADMISSION];
  if (admission === undefined) return;
  this[ADMISSION] = undefined;
  admission.guard.closed(admission);
}

/**
 * A write of at least this many bytes is counted against `maxBufferedBytes`
 * as it is made ({@link ServerGuard.holdResponse}); smaller ones only by the
 * sweep.
 */
export const LARGE_WRITE_BYTES = 4_096;

/** Open streams of one session, since when it has had none, and its address's share. */
interface SessionState {
  open: number;
  readonly openedAt: number;
  idleSince: number;
  timer: NodeJS.Timeout | undefined;
  /** `awaiting-preface` until the client's SETTINGS arrive. */
  phase: "awaiting-preface" | "open";
  readonly share: AddressShare | undefined;
}

/**
 * Admission control for one h2c server: a bound on requests in flight,
 * shedding while the event loop lags, a bound on connections, GOAWAY for idle
 * sessions and a reset for requests whose body stalls. {@link admit} runs
 * first for every stream (before the gRPC fast path and Connect);
 * {@link attach} hooks the server;
 * {@link serverOptions} are the matching `http2.createServer` options.
 */
export class ServerGuard {
  private sessions = 0;
  private closedNoPreface = 0;
  private refusedConnectionsPerAddress = 0;
  /** Open connections by remote address (only with `maxConnectionsPerAddress`). */
  private readonly connectionsByAddress = new Map<string, number>();
  private shedEventLoopDelay = 0;
  private refusedConnections = 0;
  private closedIdleSessions = 0;
  /** Delay the probe measured on its last tick (ms), capped by the CPU time used meanwhile. */
  private lastDelayMs = 0;
  /** When the probe's next tick is due (performance.now() ms). */
  private nextTickAt = Number.POSITIVE_INFINITY;
  /** This process's CPU time (µs, user + system) at the last tick. */
  private cpuAtTick = 0;
  private probeIntervalMs = 0;
  private probe: NodeJS.Timeout | undefined;
  private lastSweepAt = 0;
  /** The in-flight budget and its shares; the byte budget. */
  private readonly fair: FairShare;
  /** The time limits of admitted streams, swept by the probe. */
  private readonly watch: StreamWatch;
  private readonly sessionStates = new WeakMap<http2.ServerHttp2Session, SessionState>();

  private readonly limits: ServerLimits;

  /**
   * Takes the {@link ServerLimits} fields of `limits` (other fields are
   * ignored); `readMaxBytes` is the largest request message accepted.
   */
  constructor(limits: ServerLimits, readMaxBytes = 1 << 20) {
    this.limits = {
      maxRequestsInFlight: limits.maxRequestsInFlight,
      maxEventLoopDelayMs: limits.maxEventLoopDelayMs,
      maxConnections: limits.maxConnections,
      maxConcurrentStreams: limits.maxConcurrentStreams,
      idleSessionTimeoutMs: limits.idleSessionTimeoutMs,
      requestReceiveTimeoutMs: limits.requestReceiveTimeoutMs,
      maxSessionMemoryMiB: limits.maxSessionMemoryMiB,
      maxHeaderListBytes: limits.maxHeaderListBytes,
      maxRequestsPerAddress: limits.maxRequestsPerAddress,
      peerReservedRequests: limits.peerReservedRequests,
      maxBufferedBytes: limits.maxBufferedBytes,
      responseWriteTimeoutMs: limits.responseWriteTimeoutMs,
      maxStreamLifetimeMs: limits.maxStreamLifetimeMs,
      prefaceTimeoutMs: limits.prefaceTimeoutMs,
      maxConnectionsPerAddress: limits.maxConnectionsPerAddress,
    };
    for (const [name, value] of Object.entries(this.limits)) {
      if (!Number.isInteger(value) || value < 0) {
        throw new RangeError(`${name} must be an integer >= 0, got ${value}`);
      }
    }
    // These have no "off": 0 would refuse every stream.
    for (const name of [
      "maxConcurrentStreams",
      "maxSessionMemoryMiB",
      "maxHeaderListBytes",
    ] as const) {
      if (this.limits[name] < 1)
        throw new RangeError(`${name} must be >= 1, got ${this.limits[name]}`);
    }
    this.fair = new FairShare({ ...this.limits, readMaxBytes });
    this.watch = new StreamWatch(this.limits);
  }

  /** Options for `http2.createServer` that enforce the per-session limits. */
  serverOptions(): http2.ServerOptions {
    return {
      settings: {
        maxConcurrentStreams: this.limits.maxConcurrentStreams,
        maxHeaderListSize: this.limits.maxHeaderListBytes,
      },
      maxSessionMemory: this.limits.maxSessionMemoryMiB,
    };
  }

  /**
   * Hooks `server`: the connection bound, per-session idle timers and the
   * event-loop probe, which runs while the server listens. Call before `listen`.
   */
  attach(server: http2.Http2Server): void {
    const { maxConnections, idleSessionTimeoutMs, prefaceTimeoutMs } = this.limits;
    if (maxConnections > 0) {
      // net.Server closes a connection past the limit right on accept, before
      // any HTTP/2 work; the client sees the connection closed.
      server.maxConnections = maxConnections;
      server.on("drop", () => this.refusedConnections++);
    }
    if (this.limits.maxConnectionsPerAddress > 0) {
      // Before Node's own listener makes a session of it.
      server.prependListener("connection", (socket: Socket) => this.countConnection(socket));
    }
    server.on("session", (session) => {
      const openedAt = performance.now();
      const state: SessionState = {
        open: 0,
        openedAt,
        idleSince: openedAt,
        timer: undefined,
        phase: prefaceTimeoutMs > 0 ? "awaiting-preface" : "open",
        share: this.fair.join(session.socket?.remoteAddress),
      };
      this.sessionStates.set(session, state);
      this.sessions++;
      if (state.phase === "awaiting-preface") {
        // The client's SETTINGS are the second half of its preface.
        session.once("remoteSettings", () => {
          state.phase = "open";
        });
      }
      const first = Math.min(
        prefaceTimeoutMs > 0 ? prefaceTimeoutMs : Number.POSITIVE_INFINITY,
        idleSessionTimeoutMs > 0 ? idleSessionTimeoutMs : Number.POSITIVE_INFINITY,
      );
      if (first !== Number.POSITIVE_INFINITY) {
        state.timer = setTimeout(() => this.checkIdle(session, state), first);
        state.timer.unref();
      }
      session.once("close", () => {
        this.sessions--;
        this.fair.leave(state.share);
        clearTimeout(state.timer);
      });
    });
    // From listening to close: a server that failed to listen leaves no timer.
    server.once("listening", () => this.startProbe());
    server.once("close", () => this.stopProbe());
  }

  /**
   * Admits the request, or answers it at once — RESOURCE_EXHAUSTED past
   * `maxRequestsInFlight`, UNAVAILABLE while the event loop lags — without
   * reading its body. Returns whether the caller should handle it.
   */
  admit(stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders): boolean {
    const session = this.sessionStates.get(stream.session as http2.ServerHttp2Session);
    if (session !== undefined) session.open++;
    const { maxEventLoopDelayMs } = this.limits;
    let refusal: [Code, string] | undefined;
    const ticket = this.fair.admit(headers, session?.share);
    if (typeof ticket === "string") {
      refusal = [Code.ResourceExhausted, ticket];
    } else if (maxEventLoopDelayMs > 0) {
      const delay = this.currentDelayMs(maxEventLoopDelayMs);
      if (delay > maxEventLoopDelayMs) {
        this.shedEventLoopDelay++;
        refusal = [
          Code.Unavailable,
          `overloaded: event loop delay ${Math.round(delay)} ms is over ${maxEventLoopDelayMs} ms`,
        ];
      }
    }
    let admitted: Ticket | undefined;
    let record: StreamRecord | undefined;
    if (refusal === undefined) {
      admitted = ticket as Ticket;
      if (this.watch.enabled) {
        const stated =
          headers["grpc-timeout"] === undefined && headers["connect-timeout-ms"] === undefined
            ? undefined
            : statedTimeoutMs(headers);
        record = this.watch.add(stream, performance.now(), stated, session?.share);
      }
    } else {
      if (typeof ticket !== "string") this.fair.release(ticket); // shed for the event loop
      // Its answer may wait on a window the client never opens: the sweep
      // ends it, and a reset then must not throw.
      stream.on("error", ignore);
      if (this.watch.enabled)
        record = this.watch.add(stream, performance.now(), undefined, undefined);
    }
    const admission: Admission = { guard: this, session, ticket: admitted, record };
    (stream as AdmittedStream)[ADMISSION] = admission;
    stream.on("close", onAdmittedClose);
    if (refusal !== undefined) respondWithError(stream, headers["content-type"], ...refusal);
    return admitted !== undefined;
  }

  /** A stream this guard took in closed (see {@link onAdmittedClose}). */
  closed(admission: Admission): void {
    const session = admission.session;
    if (session !== undefined && --session.open === 0) session.idleSince = performance.now();
    const ticket = admission.ticket;
    if (ticket !== undefined) {
      admission.ticket = undefined;
      this.fair.release(ticket);
    }
    if (admission.record !== undefined) this.watch.closed(admission.record);
  }

  /**
   * Lets `stream` (admitted by this guard) stay open past
   * `maxStreamLifetimeMs` with its request side open past
   * `requestReceiveTimeoutMs`: an authenticated peer's Exchange stream, which
   * carries calls for as long as the peer has them. Its unread response bytes
   * stay limited by `responseWriteTimeoutMs` and `maxBufferedBytes`.
   */
  keepOpen(stream: http2.ServerHttp2Stream): void {
    const admission = (stream as AdmittedStream)[ADMISSION];
    if (admission === undefined) return;
    if (admission.record !== undefined) this.watch.keepOpen(admission.record);
    // The stream is no request in flight: the calls it carries are counted
    // one by one (chargeKeys), so its admission slot is given back now.
    const ticket = admission.ticket;
    if (ticket !== undefined) {
      admission.ticket = undefined;
      this.fair.release(ticket);
    }
  }

  /**
   * Counts `keys` FetchMany keys as requests in flight until
   * {@link releaseKeys}; returns the RESOURCE_EXHAUSTED message instead when
   * they would pass `maxRequestsInFlight`.
   */
  chargeKeys(keys: number): string | undefined {
    return this.fair.chargeKeys(keys);
  }

  releaseKeys(keys: number): void {
    this.fair.releaseKeys(keys);
  }

  /**
   * Counts a large response of `bytes` about to be written on `stream`
   * (admitted by this guard) against `maxBufferedBytes` until the returned
   * function is called — from the write's callback, which Node runs once the
   * bytes are sent or the stream is gone. Returns the RESOURCE_EXHAUSTED
   * message instead when it does not fit.
   */
  holdResponse(stream: http2.ServerHttp2Stream, bytes: number): (() => void) | string {
    const record = (stream as AdmittedStream)[ADMISSION]?.record;
    const share =
      record !== undefined
        ? record.share
        : this.sessionStates.get(stream.session as http2.ServerHttp2Session)?.share;
    const refusal = this.fair.holdResponse(share, bytes);
    if (refusal !== undefined) return refusal;
    if (record !== undefined) record.held += bytes;
    const fair = this.fair;
    let held = true;
    return () => {
      if (!held) return;
      held = false;
      fair.releaseResponse(share, bytes);
      if (record !== undefined) record.held -= bytes;
    };
  }

  /**
   * Counts the large chunks a handler writes on `stream` (one no fast path
   * took: Connect's) as they are written, as {@link holdResponse} does. A
   * chunk that does not fit is dropped and the stream reset with
   * ENHANCE_YOUR_CALM — its headers are out already — which Connect and
   * grpc-js clients report as RESOURCE_EXHAUSTED. Without a byte budget the
   * stream is left alone.
   */
  countWrites(stream: http2.ServerHttp2Stream): void {
    if (this.limits.maxBufferedBytes === 0) return;
    const guard = this;
    const write = stream.write as (this: http2.ServerHttp2Stream, ...args: unknown[]) => boolean;
    stream.write = function countedWrite(
      this: http2.ServerHttp2Stream,
      chunk: unknown,
      encoding?: unknown,
      callback?: unknown,
    ): boolean {
      const size =
        typeof chunk === "string"
          ? Buffer.byteLength(chunk)
          : chunk instanceof Uint8Array
            ? chunk.byteLength
            : 0;
      if (size < LARGE_WRITE_BYTES) return write.call(this, chunk, encoding, callback);
      const release = guard.holdResponse(this, size);
      if (typeof release === "string") {
        this.on("error", ignore);
        if (!this.destroyed) this.close(h2.NGHTTP2_ENHANCE_YOUR_CALM);
        return false;
      }
      const done = typeof encoding === "function" ? encoding : callback;
      const counted = (error?: Error | null) => {
        release();
        if (typeof done === "function") (done as (error?: Error | null) => void)(error);
      };
      return typeof encoding === "function"
        ? write.call(this, chunk, counted)
        : write.call(this, chunk, encoding, counted);
    } as typeof stream.write;
  }

  /** A snapshot of the counters. */
  stats(): ServerGuardStats {
    return {
      ...this.fair.stats(),
      ...this.watch.stats(),
      sessions: this.sessions,
      shedEventLoopDelay: this.shedEventLoopDelay,
      refusedConnections: this.refusedConnections,
      refusedConnectionsPerAddress: this.refusedConnectionsPerAddress,
      closedIdleSessions: this.closedIdleSessions,
      closedNoPreface: this.closedNoPreface,
      eventLoopDelayMs: this.lastDelayMs,
    };
  }

  /** Closes `socket` when its address already has `maxConnectionsPerAddress` open. */
  private countConnection(socket: Socket): void {
    const address = socket.remoteAddress;
    if (address === undefined) return;
    const open = this.connectionsByAddress.get(address) ?? 0;
    if (open >= this.limits.maxConnectionsPerAddress) {
      this.refusedConnectionsPerAddress++;
      socket.destroy();
      return;
    }
    this.connectionsByAddress.set(address, open + 1);
    socket.once("close", () => {
      const left = (this.connectionsByAddress.get(address) ?? 1) - 1;
      if (left === 0) this.connectionsByAddress.delete(address);
      else this.connectionsByAddress.set(address, left);
    });
  }

  /**
   * The event-loop delay now: what the last tick measured, or how overdue the
   * next tick is. The second part sees a lag while it is still going on — the
   * requests that queued during a long synchronous task are read before the
   * timers phase comes round to the probe.
   */
  private currentDelayMs(threshold: number): number {
    const overdue = performance.now() - this.nextTickAt;
    // getrusage only when the overdue tick alone would shed: a tick a few ms
    // late is common under load, and a syscall per request is not free.
    if (overdue <= threshold || overdue <= this.lastDelayMs) return this.lastDelayMs;
    return Math.max(this.lastDelayMs, Math.min(overdue, this.cpuMsSinceTick()));
  }

  /**
   * CPU time this process used since the last tick. A delay counts only as far
   * as the process was busy meanwhile: time the OS did not run it (a loaded
   * host, a paused VM) is not work that shedding would relieve, and on a
   * shared CI machine it would shed at random. A synchronous task, a GC pause
   * or a flood of requests keeps the CPU busy and counts in full.
   */
  private cpuMsSinceTick(): number {
    const { user, system } = process.cpuUsage();
    return (user + system - this.cpuAtTick) / 1_000;
  }

  private startProbe(): void {
    const { maxEventLoopDelayMs } = this.limits;
    const sweepEvery = this.sweepIntervalMs();
    if (maxEventLoopDelayMs === 0 && sweepEvery === 0) return;
    // A quarter of the delay threshold resolves it well; 10–50 ms keeps the
    // probe's own cost (one timer) negligible. The stream sweep rides
    // along, or ticks alone at half its shortest limit (at most 1 s).
    const interval =
      maxEventLoopDelayMs > 0 ? clamp(Math.floor(maxEventLoopDelayMs / 4), 10, 50) : sweepEvery;
    this.probeIntervalMs = interval;
    this.nextTickAt = performance.now() + interval;
    const { user, system } = process.cpuUsage();
    this.cpuAtTick = user + system;
    this.probe = setInterval(() => this.tick(), interval);
    this.probe.unref();
  }

  private stopProbe(): void {
    clearInterval(this.probe);
    this.probe = undefined;
    this.nextTickAt = Number.POSITIVE_INFINITY;
    this.lastDelayMs = 0;
  }

  private tick(): void {
    const now = performance.now();
    if (this.limits.maxEventLoopDelayMs > 0) {
      const { user, system } = process.cpuUsage();
      const cpu = user + system;
      this.lastDelayMs = Math.min(
        Math.max(0, now - this.nextTickAt),
        (cpu - this.cpuAtTick) / 1_000,
      );
      this.cpuAtTick = cpu;
    }
    this.nextTickAt = now + this.probeIntervalMs;
    const every = this.sweepIntervalMs();
    if (every > 0 && now - this.lastSweepAt >= every) {
      this.lastSweepAt = now;
      this.fair.beginSweep(now);
      this.fair.queuedResponseBytes = this.watch.sweep(now, this.fair.responseBudget());
    }
  }

  /** How often the stream sweep runs: half the shortest stream limit, 10 ms to 1 s; `0`: none. */
  private sweepIntervalMs(): number {
    const shortest = this.watch.promoteAfterMs;
    return shortest === 0 ? 0 : clamp(Math.floor(shortest / 2), 10, 1_000);
  }

  /**
   * The session timer: closes a session that sent no preface within
   * `prefaceTimeoutMs` (destroyed) or had no stream for
   * `idleSessionTimeoutMs` (GOAWAY), else re-arms for the nearer of the two.
   */
  private checkIdle(session: http2.ServerHttp2Session, state: SessionState): void {
    if (session.closed || session.destroyed) return;
    const now = performance.now();
    const { idleSessionTimeoutMs: idle, prefaceTimeoutMs: preface } = this.limits;
    let next = Number.POSITIVE_INFINITY;
    if (state.phase === "awaiting-preface") {
      const left = state.openedAt + preface - now;
      if (left <= 0) {
        // No valid preface in time: bare TCP, or a client that stalled.
        this.closedNoPreface++;
        session.destroy();
        return;
      }
      next = left;
    }
    if (idle > 0) {
      const left = state.open > 0 ? idle : state.idleSince + idle - now;
      if (left <= 0) {
        this.closedIdleSessions++;
        // GOAWAY; with no stream open the session ends at once.
        session.close();
        return;
      }
      next = Math.min(next, left);
    }
    if (next === Number.POSITIVE_INFINITY) return;
    state.timer = setTimeout(() => this.checkIdle(session, state), next);
    state.timer.unref();
  }
}

/**
 * JSON options for the Connect adapter: a request body that is not valid UTF-8
 * is refused (INVALID_ARGUMENT) instead of decoded with U+FFFD in place of the
 * bad bytes, which would let different byte strings name one cache key.
 * Binary protobuf needs no help: proto3 strings are decoded strictly and an
 * invalid one fails to parse. `textDecoder` is read by Connect's JSON
 * serialization though its handler options do not declare it; a test pins it.
 */
export const strictJsonOptions: NonNullable<ConnectNodeAdapterOptions["jsonOptions"]> = {
  textDecoder: new TextDecoder("utf-8", { fatal: true }),
} as NonNullable<ConnectNodeAdapterOptions["jsonOptions"]>;

/**
 * The route for a path no service serves: gRPC and gRPC-Web clients get a
 * trailers-only UNIMPLEMENTED naming the path, others a Connect `unimplemented`
 * error (HTTP 404).
 */
export const answerUnknownRoute: NonNullable<ConnectNodeAdapterOptions["fallback"]> = (
  req,
  res,
) => {
  if (!("stream" in req)) {
    // HTTP/1.1 never reaches an h2c server; answer it plainly all the same.
    res.writeHead(404);
    res.end();
    return;
  }
  const path = req.url.slice(0, 200);
  respondWithError(
    req.stream,
    req.headers["content-type"],
    Code.Unimplemented,
    `unknown method ${path}`,
  );
};

/** A stream "error" listener that does nothing: "close" follows. */
function ignore(): void {}

function clamp(value: number, min: number, max: number): number {
  return Math.min(max, Math.max(min, value));
}

/**
 * Ends `stream` with `code` in the caller's protocol: a trailers-only gRPC or
 * gRPC-Web response, a Connect end-of-stream message for a Connect streaming
 * call, else a Connect unary error (JSON, mapped HTTP status).
 * The request body is never read; Node resets the stream with NO_ERROR once the
 * response is sent, which tells the client to stop sending (RFC 9113 §8.1).
 */
export function respondWithError(
  stream: http2.ServerHttp2Stream,
  contentType: string | undefined,
  code: Code,
  message: string,
): void {
  if (stream.headersSent || stream.destroyed) return;
  if (contentType?.startsWith("application/grpc")) {
    // grpc-web+proto, grpc+proto, ... : answer in the family asked.
    respondWithStatus(stream, code, message, contentType.split(";", 1)[0]!);
    return;
  }
  if (contentType?.startsWith("application/connect+")) {
    // A streaming client reads a unary error as a broken stream and keeps
    // its session waiting; it understands the end of a stream.
    respondConnectStream(stream, contentType, code, message);
    return;
  }
  const body = JSON.stringify({ code: codeToString(code), message });
  stream.respond({
    ":status": codeToHttpStatus(code),
    "content-type": "application/json",
    "content-length": Buffer.byteLength(body),
  });
  stream.end(body);
}

/**
 * Answers a Connect streaming call (`application/connect+proto|json`) with
 * `code` as that protocol ends a stream: HTTP 200 and one end-of-stream
 * message (flags 0b10) holding the error as JSON.
 */
function respondConnectStream(
  stream: http2.ServerHttp2Stream,
  contentType: string,
  code: Code,
  message: string,
): void {
  if (stream.headersSent || stream.destroyed) return;
  stream.respond({ ":status": 200, "content-type": contentType.split(";", 1)[0]! });
  stream.end(connectEndStream(code, message));
}

/** A Connect end-of-stream message (flags 0b10) carrying `code` and `message` as JSON. */
export function connectEndStream(code: Code, message: string): Buffer {
  const json = Buffer.from(JSON.stringify({ error: { code: codeToString(code), message } }));
  const frame = Buffer.alloc(5 + json.length);
  frame[0] = 0b10;
  frame.writeUInt32BE(json.length, 1);
  json.copy(frame, 5);
  return frame;
}
