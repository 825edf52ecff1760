// The authentication step of admission: which calls need credentials (peer
// calls; client writes, and reads when configured) and the refusal of one
// that lacks them, from its headers alone, before its body is read.
import type * as http2 from "node:http2";
import type { Code } from "@connectrpc/connect";
import { codeToHttpStatus, codeToString } from "@connectrpc/connect/protocol-connect";
import { CacheService } from "../gen/distcache/cache_pb.js";
import { methodPath } from "../grpc/methods.js";
import { stopRequestAfterResponse } from "../grpc/status.js";
import type { ClientTokens } from "./client-tokens.js";
import { connectEndStream, respondWithError } from "./guard.js";
import type { PeerIdentity, Refusal } from "./peer-identity.js";

const PEER_PREFIX = "/distcache.peer.v1.PeerService/";
const CACHE_PREFIX = `/${CacheService.typeName}/`;
const GET_PATH = methodPath(CacheService.method.get);

/** Headers as both HTTP/2 streams and HTTP/1.1 requests give them. */
type Headers = http2.IncomingHttpHeaders;

/**
 * Decides, from a call's headers, whether it may proceed; answers the ones
 * that may not (UNAUTHENTICATED or PERMISSION_DENIED, in the caller's
 * protocol) without reading their body. Built once per server.
 */
export class AuthGate {
  constructor(
    private readonly peers: PeerIdentity,
    private readonly clients: ClientTokens | undefined,
  ) {}

  /** Whether any call needs a look: without a secret, mTLS or client tokens the gate is left out. */
  get active(): boolean {
    return this.peers.required || this.clients !== undefined;
  }

  /** Whether a client Get needs a token (then the gate runs before the Get fast path). */
  get guardsReads(): boolean {
    return this.clients?.guardsReads === true;
  }

  /** Refuses an HTTP/2 stream without the credentials its call needs; returns whether it did. */
  refuse = (stream: http2.ServerHttp2Stream, headers: Headers): boolean => {
    const refusal = this.check(headers, stream.session as http2.ServerHttp2Session | undefined);
    if (refusal === undefined) return false;
    respondWithError(stream, headers["content-type"], refusal[0], refusal[1]);
    // The body is never read: tell a client still sending it to stop (a
    // Connect streaming client otherwise keeps the stream, and a close of
    // the server, waiting).
    if (!stream.endAfterHeaders) stopRequestAfterResponse(stream);
    return true;
  };

  /** As {@link refuse}, for an HTTP/1.1 request (gRPC-Web or Connect on a TLS port). */
  refuseHttp1(
    request: { url?: string | undefined; headers: Headers },
    response: Http1Response,
  ): boolean {
    const refusal = this.check({ ...request.headers, ":path": request.url }, undefined);
    if (refusal === undefined) return false;
    respondHttp1(response, request.headers["content-type"], refusal[0], refusal[1]);
    return true;
  }

  /**
   * Why a peer stream opened with these headers would be refused now (after
   * a secret rotation), or `undefined`. Not counted as a refused call: the
   * stream's calls were admitted when it opened.
   */
  peerRefusal(
    headers: Headers,
    session: http2.ServerHttp2Session | undefined,
  ): Refusal | undefined {
    return this.peers.required ? this.peers.admit(headers, session, false) : undefined;
  }

  private check(
    headers: Headers,
    session: http2.ServerHttp2Session | undefined,
  ): Refusal | undefined {
    const path = headers[":path"];
    if (typeof path !== "string") return undefined;
    if (path.startsWith(PEER_PREFIX)) {
      return this.peers.required ? this.peers.admit(headers, session) : undefined;
    }
    const clients = this.clients;
    if (clients === undefined || !path.startsWith(CACHE_PREFIX)) return undefined;
    const isGet =
      path.startsWith(GET_PATH) &&
      (path.length === GET_PATH.length || path[GET_PATH.length] === "?");
    if (isGet && !clients.guardsReads) return undefined;
    return clients.check(headers.authorization, isGet ? "read" : "write");
  }
}

/** What {@link AuthGate.refuseHttp1} writes to (an `http.ServerResponse` or `Http2ServerResponse`). */
export interface Http1Response {
  writeHead(status: number, headers: Record<string, string | number>): unknown;
  end(chunk?: string | Buffer): unknown;
}

/**
 * Answers an HTTP/1.1 call with `code`: gRPC-Web as a trailers-only response
 * (status in the headers), Connect streaming as its end-of-stream message,
 * Connect unary as its JSON error.
 */
function respondHttp1(
  response: Http1Response,
  contentType: string | undefined,
  code: Code,
  message: string,
): void {
  if (contentType?.startsWith("application/grpc")) {
    response.writeHead(200, {
      "content-type": contentType.split(";", 1)[0]!,
      "grpc-status": code,
      "grpc-message": encodeURIComponent(message),
    });
    response.end();
    return;
  }
  if (contentType?.startsWith("application/connect+")) {
    response.writeHead(200, { "content-type": contentType.split(";", 1)[0]! });
    response.end(connectEndStream(code, message));
    return;
  }
  const body = JSON.stringify({ code: codeToString(code), message });
  response.writeHead(codeToHttpStatus(code), {
    "content-type": "application/json",
    "content-length": Buffer.byteLength(body),
  });
  response.end(body);
}
