// This node's Exchange stream to one peer: FetchMany and StoreMany calls sent
// as messages on one long-lived HTTP/2 stream, each with an id, and their
// answers routed back by id. A call costs a message, not a stream of its own.
import * as http2 from "node:http2";
import { Code, ConnectError } from "@connectrpc/connect";
import type { Http2SessionManager } from "@connectrpc/connect-node";
import { EnvelopeReader } from "../grpc/envelope.js";
import {
  type ExchangeResponseRead,
  encodeExchangeCancel,
  MAX_EXCHANGE_ID,
  readExchangeResponse,
} from "../grpc/exchange-codec.js";
import { PEER_EXCHANGE_PATH } from "../grpc/methods.js";
import { CallDeadline, type StreamDeadline } from "./call-deadline.js";
import {
  cancelled,
  closedWithout,
  MAX_RESPONSE_MESSAGE_BYTES,
  refusedResponse,
  type StreamHeaders,
  statusOf,
  unreachable,
} from "./server-stream.js";

const { NGHTTP2_CANCEL, NGHTTP2_NO_ERROR } = http2.constants;

/** How long an Exchange stream with no call open stays open before this node ends it (ms). */
export const EXCHANGE_IDLE_MS = 30_000;
/**
 * Most calls open at once on one stream, the receiver's limit
 * (fast-path/exchange.ts): a full stream takes no new call and the next one
 * opens a new stream. The batchers keep far fewer in flight (128 fetched
 * keys, 4,096 pushes per peer).
 */
const MAX_OPEN_CALLS = 8_192;
/**
 * Request bytes queued on a stream (the peer's flow-control window shut)
 * past which a new call fails at once with UNAVAILABLE instead of queueing
 * behind them: a peer that stopped reading must not make this node buffer
 * without bound (its breaker opens on these failures).
 */
const MAX_QUEUED_BYTES = 8 << 20;

/**
 * Called with each answer message of a call: `field` says which method's
 * message `body` is (peer.proto ExchangeResponse), 0 for none. `body` is
 * only valid during the call.
 */
export type OnExchangeMessage = (field: number, body: Uint8Array) => void;

/**
 * The Exchange of this node with one peer. {@link call} sends a call on the
 * current stream, opening one when there is none (or when this node's
 * credentials changed since it opened: a stream is authenticated once, so
 * calls after a secret rotation go on a new one while the old one finishes
 * its calls).
 *
 * A call resolves when the peer ends it with status OK and rejects with a
 * {@link ConnectError}: its own status from the peer; the stream's status
 * when the whole stream ends first (UNIMPLEMENTED from a peer without
 * Exchange); DEADLINE_EXCEEDED past its deadline; CANCELED when its signal
 * aborts; UNAVAILABLE when the peer cannot be reached or the stream breaks.
 */
export class PeerExchange {
  private current: ExchangeLine | undefined;

  constructor(
    private readonly session: Http2SessionManager,
    /** Request headers without a deadline: the stream outlives every call. */
    private readonly headers: StreamHeaders,
    private readonly idleMs = EXCHANGE_IDLE_MS,
  ) {}

  /**
   * Sends one call: `frame(id)` is its ExchangeRequest in an envelope, for
   * the id this stream gives it; `onMessage` gets each answer message.
   */
  call(
    frame: (id: number) => Buffer,
    deadline: StreamDeadline,
    signal: AbortSignal | undefined,
    onMessage: OnExchangeMessage,
  ): Promise<void> {
    if (signal?.aborted) return Promise.reject(cancelled(signal));
    const headers = this.headers.current();
    let line = this.current;
    if (line === undefined || !line.accepts(headers)) {
      line?.retire();
      line = new ExchangeLine(this.session, headers, this.idleMs, (ended) => {
        if (this.current === ended) this.current = undefined;
      });
      this.current = line;
    }
    return line.call(frame, deadline, signal, onMessage);
  }

  /** Ends the stream; calls still open fail UNAVAILABLE. */
  close(): void {
    this.current?.close(new ConnectError("the peer client closed", Code.Unavailable));
    this.current = undefined;
  }
}

/** One call open on a line. */
interface OpenCall {
  readonly onMessage: OnExchangeMessage;
  readonly resolve: () => void;
  readonly reject: (error: ConnectError) => void;
  readonly timer: CallDeadline;
  readonly signal: AbortSignal | undefined;
  readonly onAbort: (() => void) | undefined;
}

/**
 * One Exchange HTTP/2 stream. Phases: `opening` (frames wait for the
 * stream), `open`, `retired` (takes no new call; its side ends once its
 * calls have answered), `closed` (every call settled).
 */
class ExchangeLine {
  private phase: "opening" | "open" | "retired" | "closed" = "opening";
  private stream: http2.ClientHttp2Stream | undefined;
  /** Frames of calls made while the stream opens. */
  private waiting: Buffer[] = [];
  private readonly calls = new Map<number, OpenCall>();
  private nextId = 1;
  private readonly reader = new EnvelopeReader(MAX_RESPONSE_MESSAGE_BYTES);
  /** One object per line, refilled for each answer. */
  private readonly read: ExchangeResponseRead = {
    id: 0,
    field: 0,
    body: undefined,
    end: undefined,
  };
  private trailers: http2.IncomingHttpHeaders | undefined;
  private failure: Error | undefined;
  private idleTimer: NodeJS.Timeout | undefined;
  private lastCall = performance.now();

  constructor(
    private readonly session: Http2SessionManager,
    private readonly headers: Readonly<http2.OutgoingHttpHeaders>,
    private readonly idleMs: number,
    private readonly ended: (line: ExchangeLine) => void,
  ) {
    session
      .request("POST", PEER_EXCHANGE_PATH, headers, {})
      .then(this.onOpened, (error) => this.close(unreachable(error)));
  }

  /** Whether a new call may go on this line: open or opening, and made with `headers`. */
  accepts(headers: Readonly<http2.OutgoingHttpHeaders>): boolean {
    return (
      (this.phase === "opening" || this.phase === "open") &&
      headers === this.headers &&
      this.nextId < MAX_EXCHANGE_ID &&
      this.calls.size < MAX_OPEN_CALLS
    );
  }

  call(
    frame: (id: number) => Buffer,
    deadline: StreamDeadline,
    signal: AbortSignal | undefined,
    onMessage: OnExchangeMessage,
  ): Promise<void> {
    const queued = this.stream?.writableLength ?? 0;
    if (queued > MAX_QUEUED_BYTES) {
      return Promise.reject(
        new ConnectError(
          `the peer is not reading its Exchange stream (${queued} bytes queued)`,
          Code.Unavailable,
        ),
      );
    }
    const id = this.nextId++;
    const bytes = frame(id);
    this.lastCall = performance.now();
    return new Promise<void>((resolve, reject) => {
      // Given up here: the peer is told, so it releases the loads the call waits on.
      const onAbort = signal === undefined ? undefined : () => this.giveUp(id, cancelled(signal));
      const timer = new CallDeadline(deadline, (error) => this.giveUp(id, error));
      this.calls.set(id, { onMessage, resolve, reject, timer, signal, onAbort });
      if (onAbort !== undefined) signal!.addEventListener("abort", onAbort, { once: true });
      if (this.stream === undefined) this.waiting.push(bytes);
      else this.stream.write(bytes);
    });
  }

  /** Takes no new call; ends this side once the open calls have answered. */
  retire(): void {
    if (this.phase !== "opening" && this.phase !== "open") return;
    this.phase = "retired";
    this.ended(this);
    this.endIfIdle();
  }

  /** Ends the line at once: every open call fails with `error`. */
  close(error: ConnectError): void {
    if (this.phase === "closed") return;
    this.phase = "closed";
    this.ended(this);
    clearTimeout(this.idleTimer);
    this.waiting = [];
    const stream = this.stream;
    if (stream !== undefined && !stream.closed)
      stream.close(this.calls.size > 0 ? NGHTTP2_CANCEL : NGHTTP2_NO_ERROR);
    for (const id of [...this.calls.keys()]) this.settle(id, error);
  }

  /** This node gave up on call `id`: it fails with `error`, and the peer is sent a cancel. */
  private giveUp(id: number, error: ConnectError): void {
    if (!this.calls.has(id)) return;
    this.settle(id, error);
    const stream = this.stream;
    if (stream !== undefined && !stream.closed && this.phase !== "closed") {
      stream.write(encodeExchangeCancel(id));
    }
  }

  /** Settles call `id`: OK (`error` undefined) or failed. A call settles once. */
  private settle(id: number, error?: ConnectError): void {
    const call = this.calls.get(id);
    if (call === undefined) return;
    this.calls.delete(id);
    call.timer.stop();
    if (call.onAbort !== undefined) call.signal!.removeEventListener("abort", call.onAbort);
    if (error === undefined) call.resolve();
    else call.reject(error);
    if (this.calls.size === 0) this.idle();
  }

  /** No call is open: a retired line ends its side; an open one ends after `idleMs` without calls. */
  private idle(): void {
    if (this.phase === "retired") {
      this.endIfIdle();
      return;
    }
    if (this.idleTimer !== undefined || this.phase === "closed") return;
    this.idleTimer = setTimeout(this.checkIdle, this.idleMs);
    this.idleTimer.unref();
  }

  private readonly checkIdle = (): void => {
    this.idleTimer = undefined;
    if (this.phase === "closed" || this.phase === "retired") return;
    const quiet = performance.now() - this.lastCall;
    if (this.calls.size > 0) return; // the next idle() re-arms
    if (quiet < this.idleMs) {
      this.idleTimer = setTimeout(this.checkIdle, this.idleMs - quiet);
      this.idleTimer.unref();
      return;
    }
    this.retire();
  };

  private endIfIdle(): void {
    if (this.calls.size > 0) return;
    const stream = this.stream;
    // Opening: the stream is closed as soon as it opens (onOpened).
    if (stream !== undefined && !stream.closed) stream.end();
  }

  private readonly onOpened = (stream: http2.ClientHttp2Stream): void => {
    this.stream = stream;
    if (this.phase === "closed") {
      stream.close(NGHTTP2_CANCEL);
      return;
    }
    stream.on("response", this.onResponse);
    stream.on("trailers", this.onTrailers);
    stream.on("data", this.onData);
    stream.on("error", this.onError);
    stream.on("close", this.onClose);
    if (this.phase === "opening") this.phase = "open";
    const waiting = this.waiting;
    this.waiting = [];
    for (const frame of waiting) stream.write(frame);
    if (this.phase === "retired") this.endIfIdle();
  };

  private readonly onResponse = (head: http2.IncomingHttpHeaders): void => {
    const refused = refusedResponse(head);
    if (refused !== undefined) {
      this.close(refused);
      return;
    }
    // Trailers-only: the peer refused the stream (UNIMPLEMENTED from a
    // peer without Exchange, UNAUTHENTICATED, RESOURCE_EXHAUSTED).
    if (head["grpc-status"] !== undefined) this.trailers = head;
  };

  private readonly onTrailers = (tail: http2.IncomingHttpHeaders): void => {
    this.trailers = tail;
    // The peer ended the stream: end this side too, so it closes.
    const stream = this.stream;
    if (stream !== undefined && !stream.closed && stream.writable) stream.end();
  };

  private readonly onData = (chunk: Buffer): void => {
    if (this.phase === "closed") return;
    this.session.notifyResponseByteRead(this.stream!);
    try {
      this.reader.push(chunk, this.onEnvelope);
    } catch (error) {
      this.close(ConnectError.from(error, Code.Internal));
    }
  };

  private readonly onEnvelope = (flags: number, message: Buffer): void => {
    if (flags !== 0) throw new ConnectError(`peer sent message flags ${flags}`, Code.Internal);
    let read: ExchangeResponseRead;
    try {
      read = readExchangeResponse(message, this.read);
    } catch (error) {
      throw new ConnectError(`peer sent a bad ExchangeResponse: ${String(error)}`, Code.Internal);
    }
    const call = this.calls.get(read.id);
    // A call given up (deadline, cancel) may still be answered: dropped.
    if (call === undefined) return;
    const end = read.end;
    if (read.body !== undefined) {
      try {
        call.onMessage(read.field, read.body);
      } catch (error) {
        this.settle(read.id, ConnectError.from(error, Code.Internal));
        return;
      }
    }
    if (end === undefined) return;
    this.settle(
      read.id,
      end.code === 0
        ? undefined
        : new ConnectError(
            end.message,
            end.code > 0 && end.code <= 16 ? (end.code as Code) : Code.Unknown,
          ),
    );
  };

  private readonly onError = (error: Error): void => {
    this.failure = error;
  };

  private readonly onClose = (): void => {
    if (this.phase === "closed") return;
    const trailers = this.trailers;
    let error: ConnectError | undefined;
    if (trailers === undefined) error = closedWithout(this.stream!.rstCode, this.failure);
    else error = statusOf(trailers);
    // OK with calls open: the peer ended the stream (it is shutting down);
    // their callers ask elsewhere.
    this.close(
      error ??
        new ConnectError("peer ended the Exchange stream before answering", Code.Unavailable),
    );
  };
}
