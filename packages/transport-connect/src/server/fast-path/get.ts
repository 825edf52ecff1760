// A lean gRPC handler for the hottest call, `distcache.CacheService/Get`, on
// the same `node:http2` server as the Connect adapter.
//
// Why: a cache hit costs microseconds, but a call through Connect costs far
// more (async-iterator pipelines, AbortControllers and DOMExceptions per call,
// web `Headers`, and the `Http2ServerRequest`/`Response` pair). Profiled in
// docs/benchmarks.md. This handler answers a Get from the HTTP/2 stream
// itself: a hit is served synchronously once the request body has arrived,
// with no promise, no AbortController and no compatibility objects.
//
// It takes only what it serves exactly like `registerCacheService` (same
// validation helpers, same answers and messages): a POST to the Get path with
// `content-type: application/grpc` or `application/grpc+proto` and no request
// compression. Everything else — gRPC-Web, Connect, JSON, other methods,
// compressed requests — is declined before the stream is touched, and the
// Connect adapter serves it.
import * as http2 from "node:http2";
import { fromBinary } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { ByteView, type Group } from "@distcache/core";
import { GetRequestSchema } from "./gen/distcache/cache_pb.js";
import { checkKey, message, type ServiceHost } from "./services.js";

/** Options for {@link createGrpcFastPath}. */
export interface GrpcFastPathOptions {
  /**
   * Largest request message in bytes; a larger one is `RESOURCE_EXHAUSTED`.
   * Give it the Connect adapter's `readMaxBytes`, so both paths refuse the
   * same messages.
   */
  readonly readMaxBytes: number;
}

/**
 * Serves one HTTP/2 stream if it is a call the fast path takes, and returns
 * `true`. Returns `false` without touching the stream (no listener added,
 * nothing read or written) otherwise, so the caller hands it to Connect.
 */
export type GrpcFastPath = (
  stream: http2.ServerHttp2Stream,
  headers: http2.IncomingHttpHeaders,
) => boolean;

/** The one method the fast path serves. */
export const FAST_PATH_GET = "/distcache.CacheService/Get";

const { NGHTTP2_NO_ERROR } = http2.constants;
const CONTENT_TYPE = "application/grpc";
/** Envelope flag: the message is compressed with the call's `grpc-encoding`. */
const COMPRESSED = 0b1;
/** `grpc-timeout`, as gRPC over HTTP/2 defines it (at most 8 digits and a unit). */
const TIMEOUT_PATTERN = /^(\d{1,8})([HMSmun])$/;
const TIMEOUT_UNIT_MS: Record<string, number> = {
  H: 3_600_000,
  M: 60_000,
  S: 1_000,
  m: 1,
  u: 0.001,
  n: 0.000_001,
};
/** `setTimeout` fires at once past this; a longer deadline is served as no deadline (it is ~24.8 days). */
export const MAX_TIMER_MS = 2 ** 31 - 1;

// Shared, never mutated: `respond` and `sendTrailers` copy what they are given.
export const OK_HEADERS: http2.OutgoingHttpHeaders = {
  ":status": 200,
  "content-type": CONTENT_TYPE,
};
export const OK_TRAILERS: http2.OutgoingHttpHeaders = { "grpc-status": "0" };
const WITH_TRAILERS = { waitForTrailers: true };
const END_STREAM = { endStream: true };
/** Values from this size on are written without copying them into the response frame. */
const ZERO_COPY_BYTES = 4_096;
/** The end of a `found: true` GetResponse: field 2, true. */
const FOUND_TAIL = Buffer.from([0x10, 0x01]);

/**
 * Returns the fast path for `host`'s groups. See the module comment and
 * `packages/transport-connect/README.md` ("gRPC fast path") for what it
 * serves and what it leaves to Connect.
 */
export function createGrpcFastPath(host: ServiceHost, options: GrpcFastPathOptions): GrpcFastPath {
  const readMaxBytes = checkReadMaxBytes(options.readMaxBytes);
  return (stream, headers) => {
    if (!isPlainGrpcCall(headers, FAST_PATH_GET)) return false;
    new GetCall(host, readMaxBytes, stream, headers["grpc-timeout"]);
    return true;
  };
}

/**
 * Whether `headers` open an uncompressed binary gRPC call of `path`: the only
 * calls a fast path takes. gRPC-Web, Connect, JSON and compressed requests
 * (and an unknown encoding's UNIMPLEMENTED answer) are Connect's.
 */
export function isPlainGrpcCall(headers: http2.IncomingHttpHeaders, path: string): boolean {
  if (headers[":path"] !== path || headers[":method"] !== "POST") return false;
  const contentType = headers["content-type"];
  if (contentType !== CONTENT_TYPE && contentType !== "application/grpc+proto") return false;
  const encoding = headers["grpc-encoding"];
  return encoding === undefined || encoding === "identity";
}

/** `readMaxBytes`, once checked to be an integer >= 1. */
export function checkReadMaxBytes(readMaxBytes: number): number {
  if (!Number.isInteger(readMaxBytes) || readMaxBytes < 1) {
    throw new RangeError(`readMaxBytes must be an integer >= 1, got ${readMaxBytes}`);
  }
  return readMaxBytes;
}

/**
 * Puts `fastPath` in front of the Connect adapter on `server`.
 *
 * `server` must have been made with a request listener
 * (`http2.createServer(options, connectAdapter)`): Node serves the
 * compatibility API from a `stream` listener that it adds with the first
 * `request` listener. That listener (and any other `stream` listener) now
 * runs only for the streams `fastPath` declines, so a stream the fast path
 * serves never gets an `Http2ServerRequest`/`Http2ServerResponse` pair —
 * making that pair costs about 13% of a bare server's throughput.
 *
 * @throws Error when `server` has no request listener or no `stream`
 *   listener to put the fast path in front of (then Node no longer dispatches
 *   requests the way this relies on, and serving both would answer twice).
 */
export function installGrpcFastPath(server: http2.Http2Server, fastPath: GrpcFastPath): void {
  const dispatch = server.listeners("stream") as ((...args: unknown[]) => void)[];
  if (server.listenerCount("request") === 0 || dispatch.length === 0) {
    throw new Error(
      "installGrpcFastPath: the server has no request listener dispatched from a 'stream' listener",
    );
  }
  server.removeAllListeners("stream");
  server.on(
    "stream",
    function (
      this: http2.Http2Server,
      stream: http2.ServerHttp2Stream,
      headers: http2.IncomingHttpHeaders,
      flags: number,
      rawHeaders: string[],
    ) {
      if (fastPath(stream, headers)) return;
      for (const listener of dispatch) listener.call(this, stream, headers, flags, rawHeaders);
    },
  );
}

/** The fields of a `GetRequest` the fast path reads. */
interface GetFields {
  readonly group: string;
  readonly key: string;
}

/**
 * One Get on one stream: reads the single request message, then answers from
 * the cache at once or waits for `group.get`. Every exit goes through
 * {@link GetCall.settle}, once.
 *
 * A hit allocates this object, its `data`/`end` closures, the request's two
 * strings and the response frame; listeners for cancellation, the deadline
 * timer and an AbortController are added only when there is something to
 * cancel (a `grpc-timeout`, or a miss that waits).
 */
class GetCall {
  private done = false;
  /** The request side ended (END_STREAM received). */
  private ended = false;
  /** The body so far while it is one chunk (the usual case for a Get)… */
  private first: Buffer | undefined;
  /** …and all of it once a second chunk came. Only the first message is kept. */
  private chunks: Buffer[] | undefined;
  private buffered = 0;
  /** Length of the first message, once its 5-byte envelope header is in; -1 before. */
  private length = -1;
  private request: GetFields | undefined;
  /** Bytes seen after the first message (a second envelope, or garbage). */
  private extra = 0;
  private extraHeader: Buffer | undefined;
  private timer: NodeJS.Timeout | undefined;
  /** Only for a miss: aborts the wait in `group.get` when the caller leaves or its deadline passes. */
  private controller: AbortController | undefined;

  constructor(
    private readonly host: ServiceHost,
    private readonly readMaxBytes: number,
    private readonly stream: http2.ServerHttp2Stream,
    timeout: string | string[] | undefined,
  ) {
    stream.on("error", ignore); // a reset or a dead socket; "close" follows
    if (timeout !== undefined) {
      const ms = parseTimeout(timeout);
      if (ms === undefined) {
        this.fail(
          Code.InvalidArgument,
          `protocol error: invalid grpc timeout value: ${String(timeout)}`,
        );
        return;
      }
      if (ms <= MAX_TIMER_MS) {
        this.timer = setTimeout(() => this.deadline(), ms);
        this.watchClose();
      }
    }
    stream.on("data", (chunk: Buffer) => this.data(chunk));
    stream.on("end", () => this.end());
  }

  private data(chunk: Buffer): void {
    if (this.done) return;
    if (this.request !== undefined) {
      this.more(chunk, 0);
      return;
    }
    if (this.first === undefined) this.first = chunk;
    else if (this.chunks === undefined) this.chunks = [this.first, chunk];
    else this.chunks.push(chunk);
    this.buffered += chunk.byteLength;
    if (this.length < 0) {
      if (this.buffered < 5) return;
      const head = this.flatten();
      this.length = head.readUInt32BE(1);
      if (this.length > this.readMaxBytes) {
        this.fail(
          Code.ResourceExhausted,
          `message size ${this.length} is larger than configured readMaxBytes ${this.readMaxBytes}`,
        );
        return;
      }
    }
    const size = 5 + this.length;
    if (this.buffered < size) return;
    const body = this.flatten();
    this.first = undefined;
    this.chunks = undefined;
    if ((body[0]! & COMPRESSED) !== 0) {
      // Compressed without a grpc-encoding: gRPC says INTERNAL (the message cannot be read).
      this.fail(Code.Internal, "received compressed envelope, but do not know how to decompress");
      return;
    }
    try {
      this.request =
        decodeSimpleGetRequest(body, 5, size) ??
        fromBinary(GetRequestSchema, body.subarray(5, size));
    } catch (error) {
      this.fail(Code.Internal, `parse binary: ${message(error)}`);
      return;
    }
    if (body.byteLength > size) this.more(body, size);
  }

  /** Bytes after the first message: a unary call carries exactly one. */
  private more(chunk: Buffer, offset: number): void {
    const fresh = chunk.byteLength - offset;
    if (this.extra < 5) {
      const have = this.extraHeader ?? Buffer.alloc(0);
      this.extraHeader = Buffer.concat([
        have,
        chunk.subarray(offset, offset + 5 - have.byteLength),
      ]);
    }
    this.extra += fresh;
    if (this.extra < 5) return;
    const length = this.extraHeader!.readUInt32BE(1);
    if (length > this.readMaxBytes) {
      this.fail(
        Code.ResourceExhausted,
        `message size ${length} is larger than configured readMaxBytes ${this.readMaxBytes}`,
      );
    } else if (this.extra >= 5 + length) {
      this.fail(
        Code.Unimplemented,
        "protocol error: received extra input message for unary method",
      );
    }
  }

  private end(): void {
    this.ended = true;
    if (this.done) return;
    if (this.buffered === 0 && this.request === undefined) {
      this.fail(Code.Unimplemented, "protocol error: missing input message for unary method");
    } else if (this.request === undefined || this.extra > 0) {
      this.fail(Code.InvalidArgument, "protocol error: incomplete envelope");
    } else {
      this.serve(this.request);
    }
  }

  /** As `registerCacheService`'s `get`, with the hit answered synchronously. */
  private serve(request: GetFields): void {
    const group = this.host.group(request.group);
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
      checkKey(key, this.host.limits);
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
        if (!controller.signal.aborted) this.answer(encodeNotFound(message(error)));
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
    this.first = undefined;
    this.chunks = undefined;
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
    const size = view.length;
    if (size < ZERO_COPY_BYTES) {
      this.answer(encodeFound(view));
      return;
    }
    if (!this.settle(undefined)) return;
    const stream = this.stream;
    stream.on("wantTrailers", sendOkTrailers);
    stream.respond(OK_HEADERS, WITH_TRAILERS);
    const head = envelope(1 + varintSize(size), 1 + varintSize(size) + size + FOUND_TAIL.length);
    head[5] = 0x0a; // field 1, length-delimited
    writeVarint(head, 6, size);
    stream.cork();
    stream.write(head);
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
    const stream = this.stream;
    stream.respond(
      {
        ":status": 200,
        "content-type": CONTENT_TYPE,
        "grpc-status": String(code),
        "grpc-message": encodeURIComponent(text),
      },
      END_STREAM,
    );
    if (!this.ended) stream.close(NGHTTP2_NO_ERROR);
  }

  /** The buffered chunks as one buffer (no copy when there is one). */
  private flatten(): Buffer {
    const chunks = this.chunks;
    if (chunks === undefined) return this.first!;
    const whole = Buffer.concat(chunks, this.buffered);
    this.first = whole;
    this.chunks = undefined;
    return whole;
  }
}

/** A listener that does nothing: an "error" one so a reset stream does not throw; "close" follows. */
export function ignore(): void {}

function sendOkTrailers(this: http2.ServerHttp2Stream): void {
  this.sendTrailers(OK_TRAILERS);
}

/**
 * A `GetRequest` in its common shape, decoded by hand: only fields 1 and 2,
 * each with a length of at most two varint bytes, only ASCII. For such bytes
 * `fromBinary` gives exactly these strings (a later field replaces an earlier
 * one, and ASCII is its own UTF-8). Anything else — other fields, other wire
 * types, non-ASCII text, truncation — returns `undefined`, and the caller
 * decodes with `fromBinary`, so the answer is always `fromBinary`'s.
 */
export function decodeSimpleGetRequest(
  bytes: Buffer,
  start: number,
  end: number,
): GetFields | undefined {
  let group = "";
  let key = "";
  let at = start;
  while (at < end) {
    const tag = bytes[at++]!;
    if ((tag !== 0x0a && tag !== 0x12) || at >= end) return undefined;
    let length = bytes[at++]!;
    if (length >= 0x80) {
      if (at >= end) return undefined;
      const high = bytes[at++]!;
      if (high >= 0x80) return undefined;
      length = (length & 0x7f) | (high << 7);
    }
    const stop = at + length;
    if (stop > end) return undefined;
    for (let i = at; i < stop; i++) if (bytes[i]! >= 0x80) return undefined;
    // ASCII decodes the same as latin1 and as UTF-8.
    const text = bytes.toString("latin1", at, stop);
    if (tag === 0x0a) group = text;
    else key = text;
    at = stop;
  }
  return { group, key };
}

/** Milliseconds of a `grpc-timeout` value, or `undefined` if it is malformed. */
export function parseTimeout(value: string | string[]): number | undefined {
  if (typeof value !== "string") return undefined;
  const match = TIMEOUT_PATTERN.exec(value);
  if (match === null) return undefined;
  return Number(match[1]) * TIMEOUT_UNIT_MS[match[2]!]!;
}

/** Bytes of `value` as a protobuf varint. */
function varintSize(value: number): number {
  let size = 1;
  while (value >= 0x80) {
    value = Math.floor(value / 0x80);
    size++;
  }
  return size;
}

function writeVarint(target: Buffer, offset: number, value: number): number {
  while (value >= 0x80) {
    target[offset++] = (value & 0x7f) | 0x80;
    value = Math.floor(value / 0x80);
  }
  target[offset++] = value;
  return offset;
}

/**
 * A 5-byte gRPC envelope header (not compressed) for a `length`-byte message,
 * then `room` bytes for (the start of) the message.
 */
export function envelope(room: number, length = room): Buffer {
  const frame = Buffer.allocUnsafe(5 + room);
  frame[0] = 0;
  frame.writeUInt32BE(length, 1);
  return frame;
}

/**
 * `GetResponse { data, found: true }` in an envelope, byte for byte what
 * `toBinary(GetResponseSchema, …)` writes: field 1 (omitted when empty), then
 * field 2.
 */
export function encodeFound(view: ByteView): Buffer {
  const size = view.length;
  const length = (size === 0 ? 0 : 1 + varintSize(size) + size) + 2;
  const frame = envelope(length);
  let offset = 5;
  if (size > 0) {
    frame[offset++] = 0x0a; // field 1, length-delimited
    offset = writeVarint(frame, offset, size);
    offset += view.copyTo(frame, offset);
  }
  frame[offset++] = 0x10; // field 2 (found), varint
  frame[offset] = 0x01; // true
  return frame;
}

/** `GetResponse { found: false, err }` in an envelope (`err` omitted when empty, as proto3 does). */
export function encodeNotFound(err: string): Buffer {
  const size = Buffer.byteLength(err, "utf8");
  const length = size === 0 ? 0 : 1 + varintSize(size) + size;
  const frame = envelope(length);
  if (size > 0) {
    frame[5] = 0x1a; // field 3, length-delimited
    const offset = writeVarint(frame, 6, size);
    frame.write(err, offset, "utf8");
  }
  return frame;
}
