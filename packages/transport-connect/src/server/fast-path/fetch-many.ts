// A lean gRPC handler for `distcache.peer.v1.PeerService/FetchMany`, the call
// that carries forwarded Gets, on the same `node:http2` server as the Connect
// adapter (installed next to the CacheService/Get fast path, see pool.ts).
//
// Why: a batch of hits costs a few microseconds per key to serve, but a
// server-streaming call through Connect cost the owner ~0.7 ms (async-iterator
// pipelines, web streams, abort controllers and a DOMException per call) —
// three quarters of what the owner spent per forwarded Get
// (docs/benchmarks.md). This handler reads the request from the stream and
// writes each message of results straight to it.
//
// It serves exactly what the Connect handler serves, through the same
// `FetchManyRun` (same checks, counters, results and order), and only a POST
// with `content-type: application/grpc` or `application/grpc+proto` and no
// request compression. Everything else (gRPC-Web, Connect, JSON, compressed
// requests) is declined before the stream is touched and reaches Connect.
import * as http2 from "node:http2";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import {
  type FetchManyRequest,
  FetchManyRequestSchema,
  FetchManyResponseSchema,
} from "./gen/distcache/peer/v1/peer_pb.js";
import {
  checkReadMaxBytes,
  envelope,
  type GrpcFastPath,
  ignore,
  isPlainGrpcCall,
  MAX_TIMER_MS,
  OK_HEADERS,
  OK_TRAILERS,
  parseTimeout,
} from "./grpc-fast-path.js";
import { FetchManyRun, message, type ServiceHost } from "./services.js";

/** The method this fast path serves. */
export const FAST_PATH_FETCH_MANY = "/distcache.peer.v1.PeerService/FetchMany";

const { NGHTTP2_NO_ERROR } = http2.constants;

/**
 * Returns the FetchMany fast path for `host`'s groups: a {@link GrpcFastPath}
 * that takes plain gRPC calls of `PeerService/FetchMany` and declines every
 * other stream untouched. `readMaxBytes` must be the Connect adapter's, so
 * both paths refuse the same requests.
 */
export function createFetchManyFastPath(
  host: ServiceHost,
  options: { readonly readMaxBytes: number },
): GrpcFastPath {
  const readMaxBytes = checkReadMaxBytes(options.readMaxBytes);
  return (stream, headers) => {
    if (!isPlainGrpcCall(headers, FAST_PATH_FETCH_MANY)) return false;
    new FetchManyCall(host, readMaxBytes, stream, headers["grpc-timeout"]);
    return true;
  };
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
  private chunks: Buffer[] = [];
  private buffered = 0;
  private timer: NodeJS.Timeout | undefined;
  /** Aborts the loads of this call's keys: the caller left or its deadline passed. */
  private readonly controller = new AbortController();
  private run: FetchManyRun | undefined;
  private responded = false;
  private flushing = false;
  /** What the trailers say, once the last message is written. */
  private trailers: http2.OutgoingHttpHeaders = OK_TRAILERS;

  constructor(
    private readonly host: ServiceHost,
    private readonly readMaxBytes: number,
    private readonly stream: http2.ServerHttp2Stream,
    timeout: string | string[] | undefined,
  ) {
    stream.on("error", ignore); // a reset or a dead socket; "close" follows
    stream.on("close", () => {
      // After a normal end this is a no-op: no error is made (it costs a stack trace).
      if (!this.ended) this.end(new ConnectError("the caller left", Code.Canceled));
    });
    if (timeout !== undefined) {
      const ms = parseTimeout(timeout);
      if (ms === undefined) {
        this.end(
          new ConnectError(
            `protocol error: invalid grpc timeout value: ${String(timeout)}`,
            Code.InvalidArgument,
          ),
        );
        return;
      }
      if (ms <= MAX_TIMER_MS) {
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
    this.chunks.push(chunk);
    this.buffered += chunk.byteLength;
    if (this.buffered < 5) return;
    const head = this.chunks.length === 1 ? chunk : Buffer.concat(this.chunks, this.buffered);
    this.chunks = [head];
    const length = head.readUInt32BE(1);
    if (length > this.readMaxBytes) {
      this.end(
        new ConnectError(
          `message size ${length} is larger than configured readMaxBytes ${this.readMaxBytes}`,
          Code.ResourceExhausted,
        ),
      );
    } else if (this.buffered > 5 + length) {
      this.end(
        new ConnectError(
          "protocol error: received extra input message for server streaming method",
          Code.Unimplemented,
        ),
      );
    }
  }

  /** The request is complete: parse it and start serving. */
  private request(): void {
    this.received = true;
    if (this.ended) return;
    const body = this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks);
    this.chunks = [];
    if (body.byteLength === 0) {
      this.end(
        new ConnectError(
          "protocol error: missing input message for server streaming method",
          Code.Unimplemented,
        ),
      );
      return;
    }
    if (body.byteLength < 5 || body.byteLength !== 5 + body.readUInt32BE(1)) {
      this.end(new ConnectError("protocol error: incomplete envelope", Code.InvalidArgument));
      return;
    }
    if (body[0] !== 0) {
      // Compressed without a grpc-encoding, or flags gRPC does not define.
      this.end(new ConnectError(`unexpected message flags ${body[0]}`, Code.Internal));
      return;
    }
    let request: FetchManyRequest;
    try {
      request = fromBinary(FetchManyRequestSchema, body.subarray(5));
    } catch (error) {
      this.end(new ConnectError(`parse binary: ${message(error)}`, Code.Internal));
      return;
    }
    try {
      this.run = new FetchManyRun(this.host, request, this.controller.signal, () => {
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
      const bytes = toBinary(
        FetchManyResponseSchema,
        create(FetchManyResponseSchema, { results: run.take() }),
      );
      const frame = envelope(bytes.byteLength);
      frame.set(bytes, 5);
      stream.write(frame);
    }
    if (run.finished) this.end(undefined);
  }

  /**
   * Ends the call: status OK (`error` undefined) or the error's status, as
   * trailers after the messages, or as a trailers-only answer when nothing
   * was sent; after a trailers-only answer, a request still arriving is reset
   * with NO_ERROR, HTTP/2's way to say the answer is complete (results are
   * only sent once the whole request is in).
   */
  private end(error: ConnectError | undefined): void {
    if (this.ended) return;
    this.ended = true;
    this.chunks = [];
    if (this.timer !== undefined) clearTimeout(this.timer);
    if (error !== undefined) this.controller.abort(error);
    const stream = this.stream;
    if (stream.destroyed || stream.closed) return;
    if (this.responded) {
      if (error !== undefined) {
        this.trailers = {
          "grpc-status": String(error.code),
          "grpc-message": encodeURIComponent(error.rawMessage),
        };
      }
      stream.end();
    } else {
      const code = error?.code ?? Code.Unknown;
      stream.respond(
        {
          ":status": 200,
          "content-type": OK_HEADERS["content-type"],
          "grpc-status": String(code),
          "grpc-message": encodeURIComponent(error?.rawMessage ?? ""),
        },
        { endStream: true },
      );
      if (!this.received) stream.close(NGHTTP2_NO_ERROR);
    }
  }
}
