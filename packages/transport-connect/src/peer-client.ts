import { create } from "@bufbuild/protobuf";
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
  FetchOutcome,
  PeerService,
  type Sender,
  SenderSchema,
  StampSchema,
  type Stamp as WireStamp,
} from "./gen/distcache/peer/v1/peer_pb.js";

/** What a peer client needs from its pool, read per call so membership changes apply at once. */
export interface PeerClientContext {
  /** This node as a sender: its address and membership version. */
  sender(): Sender;
  /** Milliseconds each call may take. */
  readonly timeoutMs: number;
  /** The circuit breaker's settings for this peer. */
  readonly breaker?: CircuitBreakerOptions | undefined;
}

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
 */
export class ConnectPeerClient implements PeerClient {
  readonly breaker: CircuitBreaker;
  private readonly session: Http2SessionManager;
  private readonly client: Client<typeof PeerService>;

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
  }

  async get(group: string, key: string, options: PeerGetOptions): Promise<PeerValue | undefined> {
    const response = await this.call(options, (callOptions) =>
      this.client.fetch(
        { sender: this.context.sender(), group, key, cacheOnly: options.cacheOnly },
        callOptions,
      ),
    );
    switch (response.outcome) {
      case FetchOutcome.FOUND:
        return { value: response.data, stamp: fromWire(response.stamp) };
      case FetchOutcome.NOT_CACHED:
        return undefined;
      case FetchOutcome.NOT_FOUND:
        throw new NotFoundError(key, response.error);
      case FetchOutcome.LOAD_FAILED:
        throw new RemoteLoadError(response.error);
      default:
        throw new Error(
          `peer ${this.id} answered with an unknown fetch outcome ${response.outcome}`,
        );
    }
  }

  async store(
    group: string,
    key: string,
    value: Uint8Array,
    options: PeerStoreOptions,
  ): Promise<PropagationResult> {
    const response = await this.call(options, (callOptions) =>
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
    );
    return { failed: response.failed.map((f) => ({ peer: f.address, reason: f.reason })) };
  }

  async remove(group: string, key: string, options: PeerRemoveOptions = {}): Promise<RemoveResult> {
    const response = await this.call(options, (callOptions) =>
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
    );
    return {
      stamp: fromWire(response.stamp),
      failed: response.failed.map((f) => ({ peer: f.address, reason: f.reason })),
    };
  }

  /** Closes the session; calls in flight fail. */
  close(): void {
    this.session.abort();
  }

  /** Runs one RPC through the breaker and reports how it went. */
  private async call<T>(
    options: PeerCallOptions | undefined,
    rpc: (callOptions: { signal?: AbortSignal | undefined; timeoutMs: number }) => Promise<T>,
  ): Promise<T> {
    const ticket: BreakerTicket | undefined = this.breaker.admit();
    if (ticket === undefined) {
      throw new ConnectError(
        `peer ${this.id} is unavailable: its circuit breaker is open (next probe in ${this.breaker.retryInMs()} ms)`,
        Code.Unavailable,
      );
    }
    try {
      const result = await rpc({ signal: options?.signal, timeoutMs: this.context.timeoutMs });
      ticket.succeeded();
      return result;
    } catch (error) {
      if (options?.signal?.aborted) ticket.abandoned();
      else if (error instanceof ConnectError && !UNREACHABLE.has(error.code)) ticket.succeeded();
      else ticket.failed();
      throw error;
    }
  }
}

/** A stamp for the wire. */
export function toWire(stamp: Stamp | undefined): WireStamp | undefined {
  if (stamp === undefined) return undefined;
  return create(StampSchema, { epoch: BigInt(stamp.epoch), seq: BigInt(stamp.seq) });
}

/** A stamp from the wire; absent from peers that do not send one. */
export function fromWire(stamp: WireStamp | undefined): Stamp | undefined {
  if (stamp === undefined) return undefined;
  return { epoch: Number(stamp.epoch), seq: Number(stamp.seq) };
}

/** A sender message for `address` at `version`. */
export function makeSender(address: string, version: bigint): Sender {
  return create(SenderSchema, { address, membershipVersion: version });
}
