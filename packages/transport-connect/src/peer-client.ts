import { create } from "@bufbuild/protobuf";
import { type Client, createClient } from "@connectrpc/connect";
import { createGrpcTransport, Http2SessionManager } from "@connectrpc/connect-node";
import {
  NotFoundError,
  type PeerCallOptions,
  type PeerClient,
  type PeerGetOptions,
  type PropagationResult,
  RemoteLoadError,
} from "@distcache/core";
import { baseUrl } from "./address.js";
import {
  FetchOutcome,
  PeerService,
  type Sender,
  SenderSchema,
} from "./gen/distcache/peer/v1/peer_pb.js";

/** What a peer client needs from its pool, read per call so membership changes apply at once. */
export interface PeerClientContext {
  /** This node as a sender: its address and membership version. */
  sender(): Sender;
  /** Milliseconds each call may take. */
  readonly timeoutMs: number;
}

/**
 * One other member, reached over `distcache.peer.v1.PeerService` on a single
 * HTTP/2 session that every call reuses.
 */
export class ConnectPeerClient implements PeerClient {
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
  }

  async get(group: string, key: string, options: PeerGetOptions): Promise<Uint8Array | undefined> {
    const response = await this.client.fetch(
      { sender: this.context.sender(), group, key, cacheOnly: options.cacheOnly },
      this.callOptions(options),
    );
    switch (response.outcome) {
      case FetchOutcome.FOUND:
        return response.data;
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
    options: PeerCallOptions & { replicate: boolean },
  ): Promise<PropagationResult> {
    const response = await this.client.store(
      { sender: this.context.sender(), group, key, data: value, replicate: options.replicate },
      this.callOptions(options),
    );
    return { failed: response.failed.map((f) => ({ peer: f.address, reason: f.reason })) };
  }

  async remove(group: string, key: string, options?: PeerCallOptions): Promise<void> {
    await this.client.invalidate(
      { sender: this.context.sender(), group, key },
      this.callOptions(options),
    );
  }

  /** Closes the session; calls in flight fail. */
  close(): void {
    this.session.abort();
  }

  private callOptions(options: PeerCallOptions | undefined) {
    return { signal: options?.signal, timeoutMs: this.context.timeoutMs };
  }
}

/** A sender message for `address` at `version`. */
export function makeSender(address: string, version: bigint): Sender {
  return create(SenderSchema, { address, membershipVersion: version });
}
