import { setMaxListeners } from "node:events";
import * as http2 from "node:http2";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { type Client, Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport, Http2SessionManager } from "@connectrpc/connect-node";
import {
  NotFoundError,
  type PeerCallOptions,
  type PeerClient,
  type PeerGetOptions,
  type PeerRemoveOptions,
  type PeerStoreOptions,
  type PeerValue,
  type PropagationResult,
  RemoteLoadError,
  type RemoveResult,
  type Stamp,
} from "@distcache/core";
import { baseUrl } from "./address.js";
import {
  type BreakerTicket,
  CircuitBreaker,
  type CircuitBreakerOptions,
} from "./circuit-breaker.js";
import {
  type Batch,
  Batcher,
  type FetchBatch,
  FetchBatcher,
  type FetchBatcherOptions,
} from "./fetch-batcher.js";
import {
  FetchManyRequestSchema,
  FetchManyResponseSchema,
  FetchOutcome,
  type FetchResponse,
  type FetchResult,
  PeerService,
  type Sender,
  SenderSchema,
  StoreManyRequestSchema,
} from "./gen/distcache/peer/v1/peer_pb.js";
import { fromWire, toWire } from "./stamp-wire.js";

/** What a peer client needs from its pool, read per call so membership changes apply at once. */
export interface PeerClientContext {
  /** This node as a sender: its address and membership version. */
  sender(): Sender;
  /** Milliseconds each call may take. */
  readonly timeoutMs: number;
  /** The circuit breaker's settings for this peer. */
  readonly breaker?: CircuitBreakerOptions | undefined;
  /** How fetches to this peer are batched (tests); defaults otherwise. */
  readonly batching?: FetchBatcherOptions | undefined;
}

/** A load's replication push, waiting for its batch. */
interface Push {
  readonly key: string;
  readonly value: Uint8Array;
  readonly stamp: Stamp | undefined;
}

/** Most pushes in one `StoreMany` (the receiver takes up to 1024). */
const MAX_BATCH_PUSHES = 256;
/**
 * Most bytes of keys and values in one `StoreMany`: half the receiver's
 * default read limit (1 MiB of value + 1 KiB of key + 1 KiB), so a batch is
 * never refused for its size where a single `Store` of each would pass. A
 * push larger than this goes alone.
 */
const MAX_BATCH_PUSH_BYTES = 512 << 10;
/** Bytes counted per push for its framing and stamp. */
const PUSH_OVERHEAD_BYTES = 32;
/** Most pushes unanswered at one peer; more wait for room (bounds memory, not latency). */
const MAX_PUSHES_IN_FLIGHT = 4_096;
const NO_FAILURES: PropagationResult = Object.freeze({ failed: Object.freeze([]) });

/**
 * How long a peer that answered `FetchMany` (or `StoreMany`) with
 * UNIMPLEMENTED (a node of an older version) is sent one `Fetch` per key (one
 * `Store` per push) before batching is tried again:
 * long enough not to pay a refused call per turn, short enough to pick up
 * the peer once it is upgraded.
 */
const UNBATCHED_RETRY_MS = 60_000;

/** Codes that say the peer could not be reached or did not answer in time. */
const UNREACHABLE = new Set([
  Code.Unavailable,
  Code.DeadlineExceeded,
  Code.ResourceExhausted,
  Code.Internal,
  Code.Unknown,
]);

/**
 * One other member, reached over `distcache.peer.v1.PeerService` on a single
 * HTTP/2 session that every call reuses. A {@link CircuitBreaker} remembers
 * a peer that stopped answering: while it is open, calls fail at once with
 * UNAVAILABLE (and the group moves on to replicas) instead of each waiting
 * for a connection failure or the timeout.
 *
 * Fetches go through a {@link FetchBatcher}: the keys asked of this peer
 * during one event-loop turn leave as one `FetchMany` call (a lone key too:
 * it is cheaper than `Fetch`), made as plain gRPC on the session (see
 * `serverStream`), not through the Connect client; `Fetch` is only sent to a
 * peer that does not know `FetchMany`. A load's replication pushes are gathered the
 * same way into `StoreMany` calls, made the same plain way. A batch has
 * the peer timeout and counts as one call for the breaker. Writes (a Set's
 * `Store`, `Invalidate`) are never batched.
 */
export class ConnectPeerClient implements PeerClient {
  readonly breaker: CircuitBreaker;
  /** Gathers this peer's fetches into batches; its stats count batches and keys sent. */
  readonly batcher: FetchBatcher;
  private readonly session: Http2SessionManager;
  private readonly client: Client<typeof PeerService>;
  /** `performance.now()` before which this peer gets no `FetchMany` (it did not know the method). */
  private unbatchedUntil = 0;
  /** `performance.now()` of the peer's last `FetchMany` answer or request to this node: it is alive and working. */
  private lastProgress = 0;
  /** Gathers this peer's replication pushes into `StoreMany` calls. */
  private readonly pushes: Batcher<Push, void>;
  /** `performance.now()` before which this peer gets no `StoreMany` (it did not know the method). */
  private pushesUnbatchedUntil = 0;

  constructor(
    readonly id: string,
    private readonly context: PeerClientContext,
  ) {
    const url = baseUrl(id);
    // Keep the session across quiet periods; ping so a dead peer is noticed.
    this.session = new Http2SessionManager(url, {
      pingIntervalMs: 10_000,
      pingTimeoutMs: 5_000,
      idleConnectionTimeoutMs: 5 * 60_000,
    });
    this.client = createClient(
      PeerService,
      createGrpcTransport({ baseUrl: url, sessionManager: this.session }),
    );
    this.breaker = new CircuitBreaker(context.breaker);
    this.pushes = new Batcher<Push, void>(
      (batch) => this.sendPushes(batch),
      (push) => push.key.length * 3 + push.value.byteLength + PUSH_OVERHEAD_BYTES,
      {
        maxItems: MAX_BATCH_PUSHES,
        maxWeight: MAX_BATCH_PUSH_BYTES,
        maxInFlight: MAX_PUSHES_IN_FLIGHT,
      },
    );
    this.batcher = new FetchBatcher((batch) => this.sendBatch(batch), context.batching);
  }

  get(group: string, key: string, options: PeerGetOptions): Promise<PeerValue | undefined> {
    return this.batcher.fetch(group, key, options.cacheOnly, options.signal);
  }

  /** Sends one batch: `FetchMany`, or `Fetch` per key to a peer without `FetchMany`. */
  private async sendBatch(batch: FetchBatch): Promise<void> {
    if (performance.now() < this.unbatchedUntil) {
      await this.fetchEach(batch);
      return;
    }
    const ticket = this.admit();
    let answered = 0;
    try {
      const request = {
        sender: this.context.sender(),
        group: batch.group,
        keys: batch.keys as string[],
        cacheOnly: batch.cacheOnly,
      };
      await serverStream(
        this.session,
        FETCH_MANY_PATH,
        toBinary(FetchManyRequestSchema, create(FetchManyRequestSchema, request)),
        {
          timeoutMs: this.context.timeoutMs,
          progress: () => this.lastProgress,
          maxMs: this.context.timeoutMs * FETCH_MANY_MAX_TIMEOUTS,
        },
        batch.signal,
        (message) => {
          this.lastProgress = performance.now();
          for (const result of fromBinary(FetchManyResponseSchema, message).results) {
            this.deliver(batch, result);
            answered++;
          }
        },
      );
    } catch (error) {
      if (answered === 0 && error instanceof ConnectError && error.code === Code.Unimplemented) {
        // A peer of an older version: it answers, one key per call.
        ticket.succeeded();
        this.unbatchedUntil = performance.now() + UNBATCHED_RETRY_MS;
        await this.fetchEach(batch);
        return;
      }
      // Keys already answered show the peer is up, whatever cut the rest.
      if (answered > 0) ticket.succeeded();
      else report(ticket, error, batch.signal);
      throw error;
    }
    ticket.succeeded();
  }

  /**
   * Sends one batch of replication pushes (a lone push too): `StoreMany`, or
   * `Store` per push to a peer without `StoreMany`. One call through the breaker; while
   * it is open the pushes are skipped, as single pushes are.
   */
  private async sendPushes(batch: Batch<Push, void>): Promise<void> {
    const group = batch.queue;
    if (performance.now() < this.pushesUnbatchedUntil) {
      await this.pushEach(batch);
      return;
    }
    const request = toBinary(
      StoreManyRequestSchema,
      create(StoreManyRequestSchema, {
        sender: this.context.sender(),
        group,
        items: batch.items.map((push) => ({
          key: push.key,
          data: push.value,
          stamp: toWire(push.stamp),
        })),
      }),
    );
    try {
      // Unary on the wire is one response message then the status: the same
      // plain gRPC call as FetchMany's, whose answer (empty) needs no reading.
      await this.call(undefined, ({ timeoutMs }) =>
        serverStream(this.session, STORE_MANY_PATH, request, { timeoutMs }, NEVER, ignore),
      );
    } catch (error) {
      if (error instanceof ConnectError && error.code === Code.Unimplemented) {
        this.pushesUnbatchedUntil = performance.now() + UNBATCHED_RETRY_MS;
        await this.pushEach(batch);
        return;
      }
      throw error;
    }
    for (let index = 0; index < batch.items.length; index++) batch.resolve(index, undefined);
  }

  /** Each push of `batch` with its own `Store`, all at once. */
  private async pushEach(batch: Batch<Push, void>): Promise<void> {
    const group = batch.queue;
    await Promise.all(
      batch.items.map(async (push, index) => {
        try {
          await this.call(undefined, (callOptions) =>
            this.client.store(
              {
                sender: this.context.sender(),
                group,
                key: push.key,
                data: push.value,
                replicate: false,
                stamp: toWire(push.stamp),
                write: false,
              },
              callOptions,
            ),
          );
          batch.resolve(index, undefined);
        } catch (error) {
          batch.reject(index, error);
        }
      }),
    );
  }

  /** Reports one `FetchMany` result to the batch. */
  private deliver(batch: FetchBatch, result: FetchResult): void {
    const key = batch.keys[result.index];
    if (key === undefined) {
      throw new ConnectError(
        `peer ${this.id} answered FetchMany with index ${result.index} for ${batch.keys.length} keys`,
        Code.Internal,
      );
    }
    try {
      // A copy: the value must not keep the network buffer it arrived in alive.
      const value = this.outcome(key, result, new Uint8Array(result.data));
      batch.resolve(result.index, value);
    } catch (error) {
      batch.reject(result.index, error);
    }
  }

  /** Each key of `batch` with its own `Fetch`, all at once. */
  private async fetchEach(batch: FetchBatch): Promise<void> {
    const { group, cacheOnly, signal } = batch;
    // Every call listens on the batch's signal until it ends.
    setMaxListeners(batch.keys.length + 10, signal);
    await Promise.all(
      batch.keys.map(async (key, index) => {
        try {
          const response = await this.call({ signal }, (callOptions) =>
            this.client.fetch(
              { sender: this.context.sender(), group, key, cacheOnly },
              callOptions,
            ),
          );
          batch.resolve(index, this.outcome(key, response, response.data));
        } catch (error) {
          batch.reject(index, error);
        }
      }),
    );
  }

  /** A fetch outcome as `PeerClient.get` returns it: the value, `undefined`, or a thrown error. */
  private outcome(
    key: string,
    answer: FetchResponse | FetchResult,
    data: Uint8Array,
  ): PeerValue | undefined {
    switch (answer.outcome) {
      case FetchOutcome.FOUND:
        return { value: data, stamp: fromWire(answer.stamp) };
      case FetchOutcome.NOT_CACHED:
        return undefined;
      case FetchOutcome.NOT_FOUND:
        throw new NotFoundError(key, answer.error);
      case FetchOutcome.LOAD_FAILED:
        throw new RemoteLoadError(answer.error);
      default:
        throw new Error(`peer ${this.id} answered with an unknown fetch outcome ${answer.outcome}`);
    }
  }

  async store(
    group: string,
    key: string,
    value: Uint8Array,
    options: PeerStoreOptions,
  ): Promise<PropagationResult> {
    // A write must reach a live peer even while its breaker is open; a load's
    // push may be skipped (the replica just lacks a copy).
    const mustTry = options.write === true || options.replicate;
    if (!mustTry) {
      // A load's replication push: gathered with the other pushes to this peer.
      await this.pushes.add(group, { key, value, stamp: options.stamp }, options.signal);
      return NO_FAILURES;
    }
    const response = await this.call(
      options,
      (callOptions) =>
        this.client.store(
          {
            sender: this.context.sender(),
            group,
            key,
            data: value,
            replicate: options.replicate,
            stamp: toWire(options.stamp),
            write: options.write ?? false,
          },
          callOptions,
        ),
      mustTry,
    );
    return { failed: response.failed.map((f) => ({ peer: f.address, reason: f.reason })) };
  }

  async remove(group: string, key: string, options: PeerRemoveOptions = {}): Promise<RemoveResult> {
    // Always tried: a node the breaker wrongly thinks dead (just restarted,
    // or briefly stalled) must not keep serving a deleted value.
    const response = await this.call(
      options,
      (callOptions) =>
        this.client.invalidate(
          {
            sender: this.context.sender(),
            group,
            key,
            stamp: toWire(options.stamp),
            fanOut: options.fanOut ?? false,
          },
          callOptions,
        ),
      true,
    );
    return {
      stamp: fromWire(response.stamp),
      failed: response.failed.map((f) => ({ peer: f.address, reason: f.reason })),
    };
  }

  /**
   * The peer was heard from (a peer request from it arrived): batches waiting
   * on it count this as progress, as they count its answers. A busy owner
   * pushes copies to this node before it answers this node's fetches.
   */
  heard(): void {
    this.lastProgress = performance.now();
  }

  /** Closes the session; calls in flight fail. */
  close(): void {
    this.session.abort();
  }

  /**
   * Runs one RPC through the breaker and reports how it went. `mustTry`
   * calls (writes) go out even while the breaker is open.
   */
  private async call<T>(
    options: PeerCallOptions | undefined,
    rpc: (callOptions: { signal?: AbortSignal | undefined; timeoutMs: number }) => Promise<T>,
    mustTry = false,
  ): Promise<T> {
    const ticket = mustTry ? this.breaker.admitAlways() : this.admit();
    try {
      const result = await rpc({ signal: options?.signal, timeoutMs: this.context.timeoutMs });
      ticket.succeeded();
      return result;
    } catch (error) {
      report(ticket, error, options?.signal);
      throw error;
    }
  }

  /** A breaker ticket for one call, or UNAVAILABLE at once while the breaker is open. */
  private admit(): BreakerTicket {
    const ticket = this.breaker.admit();
    if (ticket === undefined) {
      throw new ConnectError(
        `peer ${this.id} is unavailable: its circuit breaker is open (next probe in ${this.breaker.retryInMs()} ms)`,
        Code.Unavailable,
      );
    }
    return ticket;
  }
}

/** Tells the breaker how a failed call ended: abandoned by its callers, answered, or unreachable. */
function report(ticket: BreakerTicket, error: unknown, signal: AbortSignal | undefined): void {
  if (signal?.aborted) ticket.abandoned();
  else if (error instanceof ConnectError && !UNREACHABLE.has(error.code)) ticket.succeeded();
  else ticket.failed();
}

/** The gRPC path of `PeerService.FetchMany`. */
const FETCH_MANY_PATH = "/distcache.peer.v1.PeerService/FetchMany";
/** The gRPC path of `PeerService.StoreMany`. */
const STORE_MANY_PATH = "/distcache.peer.v1.PeerService/StoreMany";
/**
 * A `FetchMany` lasts at most this many peer timeouts. Its deadline is the
 * peer timeout counted from the peer's last answer to any batch: keys queued
 * at a busy owner behind other keys of this node keep waiting while the
 * owner keeps answering (else a burst of cold keys times out there and is
 * loaded a second time here), and a peer that stops answering is given up
 * after one peer timeout, as before.
 */
const FETCH_MANY_MAX_TIMEOUTS = 10;
/** A signal for calls no caller can cancel (pushes: bounded by the peer timeout only). */
const NEVER = new AbortController().signal;
function ignore(): void {}
/** Largest response message accepted from a peer (a server sends ~1 MiB, plus one value). */
const MAX_RESPONSE_MESSAGE_BYTES = 32 << 20;
const { NGHTTP2_CANCEL, NGHTTP2_NO_ERROR, NGHTTP2_REFUSED_STREAM, NGHTTP2_ENHANCE_YOUR_CALM } =
  http2.constants;
const STREAM_HEADERS: http2.OutgoingHttpHeaders = {
  "content-type": "application/grpc+proto",
  te: "trailers",
  "user-agent": "distcache-peer",
};

/** When a {@link serverStream} call gives up. */
interface StreamDeadline {
  /** The call fails with DEADLINE_EXCEEDED when the peer shows no progress for this long (ms). */
  readonly timeoutMs: number;
  /**
   * When the peer last showed progress (`performance.now()`), e.g. answered
   * any key of any batch: the quiet time counts from the later of this and
   * the call's start. Without it, the call has `timeoutMs` in all.
   */
  readonly progress?: (() => number) | undefined;
  /** Bound on the whole call (ms), also sent as `grpc-timeout`. Default `timeoutMs`. */
  readonly maxMs?: number | undefined;
}

/**
 * One server-streaming gRPC call over `session`, without Connect's per-call
 * machinery: a batch's answers arrive as a few messages, and the Connect
 * client's per-call cost (async-iterator pipelines, web `Headers`, abort
 * controllers and errors made on every normal close) was a fifth of a
 * forwarding node's CPU (docs/benchmarks.md). gRPC over HTTP/2 as specified:
 * a POST with `te: trailers` and `grpc-timeout`, one length-prefixed request
 * message, response messages until the trailers, whose `grpc-status` ends
 * the call.
 *
 * Calls `onMessage` with each response message (its bytes are only valid
 * during the call). Resolves when the call ends with status OK; rejects with
 * a {@link ConnectError}: the server's status, DEADLINE_EXCEEDED past
 * `deadline`, CANCELED when `signal` aborts, UNAVAILABLE when the peer
 * cannot be reached or the connection breaks, INTERNAL for a malformed
 * answer.
 */
function serverStream(
  session: Http2SessionManager,
  path: string,
  request: Uint8Array,
  deadline: StreamDeadline,
  signal: AbortSignal,
  onMessage: (message: Uint8Array) => void,
): Promise<void> {
  if (signal.aborted) return Promise.reject(cancelled(signal));
  const frame = Buffer.allocUnsafe(5 + request.byteLength);
  frame[0] = 0;
  frame.writeUInt32BE(request.byteLength, 1);
  frame.set(request, 5);
  const { timeoutMs, progress } = deadline;
  const maxMs = deadline.maxMs ?? timeoutMs;
  const headers = { ...STREAM_HEADERS, "grpc-timeout": `${Math.max(1, Math.ceil(maxMs))}m` };
  const started = performance.now();
  return new Promise<void>((resolve, reject) => {
    let stream: http2.ClientHttp2Stream | undefined;
    let done = false;
    const finish = (error?: ConnectError) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      signal.removeEventListener("abort", onAbort);
      if (stream !== undefined && !stream.closed) stream.close(NGHTTP2_CANCEL);
      if (error === undefined) resolve();
      else reject(error);
    };
    // The deadline runs from the call, connecting included, as Connect's does;
    // with `progress`, it runs from the peer's last sign of progress instead.
    let graced = false;
    const expire = (): void => {
      if (done) return;
      const now = performance.now();
      const left = started + maxMs - now;
      const quiet = now - Math.max(started, progress?.() ?? started);
      if (left <= 0 || quiet >= timeoutMs) {
        if (!graced) {
          // Timers run before I/O in a loop turn: after a busy turn, answers
          // that came meanwhile are still unread. Read them, then decide.
          graced = true;
          setImmediate(expire);
          return;
        }
        const text =
          left <= 0
            ? `no answer within ${maxMs} ms`
            : `no answer from the peer for ${timeoutMs} ms`;
        finish(new ConnectError(text, Code.DeadlineExceeded));
        return;
      }
      graced = false;
      timer = setTimeout(expire, Math.min(timeoutMs - quiet, left));
    };
    let timer = setTimeout(expire, Math.min(timeoutMs, maxMs));
    const onAbort = () => finish(cancelled(signal));
    signal.addEventListener("abort", onAbort, { once: true });
    session.request("POST", path, headers, {}).then(
      (opened) => {
        stream = opened;
        if (done) {
          opened.close(NGHTTP2_CANCEL);
          return;
        }
        let status: number | undefined;
        /** Response headers that carry `grpc-status`: a trailers-only answer. */
        let trailers: http2.IncomingHttpHeaders | undefined;
        let failure: Error | undefined;
        let pending: Buffer | undefined;
        opened.on("response", (head) => {
          status = Number(head[":status"]);
          if (status !== 200) {
            finish(new ConnectError(`peer answered HTTP ${status}`, codeOfHttpStatus(status)));
            return;
          }
          const type = head["content-type"];
          if (typeof type !== "string" || !type.startsWith("application/grpc")) {
            finish(new ConnectError(`peer answered content-type ${type}`, Code.Internal));
            return;
          }
          if (head["grpc-status"] !== undefined) trailers = head;
        });
        opened.on("trailers", (tail) => {
          trailers = tail;
        });
        opened.on("data", (chunk: Buffer) => {
          if (done) return;
          session.notifyResponseByteRead(opened);
          let buffer = pending === undefined ? chunk : Buffer.concat([pending, chunk]);
          try {
            while (buffer.byteLength >= 5) {
              const flags = buffer[0]!;
              const length = buffer.readUInt32BE(1);
              if (flags !== 0) {
                throw new ConnectError(`peer sent message flags ${flags}`, Code.Internal);
              }
              if (length > MAX_RESPONSE_MESSAGE_BYTES) {
                throw new ConnectError(
                  `peer sent a message of ${length} bytes, over ${MAX_RESPONSE_MESSAGE_BYTES}`,
                  Code.ResourceExhausted,
                );
              }
              if (buffer.byteLength < 5 + length) break;
              onMessage(new Uint8Array(buffer.buffer, buffer.byteOffset + 5, length));
              buffer = buffer.subarray(5 + length);
            }
          } catch (error) {
            finish(ConnectError.from(error, Code.Internal));
            return;
          }
          pending = buffer.byteLength === 0 ? undefined : buffer;
        });
        // A reset or a broken connection; "close" follows and reports it.
        opened.on("error", (error: Error) => {
          failure = error;
        });
        opened.on("close", () => {
          if (done) return;
          if (trailers !== undefined) {
            const code = Number(trailers["grpc-status"]);
            if (code === 0) {
              finish(
                pending === undefined
                  ? undefined
                  : new ConnectError("peer ended the call inside a message", Code.Internal),
              );
              return;
            }
            const text = trailers["grpc-message"];
            finish(
              new ConnectError(
                typeof text === "string" ? decodeMessage(text) : `peer answered status ${code}`,
                Number.isInteger(code) && code > 0 && code <= 16 ? (code as Code) : Code.Unknown,
              ),
            );
            return;
          }
          finish(closedWithout(opened.rstCode, failure));
        });
        opened.end(frame);
      },
      (error: unknown) => finish(unreachable(error)),
    );
  });
}

/** The error of a call whose stream closed before its status arrived. */
function closedWithout(rstCode: number | undefined, failure: Error | undefined): ConnectError {
  // A reset by the peer is reported by its code; a broken connection by its error.
  const reset = (failure as { code?: string } | undefined)?.code === "ERR_HTTP2_STREAM_ERROR";
  if (failure !== undefined && !reset) return unreachable(failure);
  const code = rstCode ?? NGHTTP2_NO_ERROR;
  const text = `peer closed the stream (HTTP/2 code ${code}) without a status`;
  switch (code) {
    case NGHTTP2_REFUSED_STREAM:
      return new ConnectError(text, Code.Unavailable);
    case NGHTTP2_CANCEL:
      return new ConnectError(text, Code.Canceled);
    case NGHTTP2_ENHANCE_YOUR_CALM:
      return new ConnectError(text, Code.ResourceExhausted);
    default:
      return new ConnectError(text, Code.Internal);
  }
}

/** A failure to reach the peer (connect, session lost) as UNAVAILABLE; a ConnectError as it is. */
function unreachable(error: unknown): ConnectError {
  if (error instanceof ConnectError) return error;
  const text = error instanceof Error ? error.message : String(error);
  return new ConnectError(text, Code.Unavailable, undefined, undefined, error);
}

function cancelled(signal: AbortSignal): ConnectError {
  return ConnectError.from(signal.reason, Code.Canceled);
}

/** gRPC's mapping of an HTTP status that is not 200 (doc/http-grpc-status-mapping.md). */
function codeOfHttpStatus(status: number): Code {
  switch (status) {
    case 400:
      return Code.Internal;
    case 401:
      return Code.Unauthenticated;
    case 403:
      return Code.PermissionDenied;
    case 404:
      return Code.Unimplemented;
    case 429:
    case 502:
    case 503:
    case 504:
      return Code.Unavailable;
    default:
      return Code.Unknown;
  }
}

/** `grpc-message` is percent-encoded. */
function decodeMessage(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}

/** A sender message for `address` at `version`. */
export function makeSender(address: string, version: bigint): Sender {
  return create(SenderSchema, { address, membershipVersion: version });
}
