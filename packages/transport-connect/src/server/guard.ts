// Admission control and connection limits for a node's h2c server, applied
// before a request's body is read and before any handler (a fast path or
// Connect): an overloaded node answers at once instead of queueing work.
import type * as http2 from "node:http2";
import { constants as h2 } from "node:http2";
import { performance } from "node:perf_hooks";
import { Code } from "@connectrpc/connect";
import { codeToHttpStatus, codeToString } from "@connectrpc/connect/protocol-connect";
import type { ConnectNodeAdapterOptions } from "@connectrpc/connect-node";
import { respondWithStatus } from "../grpc/status.js";

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
}

/** What a node's server refused or shed; see `ConnectPool.stats`. */
export interface ServerGuardStats {
  /** Requests admitted and not finished yet. */
  readonly inFlight: number;
  /** HTTP/2 sessions (connections) open now. */
  readonly sessions: number;
  /** Requests answered RESOURCE_EXHAUSTED because `maxRequestsInFlight` were in flight. */
  readonly shedInFlight: number;
  /** Requests answered UNAVAILABLE because the event loop lagged past `maxEventLoopDelayMs`. */
  readonly shedEventLoopDelay: number;
  /** Connections closed on accept because `maxConnections` were open. */
  readonly refusedConnections: number;
  /** Sessions sent GOAWAY after `idleSessionTimeoutMs` without a stream. */
  readonly closedIdleSessions: number;
  /** Streams reset (CANCEL) because their request did not arrive within `requestReceiveTimeoutMs`. */
  readonly resetSlowRequests: number;
  /**
   * The event-loop delay the probe measured last, in ms, counting only time
   * this process was on the CPU (`0` when the probe is off).
   */
  readonly eventLoopDelayMs: number;
}

/** Open streams of one session and since when it has had none. */
interface SessionState {
  open: number;
  idleSince: number;
  timer: NodeJS.Timeout | undefined;
}

/** A stream admitted before its body arrived; `stream` is cleared once it closes. */
interface ReceivingRecord {
  stream: http2.ServerHttp2Stream | undefined;
  readonly at: number;
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
  private inFlight = 0;
  private sessions = 0;
  private shedInFlight = 0;
  private shedEventLoopDelay = 0;
  private refusedConnections = 0;
  private closedIdleSessions = 0;
  private resetSlowRequests = 0;
  /** Delay the probe measured on its last tick (ms), capped by the CPU time used meanwhile. */
  private lastDelayMs = 0;
  /** When the probe's next tick is due (performance.now() ms). */
  private nextTickAt = Number.POSITIVE_INFINITY;
  /** This process's CPU time (µs, user + system) at the last tick. */
  private cpuAtTick = 0;
  private probeIntervalMs = 0;
  private probe: NodeJS.Timeout | undefined;
  private lastSweepAt = 0;
  /**
   * Admitted streams whose body may still be arriving, in admission order, so
   * a sweep stops at the first one that is young enough. An array of records
   * rather than a Map keyed by stream: a closing stream only clears its
   * record (no hashing on the hot path, where a Map set + delete per request
   * was measurable; docs/benchmarks.md). Cleared records leave at the next sweep, or
   * in a compaction once they are most of the array.
   */
  private receiving: ReceivingRecord[] = [];
  /** Records in `receiving` whose stream has closed. */
  private receivingCleared = 0;
  private readonly sessionStates = new WeakMap<http2.ServerHttp2Session, SessionState>();

  private readonly limits: ServerLimits;

  /** Takes the {@link ServerLimits} fields of `limits` (other fields are ignored). */
  constructor(limits: ServerLimits) {
    this.limits = {
      maxRequestsInFlight: limits.maxRequestsInFlight,
      maxEventLoopDelayMs: limits.maxEventLoopDelayMs,
      maxConnections: limits.maxConnections,
      maxConcurrentStreams: limits.maxConcurrentStreams,
      idleSessionTimeoutMs: limits.idleSessionTimeoutMs,
      requestReceiveTimeoutMs: limits.requestReceiveTimeoutMs,
      maxSessionMemoryMiB: limits.maxSessionMemoryMiB,
      maxHeaderListBytes: limits.maxHeaderListBytes,
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
    const { maxConnections, idleSessionTimeoutMs } = this.limits;
    if (maxConnections > 0) {
      // net.Server closes a connection past the limit right on accept, before
      // any HTTP/2 work; the client sees the connection closed.
      server.maxConnections = maxConnections;
      server.on("drop", () => this.refusedConnections++);
    }
    server.on("session", (session) => {
      const state: SessionState = { open: 0, idleSince: performance.now(), timer: undefined };
      this.sessionStates.set(session, state);
      this.sessions++;
      if (idleSessionTimeoutMs > 0) {
        state.timer = setTimeout(() => this.checkIdle(session, state), idleSessionTimeoutMs);
        state.timer.unref();
      }
      session.once("close", () => {
        this.sessions--;
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
    const { maxRequestsInFlight, maxEventLoopDelayMs } = this.limits;
    let refusal: [Code, string] | undefined;
    if (maxRequestsInFlight > 0 && this.inFlight >= maxRequestsInFlight) {
      this.shedInFlight++;
      refusal = [
        Code.ResourceExhausted,
        `overloaded: ${this.inFlight} requests in flight, the limit is ${maxRequestsInFlight}`,
      ];
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
    const admitted = refusal === undefined;
    let receiving: ReceivingRecord | undefined;
    if (admitted) {
      this.inFlight++;
      if (this.limits.requestReceiveTimeoutMs > 0 && !stream.endAfterHeaders) {
        receiving = { stream, at: performance.now() };
        this.receiving.push(receiving);
      }
    }
    stream.once("close", () => {
      if (session !== undefined && --session.open === 0) session.idleSince = performance.now();
      if (admitted) this.inFlight--;
      if (receiving?.stream !== undefined) {
        receiving.stream = undefined;
        this.receivingCleared++;
        if (this.receivingCleared > 1_024 && this.receivingCleared * 2 > this.receiving.length) {
          this.receiving = this.receiving.filter((record) => record.stream !== undefined);
          this.receivingCleared = 0;
        }
      }
    });
    if (refusal !== undefined) respondWithError(stream, headers["content-type"], ...refusal);
    return admitted;
  }

  /** A snapshot of the counters. */
  stats(): ServerGuardStats {
    return {
      inFlight: this.inFlight,
      sessions: this.sessions,
      shedInFlight: this.shedInFlight,
      shedEventLoopDelay: this.shedEventLoopDelay,
      refusedConnections: this.refusedConnections,
      closedIdleSessions: this.closedIdleSessions,
      resetSlowRequests: this.resetSlowRequests,
      eventLoopDelayMs: this.lastDelayMs,
    };
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
    const { maxEventLoopDelayMs, requestReceiveTimeoutMs } = this.limits;
    if (maxEventLoopDelayMs === 0 && requestReceiveTimeoutMs === 0) return;
    // A quarter of the delay threshold resolves it well; 10–50 ms keeps the
    // probe's own cost (one timer) negligible. The receive-timeout sweep rides
    // along, or ticks alone at half its timeout (at most 1 s).
    const interval =
      maxEventLoopDelayMs > 0
        ? clamp(Math.floor(maxEventLoopDelayMs / 4), 10, 50)
        : clamp(Math.floor(requestReceiveTimeoutMs / 2), 10, 1_000);
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
    const timeout = this.limits.requestReceiveTimeoutMs;
    if (timeout > 0 && now - this.lastSweepAt >= Math.min(timeout / 2, 1_000)) {
      this.lastSweepAt = now;
      this.sweep(now - timeout);
    }
  }

  /** Resets admitted streams older than `cutoff` whose request has still not fully arrived. */
  private sweep(cutoff: number): void {
    let swept = 0;
    for (; swept < this.receiving.length; swept++) {
      const record = this.receiving[swept]!;
      if (record.at > cutoff) break;
      const { stream } = record;
      if (stream === undefined) {
        this.receivingCleared--;
        continue;
      }
      record.stream = undefined; // leaving the array: its close must not count it
      // remoteClose: the client's END_STREAM has arrived (nghttp2's view,
      // whether or not the handler has read the body yet).
      if (stream.destroyed || stream.state.remoteClose === 1) continue;
      this.resetSlowRequests++;
      stream.close(h2.NGHTTP2_CANCEL);
    }
    this.receiving.splice(0, swept);
  }

  private checkIdle(session: http2.ServerHttp2Session, state: SessionState): void {
    if (session.closed || session.destroyed) return;
    const timeout = this.limits.idleSessionTimeoutMs;
    if (state.open > 0) {
      state.timer?.refresh();
      return;
    }
    const left = state.idleSince + timeout - performance.now();
    if (left > 0) {
      state.timer = setTimeout(() => this.checkIdle(session, state), left);
      state.timer.unref();
      return;
    }
    this.closedIdleSessions++;
    // GOAWAY; with no stream open the session ends at once.
    session.close();
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

function clamp(value: number, min: number, max: number): number {
  return Math.min(max, Math.max(min, value));
}

/**
 * Ends `stream` with `code` in the caller's protocol: a trailers-only gRPC or
 * gRPC-Web response, else a Connect unary error (JSON, mapped HTTP status).
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
  const body = JSON.stringify({ code: codeToString(code), message });
  stream.respond({
    ":status": codeToHttpStatus(code),
    "content-type": "application/json",
    "content-length": Buffer.byteLength(body),
  });
  stream.end(body);
}
