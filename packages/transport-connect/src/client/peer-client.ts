// ConnectPeerClient, core's PeerClient for one other member: which PeerService
// method each call becomes, the circuit breaker around every call, and the
// batching of fetches and replication pushes.
import { setMaxListeners } from "node:events";
import { fromBinary } from "@bufbuild/protobuf";
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
  type Receiver,
  RemoteLoadError,
  type RemoveResult,
} from "@distcache/core";
import { baseUrl } from "../address.js";
import {
  FetchOutcome,
  type FetchResponse,
  PeerService,
  type Sender,
  StoreManyResponseSchema,
  type Stamp as WireStamp,
} from "../gen/distcache/peer/v1/peer_pb.js";
import {
  EXCHANGE_FETCH_MANY,
  EXCHANGE_STORE_MANY,
  type ExchangeSlot,
} from "../grpc/exchange-codec.js";
import { PEER_FETCH_MANY_PATH, PEER_STORE_MANY_PATH } from "../grpc/methods.js";
import {
  type DecodedFetchResult,
  decodeFetchManyResponse,
  encodeFetchManyRequest,
  encodeStoreManyRequest,
  SenderField,
} from "../grpc/peer-codec.js";
import { failuresFromWire, fromWire, toWire } from "../peer-wire.js";
import type { StreamDeadline } from "./call-deadline.js";
import {
  type BreakerTicket,
  CircuitBreaker,
  type CircuitBreakerOptions,
} from "./circuit-breaker.js";
import { PeerExchange } from "./exchange.js";
import { MethodFallback } from "./fallback.js";
import { type FetchBatch, FetchBatcher, type FetchBatcherOptions } from "./fetch-batcher.js";
import { PeerCalls, type PeerMethod } from "./peer-calls.js";
import { type PushBatch, PushBatcher } from "./push-batcher.js";
import { ServerStreamCall, StreamHeaders } from "./server-stream.js";

/** What a peer client needs from its pool, read per call so membership changes apply at once. */
export interface PeerClientContext {
  /** This node as a sender: its address and membership version. */
  sender(): Sender;
  /**
   * A peer answered that it has seen this node's stamps with epoch `epoch`
   * (from an earlier process of this node, or forged): this node's
   * incarnation moves past it (see core's `stamps.ts`).
   */
  advance(epoch: number): void;
  /** Milliseconds each call may take. */
  readonly timeoutMs: number;
  /** The circuit breaker's settings for this peer. */
  readonly breaker?: CircuitBreakerOptions | undefined;
  /** How fetches to this peer are batched (tests); defaults otherwise. */
  readonly batching?: FetchBatcherOptions | undefined;
  /**
   * Headers every call carries: this node's peer credentials
   * (`peerCallHeaders`, auth/peer-token.ts). A peer refuses an Exchange
   * stream whose `distcache-peer` header names no member.
   */
  readonly headers?: Readonly<Record<string, string>> | undefined;
  /**
   * TLS to the peer (`https://`): the CA to trust, and this node's
   * certificate and key to present for mutual TLS. `undefined`: h2c.
   */
  readonly tls?: PeerTls | undefined;
}

/** How a peer client dials a TLS peer. */
export interface PeerTls {
  readonly ca?: string | Buffer | undefined;
  readonly cert?: string | Buffer | undefined;
  readonly key?: string | Buffer | undefined;
}

const NO_FAILURES: PropagationResult = Object.freeze({ failed: Object.freeze([]) });

/** Added to two peer timeouts for a call the peer relays on (see `relayTimeoutMs`). */
const RELAY_MARGIN_MS = 250;

/**
 * A `FetchMany` lasts at most this many peer timeouts. Its deadline is the
 * peer timeout counted from the peer's last answer to any batch: keys queued
 * at a busy owner behind other keys of this node keep waiting while the
 * owner keeps answering (else a burst of cold keys times out there and is
 * loaded a second time here), and a peer that stops answering is given up
 * after one peer timeout, as before.
 */
const FETCH_MANY_MAX_TIMEOUTS = 10;

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
 * it is cheaper than `Fetch`), made as a plain gRPC {@link ServerStreamCall}
 * on the session, not through the Connect client. A load's replication
 * pushes are gathered the same way by a {@link PushBatcher} into `StoreMany`
 * calls, made the same plain way. A peer that lacks either method is sent
 * `Fetch` per key (`Store` per push) for a while (see {@link MethodFallback}).
 * A batch has the peer timeout and counts as one call for the breaker.
 * Writes (a Set's `Store`, `Invalidate`) are never batched.
 */
export class ConnectPeerClient implements PeerClient {
  readonly breaker: CircuitBreaker;
  /** Gathers this peer's fetches into batches; its stats count batches and keys sent. */
  readonly batcher: FetchBatcher;
  /** Calls made to this peer, by method and status code, and their durations (metrics). */
  readonly calls = new PeerCalls();
  private readonly pushes: PushBatcher;
  private readonly session: Http2SessionManager;
  private readonly client: Client<typeof PeerService>;
  private readonly fetchManyFallback = new MethodFallback();
  private readonly storeManyFallback = new MethodFallback();
  private readonly exchangeFallback = new MethodFallback();
  /** The long-lived stream that carries this node's FetchMany and StoreMany calls to the peer. */
  private readonly exchange: PeerExchange;
  /** `performance.now()` of the peer's last `FetchMany` answer or request to this node: it is alive and working. */
  private lastProgress = 0;
  /** This node's credentials, sent with every call. */
  private readonly headers: Readonly<Record<string, string>>;
  /** Every `FetchMany`'s deadline reads progress through this one function, not one made per batch. */
  private readonly progress = (): number => this.lastProgress;
  /** The request headers of every `FetchMany` and every `StoreMany` (their deadlines differ). */
  private readonly fetchHeaders: StreamHeaders;
  private readonly pushHeaders: StreamHeaders;
  /** This node's `sender` field, encoded once per membership. */
  private readonly senderField = new SenderField();

  constructor(
    readonly id: string,
    private readonly context: PeerClientContext,
  ) {
    const tls = context.tls;
    const url = baseUrl(id, tls !== undefined);
    // Keep the session across short quiet periods (closed after 1 min idle,
    // before the server's 2-min idle GOAWAY); ping so a dead peer is noticed.
    this.session = new Http2SessionManager(
      url,
      { pingIntervalMs: 10_000, pingTimeoutMs: 5_000, idleConnectionTimeoutMs: 60_000 },
      tls === undefined
        ? undefined
        : withoutUndefined({ ca: tls.ca, cert: tls.cert, key: tls.key }),
    );
    this.headers = context.headers ?? {};
    const headers = this.headers;
    this.fetchHeaders = new StreamHeaders(context.timeoutMs * FETCH_MANY_MAX_TIMEOUTS, headers);
    this.pushHeaders = new StreamHeaders(context.timeoutMs, headers);
    this.exchange = new PeerExchange(this.session, new StreamHeaders(undefined, headers));
    this.client = createClient(
      PeerService,
      createGrpcTransport({
        baseUrl: url,
        sessionManager: this.session,
        // Every Connect call carries the credentials; ServerStreamCall adds them itself.
        interceptors: [
          (next) => (request) => {
            for (const name in headers) request.header.set(name, headers[name]!);
            return next(request);
          },
        ],
      }),
    );
    this.breaker = new CircuitBreaker(context.breaker);
    this.pushes = new PushBatcher((batch) => this.sendPushes(batch));
    this.batcher = new FetchBatcher((batch) => this.sendBatch(batch), context.batching);
  }

  get(group: string, key: string, options: PeerGetOptions): Promise<PeerValue | undefined> {
    // `cancel` first: reading `signal` would make an AbortController for it.
    return this.batcher.fetch(group, key, options.cacheOnly, options.cancel ?? options.signal);
  }

  getTo(
    group: string,
    key: string,
    options: PeerGetOptions,
    receiver: Receiver<PeerValue | undefined>,
  ): void {
    this.batcher.fetchTo(group, key, options.cacheOnly, receiver, options.cancel ?? options.signal);
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
      await this.pushes.push(group, key, value, options.stamp, options.signal);
      return NO_FAILURES;
    }
    const response = await this.call(
      "Store",
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
      // A forwarded Set waits for the owner's own pushes to its replicas.
      options.replicate ? this.relayTimeoutMs : undefined,
    );
    this.noteAhead(response.ahead);
    if (response.refused) {
      throw new Error(
        response.ahead === undefined
          ? "refused the write: it holds a later write of the key from this node, so it dropped its copy"
          : `refused the write: it has seen stamps of this node up to epoch ${response.ahead.epoch} ` +
              "(an earlier process of this node, or a forged stamp), so it dropped its copy; " +
              "this node's incarnation moved past it",
      );
    }
    return { failed: failuresFromWire(response.failed) };
  }

  async remove(group: string, key: string, options: PeerRemoveOptions = {}): Promise<RemoveResult> {
    // Always tried: a node the breaker wrongly thinks dead (just restarted,
    // or briefly stalled) must not keep serving a deleted value.
    const response = await this.call(
      "Invalidate",
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
      // The owner's answer to a fan-out waits for its own calls to the others.
      options.fanOut === true ? this.relayTimeoutMs : undefined,
    );
    this.noteAhead(response.ahead);
    return { stamp: fromWire(response.stamp), failed: failuresFromWire(response.failed) };
  }

  /**
   * The highest epoch this peer has seen in this node's stamps (0: none),
   * asked once when this node starts. Rejects when the peer cannot answer
   * (down, or an older version without `Introduce`).
   */
  async introduce(signal?: AbortSignal): Promise<number> {
    // Not through the breaker: a peer that is still starting says nothing of its health.
    const response = await this.client.introduce(
      { sender: this.context.sender() },
      { signal, timeoutMs: this.context.timeoutMs },
    );
    const seen = Number(response.epochSeen);
    if (seen > 0) this.context.advance(seen);
    return seen;
  }

  /**
   * Milliseconds a call that the peer relays on may take: a fan-out
   * Invalidate or a forwarded Set makes the owner call the other members,
   * each bounded by its own peer timeout, before it answers. Two timeouts
   * and a margin, so one slow member is reported by the owner in its answer
   * instead of making the owner look failed.
   */
  private get relayTimeoutMs(): number {
    return this.context.timeoutMs * 2 + RELAY_MARGIN_MS;
  }

  /** A peer's `ahead` stamp: this node's incarnation moves past it. */
  private noteAhead(ahead: WireStamp | undefined): void {
    const stamp = fromWire(ahead);
    if (stamp !== undefined) this.context.advance(stamp.epoch);
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
    this.exchange.close();
    this.session.abort();
  }

  /**
   * Makes one FetchMany or StoreMany call (`field` says which): on the
   * Exchange stream, or as a call of its own (`path`) to a peer without
   * Exchange. `encode` writes the request, into an Exchange slot when given
   * one; `onMessage` gets each answer message. Rejects as
   * {@link ServerStreamCall.run} does.
   */
  private async exchangeOrCall(
    field: number,
    path: string,
    encode: (slot?: ExchangeSlot) => Buffer,
    deadline: StreamDeadline,
    signal: AbortSignal | undefined,
    onMessage: (message: Uint8Array) => void,
    headers: StreamHeaders,
  ): Promise<void> {
    if (!this.exchangeFallback.active()) {
      let answered = false;
      try {
        await this.exchange.call(
          (id) => encode({ id, field }),
          deadline,
          signal,
          (_, body) => {
            answered = true;
            onMessage(body);
          },
        );
        return;
      } catch (error) {
        // A peer of an older version refuses the stream: its own calls, then.
        if (answered || !this.exchangeFallback.lacks(error)) throw error;
      }
    }
    const call = headers.current();
    await ServerStreamCall.run(this.session, path, encode(), deadline, signal, onMessage, call);
  }

  /** Sends one batch: `FetchMany`, or `Fetch` per key to a peer without `FetchMany`. */
  private async sendBatch(batch: FetchBatch): Promise<void> {
    if (this.fetchManyFallback.active()) {
      await this.fetchEach(batch);
      return;
    }
    const ticket = this.admit();
    // A receiver answers each distinct key once (peer.proto): a key queued
    // twice (a flight forgotten by a delete, then started again) is asked once.
    const asked = distinctKeys(batch.keys);
    let answered = 0;
    const started = performance.now();
    try {
      const sender = this.senderField.of(this.context.sender());
      const onResult = (result: DecodedFetchResult): void => {
        this.deliver(batch, asked, result);
        answered++;
      };
      await this.exchangeOrCall(
        EXCHANGE_FETCH_MANY,
        PEER_FETCH_MANY_PATH,
        (slot) => encodeFetchManyRequest(sender, batch.group, asked.keys, batch.cacheOnly, slot),
        {
          timeoutMs: this.context.timeoutMs,
          progress: this.progress,
          maxMs: this.context.timeoutMs * FETCH_MANY_MAX_TIMEOUTS,
        },
        batch.signal,
        (message) => {
          this.lastProgress = performance.now();
          decodeFetchManyResponse(message, onResult);
        },
        this.fetchHeaders,
      );
    } catch (error) {
      this.calls.record("FetchMany", (performance.now() - started) / 1_000, error);
      if (answered === 0 && this.fetchManyFallback.lacks(error)) {
        // A peer of an older version: it answers, one key per call.
        ticket.succeeded();
        await this.fetchEach(batch);
        return;
      }
      // Keys already answered show the peer is up, whatever cut the rest.
      if (answered > 0) ticket.succeeded();
      else report(ticket, error, batch.signal);
      throw error;
    }
    this.calls.record("FetchMany", (performance.now() - started) / 1_000);
    ticket.succeeded();
  }

  /** Reports one `FetchMany` result to the batch: to every position of its key. */
  private deliver(batch: FetchBatch, asked: AskedKeys, result: DecodedFetchResult): void {
    const key = asked.keys[result.index];
    if (key === undefined) {
      throw new ConnectError(
        `peer ${this.id} answered FetchMany with index ${result.index} for ${asked.keys.length} keys`,
        Code.Internal,
      );
    }
    const positions = asked.positions?.[result.index];
    if (positions === undefined) {
      this.settleKey(batch, result.index, key, result);
      return;
    }
    for (const position of positions) this.settleKey(batch, position, key, result);
  }

  private settleKey(
    batch: FetchBatch,
    index: number,
    key: string,
    result: DecodedFetchResult,
  ): void {
    try {
      // A copy: the value must not keep the network buffer it arrived in alive.
      const value = this.outcome(key, result, new Uint8Array(result.data));
      batch.resolve(index, value);
    } catch (error) {
      batch.reject(index, error);
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
          const response = await this.call("Fetch", { signal }, (callOptions) =>
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
    answer: FetchResponse | DecodedFetchResult,
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

  /**
   * Sends one batch of replication pushes (a lone push too): `StoreMany`, or
   * `Store` per push to a peer without `StoreMany`. One call through the
   * breaker; while it is open the pushes are skipped, as single pushes are.
   */
  private async sendPushes(batch: PushBatch): Promise<void> {
    if (this.storeManyFallback.active()) {
      await this.pushEach(batch);
      return;
    }
    // Each value is copied once, from the cache's page into the request frame.
    const sender = this.senderField.of(this.context.sender());
    try {
      await this.call("StoreMany", undefined, ({ timeoutMs }) =>
        this.exchangeOrCall(
          EXCHANGE_STORE_MANY,
          PEER_STORE_MANY_PATH,
          (slot) => encodeStoreManyRequest(sender, batch.queue, batch.items, slot),
          { timeoutMs },
          // No caller can cancel a push: only the peer timeout bounds it.
          undefined,
          // Empty unless the peer has seen a later epoch of this node's stamps.
          (message) => {
            if (message.byteLength > 0) {
              this.noteAhead(fromBinary(StoreManyResponseSchema, message).ahead);
            }
          },
          this.pushHeaders,
        ),
      );
    } catch (error) {
      if (this.storeManyFallback.lacks(error)) {
        await this.pushEach(batch);
        return;
      }
      throw error;
    }
    for (let index = 0; index < batch.items.length; index++) batch.resolve(index, undefined);
  }

  /** Each push of `batch` with its own `Store`, all at once. */
  private async pushEach(batch: PushBatch): Promise<void> {
    const group = batch.queue;
    await Promise.all(
      batch.items.map(async (push, index) => {
        try {
          const response = await this.call("Store", undefined, (callOptions) =>
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
          this.noteAhead(response.ahead);
          batch.resolve(index, undefined);
        } catch (error) {
          batch.reject(index, error);
        }
      }),
    );
  }

  /**
   * Runs one RPC through the breaker and reports how it went. `mustTry`
   * calls (writes) go out even while the breaker is open.
   */
  private async call<T>(
    method: PeerMethod,
    options: PeerCallOptions | undefined,
    rpc: (callOptions: { signal?: AbortSignal | undefined; timeoutMs: number }) => Promise<T>,
    mustTry = false,
    timeoutMs: number = this.context.timeoutMs,
  ): Promise<T> {
    const ticket = mustTry ? this.breaker.admitAlways() : this.admit();
    const started = performance.now();
    try {
      const result = await rpc({ signal: options?.signal, timeoutMs });
      this.calls.record(method, (performance.now() - started) / 1_000);
      ticket.succeeded();
      return result;
    } catch (error) {
      this.calls.record(method, (performance.now() - started) / 1_000, error);
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

/** A batch's keys as asked: each once, and where each sits in the batch when some repeat. */
interface AskedKeys {
  readonly keys: string[];
  /** Per asked key, its positions in the batch; `undefined` when no key repeats. */
  readonly positions: number[][] | undefined;
}

function distinctKeys(keys: readonly string[]): AskedKeys {
  const first = new Map<string, number>();
  let repeated = false;
  for (const key of keys) {
    if (first.has(key)) repeated = true;
    else first.set(key, first.size);
  }
  if (!repeated) return { keys: keys as string[], positions: undefined };
  const positions: number[][] = Array.from({ length: first.size }, () => []);
  keys.forEach((key, position) => {
    positions[first.get(key)!]!.push(position);
  });
  return { keys: [...first.keys()], positions };
}

/** Tells the breaker how a failed call ended: abandoned by its callers, answered, or unreachable. */
function report(ticket: BreakerTicket, error: unknown, signal: AbortSignal | undefined): void {
  if (signal?.aborted) ticket.abandoned();
  else if (error instanceof ConnectError && !UNREACHABLE.has(error.code)) ticket.succeeded();
  else ticket.failed();
}

/** `options` without the keys whose value is `undefined` (Node's TLS options reject some). */
function withoutUndefined<T extends object>(options: T): Partial<T> {
  return Object.fromEntries(
    Object.entries(options).filter(([, v]) => v !== undefined),
  ) as Partial<T>;
}
