// The Get fast path: plain gRPC `distcache.CacheService/Get` answered from the
// HTTP/2 stream itself, a hit synchronously, with the same answers (bytes,
// status, messages) as the Connect handler in cache-service.ts.
import type * as http2 from "node:http2";
import { fromBinary } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { ByteView, type Group, LoadsOverloadedError } from "@distcache/core";
import { errorMessage } from "../../error-message.js";
import { GetRequestSchema } from "../../gen/distcache/cache_pb.js";
import { EnvelopeReader, FLAG_COMPRESSED } from "../../grpc/envelope.js";
import { CACHE_GET_PATH } from "../../grpc/methods.js";
import {
  OK_HEADERS,
  respondWithStatus,
  sendOkTrailers,
  stopRequestAfterResponse,
} from "../../grpc/status.js";
import { requestTimeout } from "../../grpc/timeout.js";
import type { ServiceContext } from "../host.js";
import { checkKey } from "../validation.js";
import {
  checkReadMaxBytes,
  type FastPath,
  fastPathFor,
  ignore,
  isPlainGrpcCall,
} from "./fast-path.js";
import {
  decodeSimpleGetRequest,
  encodeFound,
  encodeFoundHead,
  encodeNotFound,
  FOUND_TAIL,
  type GetFields,
} from "./get-codec.js";

const WITH_TRAILERS = { waitForTrailers: true };
/** Values from this size on are written without copying them into the response frame. */
const ZERO_COPY_BYTES = 4_096;

/**
 * The Get fast path for the groups of `services.host`. `readMaxBytes` must be
 * the Connect adapter's, so both paths refuse the same messages.
 *
 * Why: a cache hit is cheap, and a call through Connect costs far more than
 * the hit (async-iterator pipelines, AbortControllers and DOMExceptions per
 * call, web `Headers`, and the `Http2ServerRequest`/`Response` pair; see
 * docs/benchmarks.md). A hit is answered synchronously once the request body is in, with no
 * promise, no AbortController and no compatibility objects. Only a POST to the
 * Get path with `application/grpc` or `application/grpc+proto` and no request
 * compression is taken ({@link isPlainGrpcCall}); everything else reaches
 * Connect untouched.
 */
export function createGetFastPath(
  services: ServiceContext,
  options: { readonly readMaxBytes: number },
): FastPath {
  const readMaxBytes = checkReadMaxBytes(options.readMaxBytes);
  return fastPathFor(CACHE_GET_PATH, (stream, timeout) => {
    new GetCall(services, readMaxBytes, stream, timeout);
  });
}

/**
 * One Get on one stream: reads the single request message, then answers from
 * the cache at once or waits for `group.get`. Every exit goes through
 * {@link GetCall.settle}, once.
 *
 * A hit allocates this object and its envelope reader, the `data`/`end`
 * closures, the request's two strings and the response frame; listeners for
 * cancellation, the deadline timer and an AbortController are added only
 * when there is something to cancel (a `grpc-timeout`, or a miss that waits).
 */
class GetCall {
  private done = false;
  /** The request side ended (END_STREAM received). */
  private ended = false;
  private readonly reader: EnvelopeReader;
  private request: GetFields | undefined;
  private timer: NodeJS.Timeout | undefined;
  /** Only for a miss: aborts the wait in `group.get` when the caller leaves or its deadline passes. */
  private controller: AbortController | undefined;

  constructor(
    private readonly services: ServiceContext,
    readMaxBytes: number,
    private readonly stream: http2.ServerHttp2Stream,
    timeout: string | string[] | undefined,
  ) {
    this.reader = new EnvelopeReader(readMaxBytes);
    stream.on("error", ignore);
    if (timeout !== undefined) {
      const ms = requestTimeout(timeout);
      if (ms instanceof ConnectError) {
        this.fail(ms.code, ms.rawMessage);
        return;
      }
      if (ms !== undefined) {
        this.timer = setTimeout(() => this.deadline(), ms);
        this.watchClose();
      }
    }
    stream.on("data", (chunk: Buffer) => this.data(chunk));
    stream.on("end", () => this.end());
  }

  private data(chunk: Buffer): void {
    if (this.done) return;
    try {
      this.reader.pushRange(chunk, this.message, this);
    } catch (error) {
      // A message over readMaxBytes, refused from its header.
      const refused = ConnectError.from(error);
      this.fail(refused.code, refused.rawMessage);
    }
  }

  /** A complete message: the request, or one too many (a unary call carries exactly one). */
  private message(this: GetCall, flags: number, bytes: Buffer, start: number, end: number): void {
    if (this.done) return;
    if (this.reader.count > 1) {
      this.fail(
        Code.Unimplemented,
        "protocol error: received extra input message for unary method",
      );
      return;
    }
    if ((flags & FLAG_COMPRESSED) !== 0) {
      // Compressed without a grpc-encoding: gRPC says INTERNAL (the message cannot be read).
      this.fail(Code.Internal, "received compressed envelope, but do not know how to decompress");
      return;
    }
    try {
      this.request =
        decodeSimpleGetRequest(bytes, start, end) ??
        fromBinary(GetRequestSchema, bytes.subarray(start, end));
    } catch (error) {
      this.fail(Code.Internal, `parse binary: ${errorMessage(error)}`);
    }
  }

  private end(): void {
    this.ended = true;
    if (this.done) return;
    const reader = this.reader;
    if (reader.count === 0 && reader.pendingBytes === 0) {
      this.fail(Code.Unimplemented, "protocol error: missing input message for unary method");
    } else if (this.request === undefined || reader.pendingBytes > 0) {
      this.fail(Code.InvalidArgument, "protocol error: incomplete envelope");
    } else {
      this.serve(this.request);
    }
  }

  /** As cache-service.ts's `get`, with the hit answered synchronously. */
  private serve(request: GetFields): void {
    const services = this.services;
    const group = services.host.group(request.group);
    if (group === undefined) {
      this.answer(encodeNotFound(`no such group: ${request.group}`));
      return;
    }
    const key = request.key;
    if (key === "") {
      this.answer(encodeNotFound("key is required"));
      return;
    }
    try {
      checkKey(key, services.limits);
    } catch (error) {
      const refused = ConnectError.from(error);
      this.fail(refused.code, refused.rawMessage);
      return;
    }
    const hit = group.getCached(key);
    if (hit !== undefined) {
      this.found(hit);
      return;
    }
    this.miss(group, key);
  }

  private miss(group: Group, key: string): void {
    const controller = new AbortController();
    this.controller = controller;
    if (this.timer === undefined) this.watchClose();
    group.get(key, { signal: controller.signal }).then(
      (view) => this.found(view),
      (error: unknown) => {
        // Aborted: the caller left (nobody to answer) or the deadline was answered already.
        if (controller.signal.aborted) return;
        // The origin's load queue is full: a shed, as cache-service.ts answers it.
        if (error instanceof LoadsOverloadedError) this.fail(Code.ResourceExhausted, error.message);
        else this.answer(encodeNotFound(errorMessage(error)));
      },
    );
  }

  private deadline(): void {
    this.timer = undefined;
    if (this.done) return;
    this.fail(Code.DeadlineExceeded, "the operation timed out");
  }

  /** Listens for the stream closing before the answer (at most once per call). */
  private watchClose(): void {
    this.stream.on("close", () => this.closed());
  }

  private closed(): void {
    if (this.done) return;
    // The client cancelled or the connection went away before the answer.
    this.settle(new ConnectError("the client closed the stream", Code.Canceled));
  }

  /** Ends the call: no more reading, no timer, and a miss's wait is abandoned. */
  private settle(reason: ConnectError | undefined): boolean {
    if (this.done) return false;
    this.done = true;
    this.reader.clear();
    if (this.timer !== undefined) clearTimeout(this.timer);
    const controller = this.controller;
    if (controller !== undefined && reason !== undefined) controller.abort(reason);
    return !this.stream.destroyed && !this.stream.closed;
  }

  /**
   * Answers `found: true` with `view`. A small value is copied into one
   * frame; a large one is written from the cache's own (immutable) bytes
   * between a small head and tail, in one corked write: no copy, no large
   * allocation per hit.
   */
  private found(view: ByteView): void {
    if (view.length < ZERO_COPY_BYTES) {
      this.answer(encodeFound(view));
      return;
    }
    if (!this.settle(undefined)) return;
    const stream = this.stream;
    stream.on("wantTrailers", sendOkTrailers);
    stream.respond(OK_HEADERS, WITH_TRAILERS);
    stream.cork();
    stream.write(encodeFoundHead(view.length));
    stream.write(ByteView.unwrap(view));
    stream.end(FOUND_TAIL); // end() uncorks: one write of the three pieces
  }

  /** A response message, then `grpc-status: 0` in the trailers. */
  private answer(frame: Buffer): void {
    if (!this.settle(undefined)) return;
    const stream = this.stream;
    stream.on("wantTrailers", sendOkTrailers);
    stream.respond(OK_HEADERS, WITH_TRAILERS);
    stream.end(frame);
  }

  /**
   * A trailers-only response with an error status. If the request is still
   * arriving, the stream is then reset with NO_ERROR: HTTP/2's way to tell
   * the client to stop sending a request whose response is complete.
   */
  private fail(code: Code, text: string): void {
    if (!this.settle(new ConnectError(text, code))) return;
    respondWithStatus(this.stream, code, text);
    if (!this.ended) stopRequestAfterResponse(this.stream);
  }
}
