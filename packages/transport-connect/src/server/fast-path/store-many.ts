// The StoreMany fast path: plain gRPC `distcache.peer.v1.PeerService/StoreMany`
// (the call that carries replication pushes) read from the HTTP/2 stream and
// answered on it, through the same storeMany as Connect.
import type * as http2 from "node:http2";
import { Code, ConnectError } from "@connectrpc/connect";
import { PEER_HEADER } from "../../auth/peer-token.js";
import { errorMessage } from "../../error-message.js";
import { EnvelopeReader, FLAG_COMPRESSED } from "../../grpc/envelope.js";
import { PEER_STORE_MANY_PATH } from "../../grpc/methods.js";
import {
  encodeStoreManyResponse,
  readStoreManyRequest,
  type StoreManyRequestFields,
} from "../../grpc/peer-codec.js";
import {
  OK_HEADERS,
  respondWithStatus,
  sendOkTrailers,
  stopRequestAfterResponse,
} from "../../grpc/status.js";
import { requestTimeout } from "../../grpc/timeout.js";
import type { ServiceContext } from "../host.js";
import { storeMany } from "../store-many-run.js";
import {
  checkReadMaxBytes,
  type FastPath,
  fastPathFor,
  ignore,
  isPlainGrpcCall,
} from "./fast-path.js";

/**
 * The StoreMany fast path for the groups of `services.host`. `readMaxBytes`
 * must be the Connect adapter's, so both paths refuse the same requests.
 *
 * Why: every cold load sends its copies to R replicas as StoreMany batches,
 * and a unary call through Connect costs the replica far more than keeping
 * the copies (universal request and response objects, async iterables, an
 * abort controller and a deadline signal per call: about a fifth of the
 * cluster's CPU on cold keys with 2 replicas, docs/benchmarks.md). It serves
 * exactly what the Connect handler serves, through the same
 * {@link storeMany} (same checks, counters, stamps and answer), and takes
 * only the calls {@link isPlainGrpcCall} allows; the rest reach Connect.
 */
export function createStoreManyFastPath(
  services: ServiceContext,
  options: { readonly readMaxBytes: number },
): FastPath {
  const readMaxBytes = checkReadMaxBytes(options.readMaxBytes);
  return fastPathFor(PEER_STORE_MANY_PATH, (stream, timeout, headers) => {
    new StoreManyCall(services, readMaxBytes, stream, timeout, headers[PEER_HEADER]);
  });
}

/** Connect's words for a unary call without exactly one message. */
const MISSING = "protocol error: missing input message for unary method";
const EXTRA = "protocol error: received extra input message for unary method";

/**
 * One StoreMany on one stream: reads the request (one message), keeps its
 * items once the request is complete, then answers with one message and
 * status OK, or with an error status. Every end goes through
 * {@link StoreManyCall.answer} or {@link StoreManyCall.fail}, once.
 */
class StoreManyCall {
  private ended = false;
  /** The request side is complete (END_STREAM received). */
  private received = false;
  private readonly reader: EnvelopeReader;
  /** The request message, once complete, and its envelope flags; parsed when the request ends. */
  private body: Buffer | undefined;
  private flags = 0;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly services: ServiceContext,
    readMaxBytes: number,
    private readonly stream: http2.ServerHttp2Stream,
    timeout: string | string[] | undefined,
    /** The `distcache-peer` header (see noteSender). */
    private readonly peerHeader: string | string[] | undefined,
  ) {
    this.reader = new EnvelopeReader(readMaxBytes);
    stream.on("error", ignore);
    // A caller that leaves gets no answer; items already kept stay kept.
    stream.on("close", () => this.stop());
    if (timeout !== undefined) {
      const ms = requestTimeout(timeout);
      if (ms instanceof ConnectError) {
        this.fail(ms);
        return;
      }
      if (ms !== undefined) {
        this.timer = setTimeout(
          () => this.fail(new ConnectError("the operation timed out", Code.DeadlineExceeded)),
          ms,
        );
      }
    }
    stream.on("data", (chunk: Buffer) => this.data(chunk));
    stream.on("end", () => this.request());
  }

  private data(chunk: Buffer): void {
    if (this.ended) return;
    try {
      this.reader.pushRange(chunk, this.message, this);
    } catch (error) {
      // A header announcing more than readMaxBytes: the request's own, or one more message.
      this.fail(
        this.body === undefined
          ? ConnectError.from(error)
          : new ConnectError(EXTRA, Code.Unimplemented),
      );
    }
  }

  private message(
    this: StoreManyCall,
    flags: number,
    bytes: Buffer,
    start: number,
    end: number,
  ): void {
    if (this.ended) return;
    if (this.body !== undefined) {
      this.fail(new ConnectError(EXTRA, Code.Unimplemented));
      return;
    }
    this.body = bytes.subarray(start, end);
    this.flags = flags;
  }

  /** The request is complete: parse it and keep its items. */
  private request(): void {
    this.received = true;
    if (this.ended) return;
    const body = this.body;
    this.body = undefined;
    if (body === undefined || this.reader.pendingBytes > 0) {
      // Part of an envelope, with or without a message before it, as Connect reads it.
      this.fail(
        this.reader.pendingBytes > 0
          ? new ConnectError("protocol error: incomplete envelope", Code.InvalidArgument)
          : new ConnectError(MISSING, Code.Unimplemented),
      );
      return;
    }
    if (this.flags !== 0) {
      // Compressed without a grpc-encoding (Connect's words), or flags gRPC does not define.
      this.fail(
        this.flags === FLAG_COMPRESSED
          ? new ConnectError(
              "received compressed envelope, but do not know how to decompress",
              Code.Internal,
            )
          : new ConnectError(`unexpected message flags ${this.flags}`, Code.Internal),
      );
      return;
    }
    let request: StoreManyRequestFields;
    try {
      request = readStoreManyRequest(body);
    } catch (error) {
      this.fail(new ConnectError(`parse binary: ${errorMessage(error)}`, Code.Internal));
      return;
    }
    const peer = typeof this.peerHeader === "string" ? this.peerHeader : undefined;
    storeMany(this.services, request, peer).then(
      (ahead) => this.answer(encodeStoreManyResponse(ahead)),
      (error: unknown) => this.fail(ConnectError.from(error)),
    );
  }

  /** Ends the call with its one response message and status OK. */
  private answer(frame: Buffer): void {
    if (!this.stop()) return;
    const stream = this.stream;
    stream.once("wantTrailers", sendOkTrailers);
    stream.respond(OK_HEADERS, { waitForTrailers: true });
    stream.end(frame);
  }

  /**
   * Ends the call with `error` as a trailers-only answer; a request still
   * arriving is then reset with NO_ERROR (HTTP/2's way to say the answer is
   * complete).
   */
  private fail(error: ConnectError): void {
    if (!this.stop()) return;
    respondWithStatus(this.stream, error.code, error.rawMessage);
    if (!this.received) stopRequestAfterResponse(this.stream);
  }

  /** Marks the call ended; whether it was still open and its stream can still be answered. */
  private stop(): boolean {
    if (this.ended) return false;
    this.ended = true;
    this.reader.clear();
    this.body = undefined;
    if (this.timer !== undefined) clearTimeout(this.timer);
    const stream = this.stream;
    return !stream.destroyed && !stream.closed && !stream.headersSent;
  }
}
