// The Exchange fast path: a peer's long-lived `PeerService/Exchange` stream,
// whose messages are FetchMany and StoreMany calls named by ids, each served
// by the same FetchManyRun / storeMany as its own call would be, and answered
// on the stream by id.
import type * as http2 from "node:http2";
import { Code, ConnectError } from "@connectrpc/connect";
import { PEER_HEADER } from "../../auth/peer-token.js";
import { errorMessage } from "../../error-message.js";
import { EnvelopeReader } from "../../grpc/envelope.js";
import {
  EXCHANGE_CANCEL,
  EXCHANGE_FETCH_MANY,
  EXCHANGE_OK,
  type ExchangeEndFields,
  encodeExchangeEnd,
  readExchangeRequest,
} from "../../grpc/exchange-codec.js";
import { PEER_EXCHANGE_PATH } from "../../grpc/methods.js";
import {
  encodeFetchManyResponse,
  encodeStoreManyResponse,
  type FetchManyRequestFields,
  readFetchManyRequest,
  readStoreManyRequest,
  type StoreManyRequestFields,
} from "../../grpc/peer-codec.js";
import {
  OK_HEADERS,
  OK_TRAILERS,
  respondWithStatus,
  statusTrailers,
  stopRequestAfterResponse,
} from "../../grpc/status.js";
import { FetchManyRun } from "../fetch-many-run.js";
import type { ServiceContext } from "../host.js";
import { storeMany } from "../store-many-run.js";
import { checkReadMaxBytes, type FastPath, fastPathFor, ignore } from "./fast-path.js";

/** Most Exchange streams one HTTP/2 connection may hold open (a caller uses one per peer). */
export const MAX_EXCHANGES_PER_SESSION = 4;
/**
 * Most calls of one Exchange stream open at once; one more is answered
 * RESOURCE_EXHAUSTED. Above what a caller's batchers can have in flight
 * (128 fetched keys and 4,096 pushes per peer): it bounds the records an
 * open stream keeps, while the in-flight budget bounds the work.
 */
export const MAX_EXCHANGE_CALLS = 8_192;
/**
 * Response bytes queued on one Exchange stream past which it reads no more
 * calls until they are sent: a caller that does not read its answers stops
 * being served (HTTP/2 flow control then holds its further calls back).
 */
const EXCHANGE_QUEUED_BYTES = 4 << 20;

/** What the Exchange fast path needs from its server. */
export interface ExchangeHost {
  /** A stream with no call open for this long (ms) is ended with status OK; `0`: never. */
  readonly idleMs: number;
  /** Frees the stream from the stream lifetime and request-arrival limits (guard.ts). */
  keepOpen(stream: http2.ServerHttp2Stream): void;
  /** The streams open now: the server ends those whose credentials a secret rotation voided. */
  readonly open: Set<ExchangeStream>;
}

/**
 * The Exchange fast path for the groups of `services.host`; `readMaxBytes`
 * bounds each message (one call), as it bounds a FetchMany or StoreMany
 * request. Only plain gRPC over HTTP/2 can carry a bidirectional stream;
 * Connect's handler (and so a `fastPaths: false` server) answers Exchange
 * UNIMPLEMENTED, and callers then use FetchMany and StoreMany.
 */
export function createExchangeFastPath(
  services: ServiceContext,
  options: { readonly readMaxBytes: number },
  host: ExchangeHost,
): FastPath {
  const readMaxBytes = checkReadMaxBytes(options.readMaxBytes);
  const perSession = new WeakMap<http2.Http2Session, number>();
  return fastPathFor(PEER_EXCHANGE_PATH, (stream, _timeout, headers) => {
    const session = stream.session;
    const open = session === undefined ? 0 : (perSession.get(session) ?? 0);
    if (session === undefined || open >= MAX_EXCHANGES_PER_SESSION) {
      respondWithStatus(
        stream,
        Code.ResourceExhausted,
        `at most ${MAX_EXCHANGES_PER_SESSION} Exchange streams per connection`,
      );
      stopRequestAfterResponse(stream);
      return;
    }
    // Only a member may hold a stream that outlives the stream limits (with
    // peer authentication the gate has proved the header already; without,
    // it must at least name a member, as every call's sender must).
    const header = headers[PEER_HEADER];
    const peer = typeof header === "string" ? header : "";
    try {
      services.identity.checkSender(peer, peer);
    } catch (error) {
      const refused = ConnectError.from(error, Code.PermissionDenied);
      respondWithStatus(stream, refused.code, refused.rawMessage);
      stopRequestAfterResponse(stream);
      return;
    }
    perSession.set(session, open + 1);
    stream.once("close", () => perSession.set(session, (perSession.get(session) ?? 1) - 1));
    host.keepOpen(stream);
    services.received.exchanges++;
    const exchange = new ExchangeStream(
      services,
      readMaxBytes,
      stream,
      headers,
      host.open,
      host.idleMs,
    );
    host.open.add(exchange);
  });
}

/** A call being served: a FetchMany's run, or a StoreMany waiting on its stores (no run). */
interface OpenCall {
  run: FetchManyRun | undefined;
  /** Aborts the loads the call waits on; made when a key first loads (a call of hits needs none). */
  controller: AbortController | undefined;
}

/**
 * One Exchange stream. Phases: `open` (calls arrive), `draining` (the caller
 * ended its side, or this node is shutting down and refuses new calls: the
 * stream ends with status OK once every open call has answered), `ended`
 * (trailers sent or the stream is gone).
 */
export class ExchangeStream {
  private phase: "open" | "draining" | "ended" = "open";
  /** The caller ended its side (END_STREAM): no call can follow. */
  private callerDone = false;
  private readonly calls = new Map<number, OpenCall>();
  private readonly reader: EnvelopeReader;
  /** Calls with results ready to write, in the order they became ready; written at the next microtask. */
  private ready: number[] = [];
  private flushing = false;
  /** Reading is paused until queued answers are sent. */
  private paused = false;
  private trailers: http2.OutgoingHttpHeaders = OK_TRAILERS;
  /** Why a call arriving while this node drains the stream is refused (UNAVAILABLE). */
  private refusal = "";
  private readonly peer: string | undefined;
  /** When the last call arrived (`performance.now()`), for the idle end. */
  private lastCall = performance.now();
  private idleTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly services: ServiceContext,
    readMaxBytes: number,
    private readonly stream: http2.ServerHttp2Stream,
    /** The stream's request headers: its credentials, checked again when the secrets change. */
    readonly headers: http2.IncomingHttpHeaders,
    private readonly registry: Set<ExchangeStream>,
    private readonly idleMs = 0,
  ) {
    const peer = headers[PEER_HEADER];
    this.peer = typeof peer === "string" ? peer : undefined;
    this.reader = new EnvelopeReader(readMaxBytes);
    stream.on("error", ignore);
    stream.on("close", () => this.closed());
    stream.on("wantTrailers", () => {
      stream.sendTrailers(this.trailers);
      // Ended by this side (an error, a drain) while the caller may still be
      // sending: tell it to stop, once the trailers are on their way (a reset
      // before them would drop the status).
      if (!this.callerDone) stopRequestAfterResponse(stream);
    });
    stream.respond(OK_HEADERS, { waitForTrailers: true });
    stream.on("data", (chunk: Buffer) => this.data(chunk));
    stream.on("end", () => {
      this.callerDone = true;
      if (this.phase === "ended") return;
      if (this.reader.pendingBytes > 0) {
        this.fail(Code.InvalidArgument, "protocol error: incomplete envelope");
        return;
      }
      this.phase = "draining";
      this.endIfDone();
    });
    stream.on("drain", () => this.resume());
    this.armIdle(idleMs);
  }

  /** Checks for idleness in `ms`: a stream with no call open for `idleMs` is ended with status OK. */
  private armIdle(ms: number): void {
    if (this.idleMs <= 0) return;
    this.idleTimer = setTimeout(this.checkIdle, ms);
    this.idleTimer.unref();
  }

  private readonly checkIdle = (): void => {
    if (this.phase !== "open") return;
    const quiet = performance.now() - this.lastCall;
    if (this.calls.size > 0 || quiet < this.idleMs) {
      this.armIdle(Math.max(this.idleMs - quiet, 1_000));
      return;
    }
    this.drain(`the Exchange stream was idle for ${this.idleMs} ms`);
  };

  /** The HTTP/2 session the stream is on (its TLS identity, for the secrets check). */
  get session(): http2.ServerHttp2Session | undefined {
    return this.stream.session as http2.ServerHttp2Session | undefined;
  }

  /**
   * This node ends the stream (it is shutting down, or the stream was idle):
   * calls that arrive from now on are answered UNAVAILABLE with `why`
   * (their caller asks another node, or opens a new stream), and the stream
   * ends with status OK once the open calls have answered.
   */
  drain(why = "the node is shutting down"): void {
    if (this.phase !== "open") return;
    this.phase = "draining";
    this.refusal = why;
    this.endIfDone();
  }

  /** Ends the stream with `code`: every open call is given up (the caller retries them elsewhere). */
  fail(code: Code, message: string): void {
    if (this.phase === "ended") return;
    this.phase = "ended";
    this.registry.delete(this);
    this.reader.clear();
    this.abortAll(new ConnectError(message, code));
    const stream = this.stream;
    if (stream.destroyed || stream.closed) return;
    this.trailers = statusTrailers(code, message);
    stream.end();
  }

  private data(chunk: Buffer): void {
    if (this.phase === "ended") return;
    try {
      this.reader.pushRange(chunk, this.message, this);
    } catch (error) {
      // A message announced over readMaxBytes.
      const failure = ConnectError.from(error, Code.ResourceExhausted);
      this.fail(failure.code, failure.rawMessage);
    }
  }

  private message(
    this: ExchangeStream,
    flags: number,
    bytes: Buffer,
    start: number,
    end: number,
  ): void {
    if (this.phase === "ended") return;
    this.lastCall = performance.now();
    if (flags !== 0) {
      this.fail(Code.Internal, `unexpected message flags ${flags}`);
      return;
    }
    let id: number;
    let field: number;
    let body: Uint8Array;
    try {
      ({ id, field, body } = readExchangeRequest(bytes.subarray(start, end)));
    } catch (error) {
      this.fail(Code.InvalidArgument, errorMessage(error));
      return;
    }
    if (field === EXCHANGE_CANCEL) {
      this.cancel(id);
      return;
    }
    if (this.calls.has(id)) {
      // Answers to two calls of one id could not be told apart.
      this.fail(Code.InvalidArgument, `call id ${id} is already open on this stream`);
      return;
    }
    if (this.phase === "draining") {
      this.endCall(id, Code.Unavailable, this.refusal);
      return;
    }
    if (this.calls.size >= MAX_EXCHANGE_CALLS) {
      this.write(
        encodeExchangeEnd(id, {
          code: Code.ResourceExhausted,
          message: `overloaded: ${MAX_EXCHANGE_CALLS} calls already open on this Exchange stream`,
        }),
      );
      return;
    }
    if (field === EXCHANGE_FETCH_MANY) this.fetchMany(id, body);
    else this.storeMany(id, body);
  }

  private fetchMany(id: number, body: Uint8Array): void {
    let request: FetchManyRequestFields;
    try {
      request = readFetchManyRequest(body);
    } catch (error) {
      this.endCall(id, Code.Internal, `parse binary: ${errorMessage(error)}`);
      return;
    }
    const call: OpenCall = { run: undefined, controller: undefined };
    try {
      // Results settle in later microtasks: the call is registered before any.
      call.run = new FetchManyRun(
        this.services,
        request,
        this.peer,
        () => this.signalOf(call),
        () => this.readied(id),
      );
      this.calls.set(id, call);
    } catch (error) {
      const failure = ConnectError.from(error, Code.Internal);
      this.endCall(id, failure.code, failure.rawMessage);
    }
  }

  private storeMany(id: number, body: Uint8Array): void {
    let request: StoreManyRequestFields;
    try {
      request = readStoreManyRequest(body);
    } catch (error) {
      this.endCall(id, Code.Internal, `parse binary: ${errorMessage(error)}`);
      return;
    }
    // Counted in flight like the StoreMany call it stands for.
    const admission = this.services.admission;
    const refused = admission?.chargeKeys(1);
    if (refused !== undefined) {
      this.endCall(id, Code.ResourceExhausted, refused);
      return;
    }
    const call: OpenCall = { run: undefined, controller: undefined };
    this.calls.set(id, call);
    // Answered unless cancelled meanwhile (then the stores are kept, unanswered).
    const answer = (frame: () => Buffer): void => {
      admission?.releaseKeys(1);
      if (this.calls.get(id) !== call) return;
      this.calls.delete(id);
      this.write(frame());
      this.endIfDone();
    };
    storeMany(this.services, request, this.peer).then(
      (ahead) => answer(() => encodeStoreManyResponse(ahead, { id, field: 3, end: EXCHANGE_OK })),
      (error: unknown) => {
        const failure = ConnectError.from(error, Code.Internal);
        answer(() => encodeExchangeEnd(id, { code: failure.code, message: failure.rawMessage }));
      },
    );
  }

  /** The caller gave up on call `id`: its loads are released and it gets no further answer. */
  private cancel(id: number): void {
    const call = this.calls.get(id);
    if (call === undefined) return; // answered already
    this.calls.delete(id);
    call.controller?.abort(new ConnectError("the caller gave up on the call", Code.Canceled));
    this.endIfDone();
  }

  /** The signal of `call`'s loads, made on first use. */
  private signalOf(call: OpenCall): AbortSignal {
    if (call.controller === undefined) {
      call.controller = new AbortController();
      if (this.phase === "ended") call.controller.abort(callerLeft());
    }
    return call.controller.signal;
  }

  private abortAll(reason: ConnectError): void {
    for (const call of this.calls.values()) call.controller?.abort(reason);
  }

  private readied(id: number): void {
    this.ready.push(id);
    if (this.flushing) return;
    this.flushing = true;
    queueMicrotask(() => this.flush());
  }

  /** Writes the results that are ready, call by call; a call's last message carries its end. */
  private flush(): void {
    this.flushing = false;
    const ready = this.ready;
    this.ready = [];
    for (const id of ready) {
      const run = this.calls.get(id)?.run;
      if (run === undefined) continue; // written already (listed again) or given up
      while (run.pending) {
        const results = run.take();
        const last = run.finished;
        if (last) this.calls.delete(id);
        this.write(
          encodeFetchManyResponse(results, {
            id,
            field: EXCHANGE_FETCH_MANY,
            end: last ? EXCHANGE_OK : undefined,
          }),
        );
      }
    }
    this.endIfDone();
  }

  private endCall(id: number, code: Code, message: string): void {
    const end: ExchangeEndFields = { code, message };
    this.write(encodeExchangeEnd(id, end));
  }

  private write(frame: Buffer): void {
    const stream = this.stream;
    if (this.phase === "ended" || stream.destroyed || stream.closed) return;
    stream.write(frame);
    if (!this.paused && stream.writableLength > EXCHANGE_QUEUED_BYTES) {
      this.paused = true;
      stream.pause();
    }
  }

  private resume(): void {
    if (!this.paused) return;
    this.paused = false;
    this.stream.resume();
  }

  /** After the caller's end: ends the stream with status OK once every call has answered. */
  private endIfDone(): void {
    if (this.phase !== "draining" || this.calls.size > 0) return;
    this.phase = "ended";
    this.registry.delete(this);
    const stream = this.stream;
    if (stream.destroyed || stream.closed) return;
    stream.end();
  }

  private closed(): void {
    clearTimeout(this.idleTimer);
    this.registry.delete(this);
    if (this.phase === "ended") return;
    this.phase = "ended";
    this.reader.clear();
    this.abortAll(callerLeft());
  }
}

function callerLeft(): ConnectError {
  return new ConnectError("the caller left", Code.Canceled);
}
