// What a fast path is (a hand-written handler that takes some HTTP/2 streams
// before Connect sees them) and the one rule for which calls it may take.
import type * as http2 from "node:http2";
import { contentTypeProto } from "@connectrpc/connect/protocol-grpc";
import { GRPC_CONTENT_TYPE } from "../../grpc/status.js";

/**
 * Serves one HTTP/2 stream if it is a call the fast path takes, and returns
 * `true`. Returns `false` without touching the stream (no listener added,
 * nothing read or written) otherwise, so the caller hands it to Connect.
 */
export type FastPath = (
  stream: http2.ServerHttp2Stream,
  headers: http2.IncomingHttpHeaders,
) => boolean;

/**
 * Whether `headers` open an uncompressed binary gRPC call of `path`: the only
 * calls a fast path takes. gRPC-Web, Connect, JSON and compressed requests
 * (and an unknown encoding's UNIMPLEMENTED answer) are Connect's.
 */
export function isPlainGrpcCall(headers: http2.IncomingHttpHeaders, path: string): boolean {
  if (headers[":path"] !== path || headers[":method"] !== "POST") return false;
  const contentType = headers["content-type"];
  if (contentType !== GRPC_CONTENT_TYPE && contentType !== contentTypeProto) return false;
  const encoding = headers["grpc-encoding"];
  return encoding === undefined || encoding === "identity";
}

/**
 * The fast path that takes the plain gRPC calls of `path` (see
 * {@link isPlainGrpcCall}): `serve` answers each, given its `grpc-timeout`.
 */
export function fastPathFor(
  path: string,
  serve: (
    stream: http2.ServerHttp2Stream,
    timeout: string | string[] | undefined,
    headers: http2.IncomingHttpHeaders,
  ) => void,
): FastPath {
  return (stream, headers) => {
    if (!isPlainGrpcCall(headers, path)) return false;
    serve(stream, headers["grpc-timeout"], headers);
    return true;
  };
}

/** `readMaxBytes`, once checked to be an integer >= 1. */
export function checkReadMaxBytes(readMaxBytes: number): number {
  if (!Number.isInteger(readMaxBytes) || readMaxBytes < 1) {
    throw new RangeError(`readMaxBytes must be an integer >= 1, got ${readMaxBytes}`);
  }
  return readMaxBytes;
}

/** A stream "error" listener that does nothing, so a reset stream does not throw; "close" follows. */
export function ignore(): void {}
