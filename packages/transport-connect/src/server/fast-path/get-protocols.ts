// The four ways the Get fast path speaks: plain gRPC, binary gRPC-Web, and
// Connect unary in binary and JSON — which requests each takes, how it reads
// a request and a deadline, and the bytes of its answers and errors (those
// Connect's own handler sends).
import type * as http2 from "node:http2";
import { create, fromBinary } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { createMethodSerializationLookup } from "@connectrpc/connect/protocol";
import {
  contentTypeUnaryJson,
  contentTypeUnaryProto,
  parseTimeout as parseConnectTimeout,
} from "@connectrpc/connect/protocol-connect";
import { trailerFlag, trailerSerialize } from "@connectrpc/connect/protocol-grpc-web";
import { ByteView } from "@distcache/core";
import { errorMessage } from "../../error-message.js";
import { CacheService, GetRequestSchema, GetResponseSchema } from "../../gen/distcache/cache_pb.js";
import { ENVELOPE_HEADER_BYTES } from "../../grpc/envelope.js";
import { OK_HEADERS, OK_TRAILERS, respondWithStatus, sendOkTrailers } from "../../grpc/status.js";
import { MAX_TIMER_MS, requestTimeout } from "../../grpc/timeout.js";
import { LARGE_WRITE_BYTES, respondWithError, strictJsonOptions } from "../guard.js";
import { isPlainGrpcCall } from "./fast-path.js";
import {
  decodeSimpleGetRequest,
  encodeFound,
  encodeFoundHead,
  encodeNotFound,
  FOUND_TAIL,
  type GetFields,
} from "./get-codec.js";

/** How one protocol carries a Get: reading its request, answering it. */
export interface GetProtocol {
  /**
   * `undefined`: the body is one enveloped message (gRPC, gRPC-Web), read by
   * the call. Otherwise the body is the bare message, parsed by this (throws
   * the ConnectError Connect would answer).
   */
  readonly parseBody: ((body: Buffer) => GetFields) | undefined;
  /**
   * The deadline the request states, in ms: `undefined` for none (or one
   * longer than a timer holds), a ConnectError (INVALID_ARGUMENT) for a
   * malformed one.
   */
  timeout(headers: http2.IncomingHttpHeaders): number | ConnectError | undefined;
  /**
   * The response bytes a `found` answer of a `size`-byte value would copy
   * and queue: what the call counts against the byte budget before making it.
   */
  answerBytes(size: number): number;
  /**
   * Answers `found: true` with `view`, then status OK. A value of at least
   * {@link LARGE_WRITE_BYTES} is written from the cache's own bytes where the
   * protocol allows (binary), or encoded once (JSON); `sent` runs once the
   * answer is out or the stream is gone.
   */
  found(stream: http2.ServerHttp2Stream, view: ByteView, sent: () => void): void;
  /** Answers `found: false` with `err`, then status OK. */
  notFound(stream: http2.ServerHttp2Stream, err: string): void;
  /** Ends the call with an error: `code` and `message`, no response message. */
  fail(stream: http2.ServerHttp2Stream, code: Code, message: string): void;
}

/** The frames of a binary protocol: how it sends one message (given as a gRPC frame), whole or in pieces. */
interface BinaryFraming {
  /** Sends `frame` (one response message, envelope header included) and ends the call with status OK. */
  whole(stream: http2.ServerHttp2Stream, frame: Buffer): void;
  /**
   * Sends one message in three pieces — `head` (envelope header included),
   * `value` (not copied; `sent` runs once it is out), `tail` — in one corked
   * write, and ends the call with status OK.
   */
  pieces(
    stream: http2.ServerHttp2Stream,
    head: Buffer,
    value: Uint8Array,
    tail: Buffer,
    sent: () => void,
  ): void;
}

/** A binary protocol's answers, from its framing and the hand-written codec (get-codec.ts). */
function binaryProtocol(
  framing: BinaryFraming,
  parts: Pick<GetProtocol, "parseBody" | "timeout" | "fail">,
): GetProtocol {
  return {
    ...parts,
    // The value is not copied; only the frame around it is.
    answerBytes: (size) => size,
    found(stream, view, sent) {
      if (view.length < LARGE_WRITE_BYTES) {
        framing.whole(stream, encodeFound(view));
        sent();
        return;
      }
      framing.pieces(stream, encodeFoundHead(view.length), ByteView.unwrap(view), FOUND_TAIL, sent);
    },
    notFound: (stream, err) => framing.whole(stream, encodeNotFound(err)),
  };
}

const WITH_TRAILERS = { waitForTrailers: true };

/** Plain gRPC: headers, messages, `grpc-status` in HTTP/2 trailers. */
const GRPC = binaryProtocol(
  {
    whole(stream, frame) {
      stream.on("wantTrailers", sendOkTrailers);
      stream.respond(OK_HEADERS, WITH_TRAILERS);
      stream.end(frame);
    },
    pieces(stream, head, value, tail, sent) {
      stream.on("wantTrailers", sendOkTrailers);
      stream.respond(OK_HEADERS, WITH_TRAILERS);
      stream.cork();
      stream.write(head);
      stream.write(value, sent);
      stream.end(tail); // end() uncorks: one write of the three pieces
    },
  },
  {
    parseBody: undefined,
    timeout: (headers) => requestTimeout(headers["grpc-timeout"]),
    fail: (stream, code, message) => respondWithStatus(stream, code, message),
  },
);

/** The content type the fast path answers gRPC-Web with (Connect answers `application/grpc-web+proto`). */
export const GRPC_WEB_CONTENT_TYPE = "application/grpc-web";
const GRPC_WEB_HEADERS: http2.OutgoingHttpHeaders = {
  ":status": 200,
  "content-type": GRPC_WEB_CONTENT_TYPE,
};

/** gRPC-Web's OK trailers: a frame flagged 0x80 in the body, as Connect serializes them. */
const GRPC_WEB_OK_TRAILER = (() => {
  const trailer = trailerSerialize(new Headers(OK_TRAILERS as Record<string, string>));
  const frame = Buffer.alloc(ENVELOPE_HEADER_BYTES + trailer.byteLength);
  frame[0] = trailerFlag;
  frame.writeUInt32BE(trailer.byteLength, 1);
  frame.set(trailer, ENVELOPE_HEADER_BYTES);
  return frame;
})();

/** gRPC-Web (binary): gRPC's messages, its trailers as a last frame in the body (no HTTP trailers). */
const GRPC_WEB = binaryProtocol(
  {
    whole(stream, frame) {
      stream.respond(GRPC_WEB_HEADERS);
      stream.cork();
      stream.write(frame);
      stream.end(GRPC_WEB_OK_TRAILER);
    },
    pieces(stream, head, value, tail, sent) {
      stream.respond(GRPC_WEB_HEADERS);
      stream.cork();
      stream.write(head);
      stream.write(value, sent);
      stream.write(tail);
      stream.end(GRPC_WEB_OK_TRAILER);
    },
  },
  {
    parseBody: undefined,
    timeout: (headers) => requestTimeout(headers["grpc-timeout"]),
    // Trailers-only: the status in the headers, as gRPC-Web allows.
    fail: (stream, code, message) =>
      respondWithStatus(stream, code, message, GRPC_WEB_CONTENT_TYPE),
  },
);

/** `connect-timeout-ms`, read as Connect reads it; longer than a timer holds: none. */
function connectTimeout(headers: http2.IncomingHttpHeaders): number | ConnectError | undefined {
  const header = headers["connect-timeout-ms"];
  if (header === undefined) return undefined;
  const { timeoutMs, error } = parseConnectTimeout(
    typeof header === "string" ? header : String(header),
    Number.MAX_SAFE_INTEGER,
  );
  if (error !== undefined) return error;
  return timeoutMs !== undefined && timeoutMs <= MAX_TIMER_MS ? timeoutMs : undefined;
}

/** Connect's unary error: HTTP's status for the code and its JSON error body. */
const connectFail = (stream: http2.ServerHttp2Stream, code: Code, message: string) =>
  respondWithError(stream, undefined, code, message);

/**
 * Connect unary (binary): the bare message as the body, its length in
 * `content-length`. The answer is never compressed (the protocol lets a
 * server answer `identity` whatever the client accepts).
 */
const CONNECT_PROTO = binaryProtocol(
  {
    whole(stream, frame) {
      stream.respond({
        ":status": 200,
        "content-type": contentTypeUnaryProto,
        "content-length": frame.byteLength - ENVELOPE_HEADER_BYTES,
      });
      stream.end(frame.subarray(ENVELOPE_HEADER_BYTES));
    },
    pieces(stream, head, value, tail, sent) {
      const start = head.subarray(ENVELOPE_HEADER_BYTES);
      stream.respond({
        ":status": 200,
        "content-type": contentTypeUnaryProto,
        "content-length": start.byteLength + value.byteLength + tail.byteLength,
      });
      stream.cork();
      stream.write(start);
      stream.write(value, sent);
      stream.end(tail);
    },
  },
  {
    parseBody(body) {
      try {
        return (
          decodeSimpleGetRequest(body, 0, body.byteLength) ?? fromBinary(GetRequestSchema, body)
        );
      } catch (error) {
        throw new ConnectError(`parse binary: ${errorMessage(error)}`, Code.Internal);
      }
    },
    timeout: connectTimeout,
    fail: connectFail,
  },
);

/** Connect's own JSON (de)serialization of Get, with the server's strict UTF-8 decoding. */
const getJson = createMethodSerializationLookup(
  CacheService.method.get,
  undefined,
  strictJsonOptions,
  {
    // The call enforces readMaxBytes itself, from content-length and as the body arrives.
    readMaxBytes: 0xffffffff,
    writeMaxBytes: 0xffffffff,
  },
);

/**
 * Connect unary (JSON): Connect's JSON, byte for byte. A found value is
 * base64 in the answer, so it is always a copy: `{"data":"…","found":true}`
 * is written with Node's base64 encoder (what `toJsonString` writes, in
 * field order), the rest with Connect's own serializer.
 */
const CONNECT_JSON: GetProtocol = {
  parseBody: (body) => getJson.getI(false).parse(body),
  timeout: connectTimeout,
  answerBytes: (size) => Math.ceil(size / 3) * 4 + 32,
  found(stream, view, sent) {
    const bytes = ByteView.unwrap(view);
    const json =
      bytes.byteLength === 0
        ? '{"found":true}'
        : `{"data":"${Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("base64")}","found":true}`;
    const body = Buffer.from(json, "latin1");
    stream.respond({
      ":status": 200,
      "content-type": contentTypeUnaryJson,
      "content-length": body.byteLength,
    });
    stream.end(body, sent);
  },
  notFound(stream, err) {
    const body = getJson.getO(false).serialize(create(GetResponseSchema, { found: false, err }));
    stream.respond({
      ":status": 200,
      "content-type": contentTypeUnaryJson,
      "content-length": body.byteLength,
    });
    stream.end(body);
  },
  fail: connectFail,
};

/**
 * The protocol of a Get the fast path takes, or `undefined` for one it
 * leaves to Connect: anything but a POST to `path`; gRPC JSON; gRPC-Web
 * text or JSON; a compressed request (`grpc-encoding` or `content-encoding`
 * other than identity). `application/grpc-web` means proto, as
 * `application/grpc` does.
 */
export function getProtocolOf(
  headers: http2.IncomingHttpHeaders,
  path: string,
): GetProtocol | undefined {
  if (isPlainGrpcCall(headers, path)) return GRPC;
  if (headers[":path"] !== path || headers[":method"] !== "POST") return undefined;
  const contentType = headers["content-type"];
  if (contentType === contentTypeUnaryProto || contentType === contentTypeUnaryJson) {
    const encoding = headers["content-encoding"];
    if (encoding !== undefined && encoding !== "identity") return undefined;
    return contentType === contentTypeUnaryProto ? CONNECT_PROTO : CONNECT_JSON;
  }
  if (contentType === GRPC_WEB_CONTENT_TYPE || contentType === "application/grpc-web+proto") {
    const encoding = headers["grpc-encoding"];
    return encoding === undefined || encoding === "identity" ? GRPC_WEB : undefined;
  }
  return undefined;
}

/** Connect's answer to a unary body past `readMaxBytes` (limit-io.ts's words). */
export function readMaxBytesError(readMaxBytes: number, declared?: number): ConnectError {
  return new ConnectError(
    declared === undefined
      ? `message size is larger than configured readMaxBytes ${readMaxBytes}`
      : `message size ${declared} is larger than configured readMaxBytes ${readMaxBytes}`,
    Code.ResourceExhausted,
  );
}
