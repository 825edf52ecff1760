// Time limits on every phase of an admitted stream, enforced by the guard's
// probe timer sweeping an array of records: a request body that stalls, a
// response nobody reads (flow control stalled), and a stream past its
// deadline (its grpc-timeout / connect-timeout-ms, or the server's maximum).
import type * as http2 from "node:http2";
import { constants as h2 } from "node:http2";
import { requestTimeout } from "../grpc/timeout.js";
import type { AddressShare } from "./fair-share.js";

/** The limits a {@link StreamWatch} enforces, in ms; `0`: never. */
export interface StreamWatchLimits {
  readonly requestReceiveTimeoutMs: number;
  readonly responseWriteTimeoutMs: number;
  readonly maxStreamLifetimeMs: number;
}

/** One admitted stream; `stream` is cleared once it closes. */
export interface StreamRecord {
  stream: http2.ServerHttp2Stream | undefined;
  readonly at: number;
  /**
   * When the stream must be gone (admission + its deadline, or the server
   * maximum); never for a long-lived stream (see {@link StreamWatch.keepOpen}).
   */
  deadline: number;
  /**
   * A long-lived stream (a peer's Exchange): its request side stays open by
   * design, so neither its lifetime nor the request's arrival is limited.
   * Its unread response bytes are, as any stream's.
   */
  longLived: boolean;
  /** The client address it came from (its response bytes count against it). */
  readonly share: AddressShare | undefined;
  /** Response bytes queued at the last sweep, and since when that amount has not shrunk. */
  queued: number;
  /** Bytes of large writes counted as they were written (fair-share.ts `holdResponse`), not yet sent. */
  held: number;
  stalledSince: number;
  /** Moved to `old` (a close there only clears `stream`; the next sweep drops it). */
  promoted: boolean;
}

/** What the sweeps reset, by reason; see `ServerGuardStats`. */
export interface StreamWatchStats {
  /** Streams reset (CANCEL) because their request did not arrive within `requestReceiveTimeoutMs`. */
  readonly resetSlowRequests: number;
  /** Streams reset (CANCEL) because their response could not be written for `responseWriteTimeoutMs`. */
  readonly resetStalledResponses: number;
  /** Streams reset (CANCEL) because they outlived their deadline (or `maxStreamLifetimeMs`). */
  readonly resetExpiredStreams: number;
  /** Stalled responses reset (CANCEL) because queued response bytes passed `maxBufferedBytes`. */
  readonly resetOverBudget: number;
}

const NEVER = Number.POSITIVE_INFINITY;
const DEADLINE_GRACE_MS = 1_000;

/**
 * Every admitted stream gets a record in `young`, in admission order, and a
 * closing stream only clears its record (no hashing, no timer per request on
 * the hot path, where a Map set + delete per request was measurable;
 * docs/benchmarks.md). A sweep moves the records older than the shortest
 * limit to `old` — almost none on a healthy node, where a request lives for
 * a millisecond — and checks every `old` one against every limit.
 */
export class StreamWatch {
  private young: StreamRecord[] = [];
  private youngCleared = 0;
  private old: StreamRecord[] = [];
  private resetSlowRequests = 0;
  private resetStalledResponses = 0;
  private resetExpiredStreams = 0;
  private resetOverBudget = 0;
  /** Age past which a record moves to `old`: the shortest limit, at most 250 ms. */
  readonly promoteAfterMs: number;

  constructor(private readonly limits: StreamWatchLimits) {
    const enabled = [
      limits.requestReceiveTimeoutMs,
      limits.responseWriteTimeoutMs,
      limits.maxStreamLifetimeMs,
    ].filter((ms) => ms > 0);
    // At most 250 ms: response bytes queued count against the byte budget from then on.
    this.promoteAfterMs = enabled.length === 0 ? 0 : Math.min(250, ...enabled);
  }

  /** Whether any limit is on (else streams need no record). */
  get enabled(): boolean {
    return this.promoteAfterMs > 0;
  }

  /**
   * Records an admitted stream. `timeout` is its `grpc-timeout` or
   * `connect-timeout-ms` header (read only when present).
   */
  add(
    stream: http2.ServerHttp2Stream,
    now: number,
    timeout: number | undefined,
    share: AddressShare | undefined,
  ): StreamRecord {
    const max = this.limits.maxStreamLifetimeMs;
    let life = max > 0 ? max : NEVER;
    // A stated deadline is the handler's to answer: the sweep only ends a
    // stream that outlives it by a second (its answer could not be written).
    if (timeout !== undefined && timeout + DEADLINE_GRACE_MS < life) {
      life = timeout + DEADLINE_GRACE_MS;
    }
    const record: StreamRecord = {
      stream,
      share,
      at: now,
      deadline: now + life,
      queued: 0,
      held: 0,
      stalledSince: now,
      promoted: false,
      longLived: false,
    };
    this.young.push(record);
    return record;
  }

  /**
   * Exempts the stream of `record` from `maxStreamLifetimeMs` and
   * `requestReceiveTimeoutMs` (an authenticated peer's long-lived stream);
   * `responseWriteTimeoutMs` and the byte budget still apply.
   */
  keepOpen(record: StreamRecord): void {
    record.longLived = true;
    record.deadline = NEVER;
  }

  /** The stream of `record` closed. */
  closed(record: StreamRecord): void {
    if (record.stream === undefined) return;
    record.stream = undefined;
    if (record.promoted) return;
    this.youngCleared++;
    if (this.youngCleared > 1_024 && this.youngCleared * 2 > this.young.length) {
      this.young = this.young.filter((r) => r.stream !== undefined);
      this.youngCleared = 0;
    }
  }

  /**
   * Resets the streams past a limit, then, while the response bytes queued
   * on old streams are over `budget`, the oldest stalled ones; returns the
   * response bytes still queued on old streams.
   */
  sweep(now: number, budget = NEVER): number {
    // Promote records old enough to be past some limit soon.
    const young = this.young;
    let moved = 0;
    for (; moved < young.length; moved++) {
      const record = young[moved]!;
      if (record.at > now - this.promoteAfterMs) break;
      if (record.stream === undefined) this.youngCleared--;
      else {
        record.promoted = true;
        this.old.push(record);
      }
    }
    young.splice(0, moved);
    const { requestReceiveTimeoutMs, responseWriteTimeoutMs } = this.limits;
    let queuedBytes = 0;
    let kept = 0;
    const old = this.old;
    for (const record of old) {
      const stream = record.stream;
      if (stream === undefined || stream.destroyed) continue;
      if (now >= record.deadline) {
        this.resetExpiredStreams++;
        this.reset(record, stream);
        continue;
      }
      // remoteClose: the client's END_STREAM has arrived (nghttp2's view,
      // whether or not a handler has read the body yet).
      if (
        requestReceiveTimeoutMs > 0 &&
        !record.longLived &&
        stream.state.remoteClose !== 1 &&
        now - record.at >= requestReceiveTimeoutMs
      ) {
        this.resetSlowRequests++;
        this.reset(record, stream);
        continue;
      }
      // Bytes written and not yet sent: the client's flow-control window is
      // shut. Progress (fewer queued) restarts the clock.
      const queued = stream.headersSent ? stream.writableLength : 0;
      if (queued === 0 || record.queued === 0 || queued < record.queued) record.stalledSince = now;
      record.queued = queued;
      if (
        responseWriteTimeoutMs > 0 &&
        queued > 0 &&
        now - record.stalledSince >= responseWriteTimeoutMs
      ) {
        this.resetStalledResponses++;
        this.penalize(record, now);
        this.reset(record, stream);
        continue;
      }
      // Large writes are counted already, as they were written.
      const unheld = queued - record.held;
      if (unheld > 0) {
        queuedBytes += unheld;
        if (record.share !== undefined) record.share.queuedBytes += unheld;
      }
      old[kept++] = record;
    }
    old.length = kept;
    if (queuedBytes > budget) queuedBytes = this.shed(now, queuedBytes, budget);
    return queuedBytes;
  }

  /** Resets stalled responses, oldest first, until `queued` is within `budget`. */
  private shed(now: number, queued: number, budget: number): number {
    for (const record of this.old) {
      if (queued <= budget) break;
      const stream = record.stream;
      // Stalled since an earlier sweep: a response being sent is left alone.
      if (stream === undefined || record.queued === 0 || record.stalledSince >= now) continue;
      queued -= Math.max(0, record.queued - record.held);
      this.resetOverBudget++;
      this.penalize(record, now);
      this.reset(record, stream);
    }
    return queued;
  }

  stats(): StreamWatchStats {
    return {
      resetSlowRequests: this.resetSlowRequests,
      resetStalledResponses: this.resetStalledResponses,
      resetExpiredStreams: this.resetExpiredStreams,
      resetOverBudget: this.resetOverBudget,
    };
  }

  /** Streams admitted and still recorded (young and old), for tests. */
  get size(): number {
    return this.young.length - this.youngCleared + this.old.length;
  }

  /** The address of a response reset unread is refused for a while (fair-share.ts). */
  private penalize(record: StreamRecord, now: number): void {
    if (record.share !== undefined) {
      record.share.refusedUntil = now + Math.max(1_000, this.limits.responseWriteTimeoutMs);
    }
  }

  /** CANCEL: nghttp2 drops what is queued for the stream; its "close" frees the slot. */
  private reset(record: StreamRecord, stream: http2.ServerHttp2Stream): void {
    record.stream = undefined; // leaving the arrays: its close must not count it
    stream.close(h2.NGHTTP2_CANCEL);
  }
}

/**
 * The deadline a request states, in ms: `grpc-timeout` (gRPC, gRPC-Web:
 * digits and a unit) or `connect-timeout-ms`; `undefined` when it states
 * none or one that does not parse (its handler answers that).
 */
export function statedTimeoutMs(headers: http2.IncomingHttpHeaders): number | undefined {
  const grpc = headers["grpc-timeout"];
  if (grpc !== undefined) {
    const ms = requestTimeout(grpc);
    return typeof ms === "number" ? ms : undefined;
  }
  const connect = headers["connect-timeout-ms"];
  if (typeof connect === "string" && /^\d{1,10}$/.test(connect)) return Number(connect);
  return undefined;
}
