// How a hand-written gRPC path ends a call: the response headers and OK
// trailers it shares, the trailers of an error, and the one trailers-only
// error response (used by the fast paths and by admission control).
import * as http2 from "node:http2";
import type { Code } from "@connectrpc/connect";
import { grpcStatusOk } from "@connectrpc/connect/protocol-grpc";

/** The content type the fast paths answer with (Connect answers `application/grpc+proto`). */
export const GRPC_CONTENT_TYPE = "application/grpc";

// Shared, never mutated: `respond` and `sendTrailers` copy what they are given.
/** Headers of a gRPC response that carries messages. */
export const OK_HEADERS: http2.OutgoingHttpHeaders = {
  ":status": 200,
  "content-type": GRPC_CONTENT_TYPE,
};
/** Trailers of a call that ended with status OK. */
export const OK_TRAILERS: http2.OutgoingHttpHeaders = { "grpc-status": grpcStatusOk };
const END_STREAM = { endStream: true };

/** A `wantTrailers` listener that ends the call with status OK. */
export function sendOkTrailers(this: http2.ServerHttp2Stream): void {
  this.sendTrailers(OK_TRAILERS);
}

/** Trailers that end a call, after its messages, with `code` and `message`. */
export function statusTrailers(code: Code, message: string): http2.OutgoingHttpHeaders {
  return { "grpc-status": String(code), "grpc-message": encodeURIComponent(message) };
}

/**
 * Ends `stream` with a trailers-only response: HTTP 200, and `code` with the
 * percent-encoded `message` in the headers, no body. `contentType` is the
 * family to answer in (`application/grpc-web+proto` for a gRPC-Web caller).
 * The caller checks the stream is still open and has not responded.
 */
export function respondWithStatus(
  stream: http2.ServerHttp2Stream,
  code: Code,
  message: string,
  contentType: string = GRPC_CONTENT_TYPE,
): void {
  stream.respond(
    {
      ":status": 200,
      "content-type": contentType,
      "grpc-status": String(code),
      "grpc-message": encodeURIComponent(message),
    },
    END_STREAM,
  );
}

/**
 * After a complete response, tells a client still sending its request to
 * stop (RST_STREAM with NO_ERROR, RFC 9113 §8.1). Sent on the next turn, once
 * the response's frames are out: a reset in the same turn made Node 22 drop
 * the response headers, and the client saw no status at all.
 */
export function stopRequestAfterResponse(stream: http2.ServerHttp2Stream): void {
  setImmediate(closeWithNoError, stream);
}

function closeWithNoError(stream: http2.ServerHttp2Stream): void {
  if (!stream.closed && !stream.destroyed) stream.close(http2.constants.NGHTTP2_NO_ERROR);
}
