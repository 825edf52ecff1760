// What the user is told when a call fails below the in-band answers: a status
// code from the node (overload, refusal, limits), or a transport failure, with
// the likely cause of TLS / HTTP/1.1 mismatches spelled out.
import { Code, ConnectError } from "@connectrpc/connect";

/** Where and how the call was made, for the message. */
export interface CallTarget {
  /** The base URL called, e.g. `http://127.0.0.1:8001`. */
  readonly url: URL;
  readonly timeoutMs: number;
}

/** The `code` strings of `error` and its causes (Node's `ECONNREFUSED`, `ERR_SSL_…`). */
function causeCodes(error: unknown): string[] {
  const codes: string[] = [];
  let current: unknown = error;
  for (let depth = 0; depth < 5 && current instanceof Error; depth++) {
    const code = (current as { code?: unknown }).code;
    if (typeof code === "string") codes.push(code);
    current = current.cause;
  }
  return codes;
}

/** `CATEGORY: DETAIL` for a failed call (always exit 2). */
export function describeCallError(error: unknown, target: CallTarget): string {
  const connect = ConnectError.from(error);
  const codes = causeCodes(connect.cause ?? error);
  const has = (code: string) => codes.includes(code);
  const where = target.url.host;
  const raw = connect.rawMessage.trim();
  const plain = target.url.protocol === "http:";

  // Before any answer: TCP, DNS, TLS, HTTP/2.
  if (has("ECONNREFUSED")) {
    return `transport error: cannot connect to ${where}: connection refused (is a node running there? --addr)`;
  }
  if (has("ENOTFOUND") || has("EAI_AGAIN")) {
    return `transport error: cannot resolve the host of ${where} (--addr)`;
  }
  if (has("ERR_SSL_WRONG_VERSION_NUMBER") || /wrong version number/.test(raw)) {
    return `transport error: TLS handshake with ${where} failed: the server does not speak TLS. This node serves plain h2c (HTTP/2 without TLS; it was started without --tls-cert): use --addr ${where} or http://${where}`;
  }
  if (has("ERR_SSL_TLSV1_ALERT_NO_APPLICATION_PROTOCOL")) {
    return `transport error: the TLS server at ${where} does not offer HTTP/2 (no ALPN "h2"): it is likely an HTTP/1.1-only server; gRPC, gRPC-Web and Connect here need HTTP/2`;
  }
  const tls = codes.find(
    (code) =>
      code.startsWith("ERR_SSL_") ||
      code.startsWith("ERR_TLS_") ||
      /CERT|SELF_SIGNED|UNABLE_TO_VERIFY/.test(code),
  );
  if (tls !== undefined) {
    return `transport error: TLS with ${where} failed (${tls}: ${raw}); for a private CA give --tls-ca FILE`;
  }
  if (has("ERR_HTTP2_ERROR") || has("ERR_HTTP2_SESSION_ERROR") || /^Protocol error$/.test(raw)) {
    return `transport error: ${where} did not answer in HTTP/2 (${raw}): it is likely an HTTP/1.1-only server. DistCache nodes serve h2c (HTTP/2 without TLS, with prior knowledge) on their port`;
  }
  if (has("ECONNRESET") || has("EPIPE") || /socket hang up/.test(raw)) {
    return `transport error: ${where} closed the connection (${raw})${plain ? "; if it expects TLS, use https://" : ""}`;
  }

  switch (connect.code) {
    case Code.DeadlineExceeded:
    case Code.Canceled:
      // We never cancel a call ourselves: a cancel is the deadline as the HTTP/2 stream saw it.
      return `transport error: no answer from ${where} within ${target.timeoutMs} ms (--timeout): the node may be overloaded or stuck${plain ? ", or it expects TLS (use https://)" : ""}`;
    case Code.Unavailable:
      if (raw.startsWith("overloaded:")) return `node overloaded: ${raw} (try again)`;
      return `transport error: ${where} is unavailable: ${raw}`;
    case Code.ResourceExhausted:
      return raw.startsWith("overloaded:")
        ? `node overloaded: ${raw} (try again)`
        : `refused by the node: ${raw} (the request is over its read limit)`;
    case Code.PermissionDenied:
      return `refused by the node: ${raw}`;
    case Code.Unauthenticated:
      return `refused by the node: ${raw} (give a token: --token TOKEN or DISTCACHE_TOKEN)`;
    case Code.InvalidArgument:
      if (raw.startsWith("key ")) return `bad key: ${raw}`;
      if (raw.startsWith("value ")) return `bad value: ${raw}`;
      return `bad request: ${raw}`;
    case Code.Unimplemented:
      return `transport error: ${where} does not serve distcache.CacheService (${raw}): is it a DistCache node?`;
    default:
      return `transport error: ${connect.message}`;
  }
}
