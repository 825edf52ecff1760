// The FetchMany fast path: plain gRPC `distcache.peer.v1.PeerService/FetchMany`
// (the call that carries forwarded Gets) read from the HTTP/2 stream, each
// message of results written straight to it, through the same FetchManyRun as Connect.
import type * as http2 from "node:http2";
import { Code, ConnectError } from "@connectrpc/connect";
import { PEER_HEADER } from "../../auth/peer-token.js";
import { errorMessage } from "../../error-message.js";
import { EnvelopeReader } from "../../grpc/envelope.js";
import { PEER_FETCH_MANY_PATH } from "../../grpc/methods.js";
import {
  encodeFetchManyResponse,
  type FetchManyRequestFields,
  readFetchManyRequest,
} from "../../grpc/peer-codec.js";
import {
  OK_HEADERS,
  OK_TRAILERS,
  respondWithStatus,
  statusTrailers,
  stopRequestAfterResponse,
} from "../../grpc/status.js";
import { requestTimeout } from "../../grpc/timeout.js";
import { FetchManyRun } from "../fetch-many-run.js";
import type { ServiceContext } from "../host.js";
import {
  checkReadMaxBytes,
  type FastPath,
  fastPathFor,
  ignore,
  isPlainGrpcCall,
} from "./fast-path.js";

/**
 * The FetchMany fast path for the groups of `services.host`. `readMaxBytes`
 * must be the Connect adapter's, so both paths refuse the same requests.
 *
 * Why: a batch of hits is cheap to serve, and a server-streaming call through
 * Connect costs the owner far more than that (async-iterator pipelines, web
 * streams, abort controllers and a DOMException per call; see
 * docs/benchmarks.md). It serves exactly what the Connect handler serves,
 * through the same {@link FetchManyRun} (same checks, counters, results and
 * order), and takes only the calls {@link isPlainGrpcCall} allows; the rest
 * reach Connect.
 */
export function createFetchManyFastPath(
  services: ServiceContext,
  options: { readonly readMaxBytes: number },
): FastPath {
  const readMaxBytes = checkReadMaxBytes(options.readMaxBytes);
  return fastPathFor(PEER_FETCH_MANY_PATH, (stream, timeout, headers) => {
    new FetchManyCall(services, readMaxBytes, stream, timeout, headers[PEER_HEADER]);
  });
}

/** A server-streaming call carries exactly one request message; any byte after it is refused. */
function extraInput(): ConnectError {
  return new ConnectError(
    "protocol error: received extra input message for server streaming method",
    Code.Unimplemented,
  );
}

/**
 * One FetchMany on one stream: reads the request (one message), then writes
 * a message each time results are ready, then the trailers. Every end goes
 * through {@link FetchManyCall.end}, once.
 */
class FetchManyCall {
  private ended = false;
  /** The request side is complete (END_STREAM received). */
  private received = false;
  private readonly reader: EnvelopeReader;
  /** The request message, once complete, and its envelope flags; parsed when the request ends. */
  private body: Buffer | undefined;
  private flags = 0;
  private timer: NodeJS.Timeout | undefined;
  /**
   * Aborts the loads of this call's keys: the caller left or its deadline
   * passed. Made when a key first loads: a call of hits needs none.
   */
  private controller: AbortController | undefined;
  /** Why the call ended early, once it has: a signal asked for after that is born aborted. */
  private failure: ConnectError | undefined;
  /** The loads' signal, made on first use (FetchManyRun asks only for a key that loads). */
  private readonly signal = (): AbortSignal => {
    if (this.controller === undefined) {
      this.controller = new AbortController();
      if (this.failure !== undefined) this.controller.abort(this.failure);
    }
    return this.controller.signal;
  };
  private run: FetchManyRun | undefined;
  private responded = false;
  private flushing = false;
  /** What the trailers say, once the last message is written. */
  private trailers: http2.OutgoingHttpHeaders = OK_TRAILERS;

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
    stream.on("close", () => {
      // After a normal end this is a no-op: no error is made (it costs a stack trace).
      if (!this.ended) this.end(new ConnectError("the caller left", Code.Canceled));
    });
    if (timeout !== undefined) {
      const ms = requestTimeout(timeout);
      if (ms instanceof ConnectError) {
        this.end(ms);
        return;
      }
      if (ms !== undefined) {
        this.timer = setTimeout(
          () => this.end(new ConnectError("the operation timed out", Code.DeadlineExceeded)),
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
      // A header announcing more than readMaxBytes: the request's own, or
      // (after the request) one more message, which is refused as extra.
      this.end(this.body === undefined ? ConnectError.from(error) : extraInput());
      return;
    }
    if (this.body !== undefined && this.reader.pendingBytes > 0) this.end(extraInput());
  }

  private message(
    this: FetchManyCall,
    flags: number,
    bytes: Buffer,
    start: number,
    end: number,
  ): void {
    if (this.ended) return;
    if (this.body !== undefined) {
      this.end(extraInput());
      return;
    }
    this.body = bytes.subarray(start, end);
    this.flags = flags;
  }

  /** The request is complete: parse it and start serving. */
  private request(): void {
    this.received = true;
    if (this.ended) return;
    const body = this.body;
    if (body === undefined) {
      this.end(
        this.reader.pendingBytes === 0
          ? new ConnectError(
              "protocol error: missing input message for server streaming method",
              Code.Unimplemented,
            )
          : new ConnectError("protocol error: incomplete envelope", Code.InvalidArgument),
      );
      return;
    }
    this.body = undefined;
    if (this.flags !== 0) {
      // Compressed without a grpc-encoding, or flags gRPC does not define.
      this.end(new ConnectError(`unexpected message flags ${this.flags}`, Code.Internal));
      return;
    }
    let request: FetchManyRequestFields;
    try {
      request = readFetchManyRequest(body);
    } catch (error) {
      this.end(new ConnectError(`parse binary: ${errorMessage(error)}`, Code.Internal));
      return;
    }
    try {
      const peer = typeof this.peerHeader === "string" ? this.peerHeader : undefined;
      this.run = new FetchManyRun(this.services, request, peer, this.signal, () => {
        // Results that settle in the same turn (all hits) leave in one message.
        if (this.flushing) return;
        this.flushing = true;
        queueMicrotask(() => this.flush());
      });
    } catch (error) {
      this.end(ConnectError.from(error, Code.Internal));
    }
  }

  /** Writes every result that is ready; ends the call once all are written. */
  private flush(): void {
    this.flushing = false;
    const run = this.run!;
    if (this.ended) return;
    const stream = this.stream;
    if (stream.destroyed || stream.closed) return; // "close" ends the call
    if (!this.responded) {
      this.responded = true;
      stream.on("wantTrailers", () => stream.sendTrailers(this.trailers));
      stream.respond(OK_HEADERS, { waitForTrailers: true });
    }
    while (run.pending) {
      const frame = encodeFetchManyResponse(run.take());
      // The last message ends the stream with it: one write, not two.
      if (run.finished) {
        this.end(undefined, frame);
        return;
      }
      stream.write(frame);
    }
    if (run.finished) this.end(undefined);
  }

  /**
   * Ends the call: status OK (`error` undefined) or the error's status, as
   * trailers after the messages, or as a trailers-only answer when nothing
   * was sent; after a trailers-only answer, a request still arriving is reset
   * with NO_ERROR, HTTP/2's way to say the answer is complete (results are
   * only sent once the whole request is in). `last` is the call's last
   * message, written with the end of the stream (only with status OK, once
   * the headers are sent).
   */
  private end(error: ConnectError | undefined, last?: Buffer): void {
    if (this.ended) return;
    this.ended = true;
    this.reader.clear();
    this.body = undefined;
    if (this.timer !== undefined) clearTimeout(this.timer);
    if (error !== undefined) {
      this.failure = error;
      this.controller?.abort(error);
    }
    const stream = this.stream;
    if (stream.destroyed || stream.closed) return;
    if (this.responded) {
      if (error !== undefined) this.trailers = statusTrailers(error.code, error.rawMessage);
      if (last === undefined) stream.end();
      else stream.end(last);
    } else {
      respondWithStatus(stream, error?.code ?? Code.Unknown, error?.rawMessage ?? "");
      if (!this.received) stopRequestAfterResponse(stream);
    }
  }
}
