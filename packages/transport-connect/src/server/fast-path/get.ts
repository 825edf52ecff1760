// The Get fast path: `distcache.CacheService/Get` over plain gRPC, binary
// gRPC-Web and Connect unary (binary and JSON) answered from the HTTP/2
// stream itself, a hit synchronously, with the same answers (bytes, status,
// messages) as the Connect handler in cache-service.ts.
import type * as http2 from "node:http2";
import { fromBinary } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import type { ByteView, Group, Receiver } from "@distcache/core";
import { Cancel, LoadsOverloadedError } from "@distcache/core";
import { errorMessage } from "../../error-message.js";
import { GetRequestSchema } from "../../gen/distcache/cache_pb.js";
import { EnvelopeReader, FLAG_COMPRESSED } from "../../grpc/envelope.js";
import { CACHE_GET_PATH } from "../../grpc/methods.js";
import { stopRequestAfterResponse } from "../../grpc/status.js";
import { LARGE_WRITE_BYTES } from "../guard.js";
import type { ServiceContext } from "../host.js";
import { checkKey } from "../validation.js";
import { checkReadMaxBytes, type FastPath, ignore } from "./fast-path.js";
import { decodeSimpleGetRequest, type GetFields } from "./get-codec.js";
import { type GetProtocol, getProtocolOf, readMaxBytesError } from "./get-protocols.js";

/**
 * The Get fast path for the groups of `services.host`. `readMaxBytes` must be
 * the Connect adapter's, so both paths refuse the same messages.
 *
 * Why: a cache hit is cheap, and a call through Connect costs far more than
 * the hit (async-iterator pipelines, AbortControllers and DOMExceptions per
 * call, web `Headers`, and the `Http2ServerRequest`/`Response` pair; see
 * docs/benchmarks.md). A hit is answered synchronously once the request body is in, with no
 * promise, no AbortController and no compatibility objects; a large value is
 * written from the cache's own bytes on every binary protocol, so a client
 * that does not read holds no copy of it, and counted against the byte
 * budget before it is written (JSON: before it is encoded). Only a POST to
 * the Get path in binary gRPC, binary gRPC-Web or Connect unary (binary or
 * JSON), uncompressed, is taken ({@link getProtocolOf}); everything else
 * (gRPC JSON, gRPC-Web text, compressed requests) reaches Connect untouched.
 */
export function createGetFastPath(
  services: ServiceContext,
  options: { readonly readMaxBytes: number },
): FastPath {
  const readMaxBytes = checkReadMaxBytes(options.readMaxBytes);
  return (stream, headers) => {
    const protocol = getProtocolOf(headers, CACHE_GET_PATH);
    if (protocol === undefined) return false;
    new GetCall(services, readMaxBytes, protocol, stream, headers);
    return true;
  };
}

/**
 * One Get on one stream: reads the single request message, then answers from
 * the cache at once or waits for `group.get`. Every exit goes through
 * {@link GetCall.settle}, once.
 *
 * A hit allocates this object and its envelope reader, the `data`/`end`
 * closures, the request's two strings and the response frame; listeners for
 * cancellation, the deadline timer and a {@link Cancel} are added only
 * when there is something to cancel (a `grpc-timeout`, or a miss that waits).
 */
class GetCall implements Receiver<ByteView> {
  private done = false;
  /** The request side ended (END_STREAM received). */
  private ended = false;
  /** Splits an enveloped body (gRPC, gRPC-Web); `undefined` for Connect's bare one. */
  private readonly reader: EnvelopeReader | undefined;
  /** A bare (Connect) body's chunks so far, and their bytes. */
  private chunks: Buffer[] | undefined;
  private received = 0;
  private request: GetFields | undefined;
  private timer: NodeJS.Timeout | undefined;
  /** Only for a miss: ends the wait in `group.get` when the caller leaves or its deadline passes. */
  private cancel: Cancel | undefined;
  /** This call's stream listeners, taken off when it settles (see {@link GetCall.settle}). */
  private readonly onData = (chunk: Buffer) => this.data(chunk);
  private readonly onEnd = () => this.end();
  /** Made only when something can be cancelled (see {@link GetCall.watchClose}): not for a plain hit. */
  private onClose: (() => void) | undefined;

  constructor(
    private readonly services: ServiceContext,
    private readonly readMaxBytes: number,
    private readonly protocol: GetProtocol,
    private readonly stream: http2.ServerHttp2Stream,
    headers: http2.IncomingHttpHeaders,
  ) {
    this.reader = protocol.parseBody === undefined ? new EnvelopeReader(readMaxBytes) : undefined;
    stream.on("error", ignore);
    const ms = protocol.timeout(headers);
    if (ms instanceof ConnectError) {
      this.fail(ms.code, ms.rawMessage);
      return;
    }
    if (ms !== undefined) {
      this.timer = setTimeout(() => this.deadline(), ms);
      this.watchClose();
    }
    if (this.reader === undefined) {
      // Connect refuses a declared length past the limit before reading.
      const declared = Number(headers["content-length"]);
      if (declared > readMaxBytes) {
        const refused = readMaxBytesError(readMaxBytes, declared);
        this.fail(refused.code, refused.rawMessage);
        return;
      }
    }
    stream.on("data", this.onData);
    stream.on("end", this.onEnd);
  }

  private data(chunk: Buffer): void {
    if (this.done) return;
    const reader = this.reader;
    if (reader === undefined) {
      this.received += chunk.byteLength;
      if (this.received > this.readMaxBytes) {
        const refused = readMaxBytesError(this.readMaxBytes);
        this.fail(refused.code, refused.rawMessage);
        return;
      }
      if (this.chunks === undefined) this.chunks = [chunk];
      else this.chunks.push(chunk);
      return;
    }
    try {
      reader.pushRange(chunk, this.message, this);
    } catch (error) {
      // A message over readMaxBytes, refused from its header.
      const refused = ConnectError.from(error);
      this.fail(refused.code, refused.rawMessage);
    }
  }

  /** A complete message: the request, or one too many (a unary call carries exactly one). */
  private message(this: GetCall, flags: number, bytes: Buffer, start: number, end: number): void {
    if (this.done) return;
    if (this.reader!.count > 1) {
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
    if (reader === undefined) {
      this.bareMessage();
      return;
    }
    if (reader.count === 0 && reader.pendingBytes === 0) {
      this.fail(Code.Unimplemented, "protocol error: missing input message for unary method");
    } else if (this.request === undefined || reader.pendingBytes > 0) {
      this.fail(Code.InvalidArgument, "protocol error: incomplete envelope");
    } else {
      this.serve(this.request);
    }
  }

  /** A Connect body, complete: the message itself (empty binary is a message with no fields set). */
  private bareMessage(): void {
    const chunks = this.chunks;
    this.chunks = undefined;
    const body =
      chunks === undefined
        ? Buffer.alloc(0)
        : chunks.length === 1
          ? chunks[0]!
          : Buffer.concat(chunks, this.received);
    let request: GetFields;
    try {
      request = this.protocol.parseBody!(body);
    } catch (error) {
      const refused = ConnectError.from(error);
      this.fail(refused.code, refused.rawMessage);
      return;
    }
    this.serve(request);
  }

  /** As cache-service.ts's `get`, with the hit answered synchronously. */
  private serve(request: GetFields): void {
    const services = this.services;
    const group = services.host.group(request.group);
    if (group === undefined) {
      this.notFound(`no such group: ${request.group}`);
      return;
    }
    const key = request.key;
    if (key === "") {
      this.notFound("key is required");
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
    const cancel = new Cancel();
    this.cancel = cancel;
    if (this.timer === undefined) this.watchClose();
    // This call is the miss's receiver: its answer comes with no promise in between.
    group.clientHandler.get(key, this, cancel);
  }

  /**
   * The miss's value (see {@link Receiver}). Called from inside whatever
   * settled the load (a peer's answer being read, another caller's getter):
   * an answer that cannot be written resets this stream only.
   */
  resolve(view: ByteView): void {
    try {
      this.found(view);
    } catch (error) {
      this.reset(error);
    }
  }

  /** The miss failed, or was cancelled (see {@link Receiver}); as `resolve`, it never throws. */
  reject(error: unknown): void {
    // Cancelled: the caller left (nobody to answer) or the deadline was answered already.
    if (this.cancel?.cancelled === true) return;
    try {
      // The origin's load queue is full: a shed, as cache-service.ts answers it.
      if (error instanceof LoadsOverloadedError) this.fail(Code.ResourceExhausted, error.message);
      else this.notFound(errorMessage(error));
    } catch (failure) {
      this.reset(failure);
    }
  }

  /** An answer that could not be written: this stream only is reset. */
  private reset(failure: unknown): void {
    this.stream.destroy(failure instanceof Error ? failure : new Error(String(failure)));
  }

  private deadline(): void {
    this.timer = undefined;
    if (this.done) return;
    this.fail(Code.DeadlineExceeded, "the operation timed out");
  }

  /** Listens for the stream closing before the answer (at most once per call). */
  private watchClose(): void {
    this.onClose = () => this.closed();
    // `on`, not `once` (a wrapper per call): settle() takes it off either way.
    this.stream.on("close", this.onClose);
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
    // Node keeps a stream's object until a mark-compact, long after it closed
    // (scavenges keep it): what its listeners hold would be promoted with it.
    // Taken off, this call and its request die young (docs/benchmarks.md, "GC").
    const stream = this.stream;
    stream.off("data", this.onData);
    stream.off("end", this.onEnd);
    if (this.onClose !== undefined) stream.off("close", this.onClose);
    this.reader?.clear();
    this.chunks = undefined;
    if (this.timer !== undefined) clearTimeout(this.timer);
    const cancel = this.cancel;
    if (cancel !== undefined && reason !== undefined) cancel.cancel(reason);
    return !this.stream.destroyed && !this.stream.closed;
  }

  /**
   * Answers `found: true` with `view` (see {@link GetProtocol.found}). A
   * large value's answer counts against the server's byte budget from before
   * it is made until it is sent; one that does not fit is RESOURCE_EXHAUSTED.
   */
  private found(view: ByteView): void {
    let sent = ignore;
    const admission = this.services.admission;
    if (view.length >= LARGE_WRITE_BYTES && admission !== undefined && !this.done) {
      const held = admission.holdResponse(this.stream, this.protocol.answerBytes(view.length));
      if (typeof held === "string") {
        this.fail(Code.ResourceExhausted, held);
        return;
      }
      sent = held;
    }
    if (!this.settle(undefined)) {
      sent();
      return;
    }
    this.protocol.found(this.stream, view, sent);
  }

  /** Answers `found: false` with `err` (in-band, status OK). */
  private notFound(err: string): void {
    if (!this.settle(undefined)) return;
    this.protocol.notFound(this.stream, err);
  }

  /**
   * An error answer with no response message. If the request is still
   * arriving, the stream is then reset with NO_ERROR: HTTP/2's way to tell
   * the client to stop sending a request whose response is complete.
   */
  private fail(code: Code, text: string): void {
    if (!this.settle(new ConnectError(text, code))) return;
    this.protocol.fail(this.stream, code, text);
    if (!this.ended) stopRequestAfterResponse(this.stream);
  }
}
