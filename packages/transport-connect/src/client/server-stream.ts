// One plain gRPC call from this node to a peer on its HTTP/2 session, without
// the Connect client: request framing, response reading, the deadline,
// cancellation, and how each way a call can end maps to a status.
import * as http2 from "node:http2";
import { Code, ConnectError } from "@connectrpc/connect";
import { codeFromHttpStatus } from "@connectrpc/connect/protocol-grpc";
import type { Http2SessionManager } from "@connectrpc/connect-node";
import { errorMessage } from "../error-message.js";
import { EnvelopeReader } from "../grpc/envelope.js";
import { CallDeadline, type StreamDeadline } from "./call-deadline.js";

export type { StreamDeadline } from "./call-deadline.js";

/** Called with each response message; its bytes are only valid during the call. */
export type OnResponseMessage = (message: Uint8Array) => void;

/** Largest response message accepted from a peer (a server sends ~1 MiB, plus one value). */
export const MAX_RESPONSE_MESSAGE_BYTES = 32 << 20;

const { NGHTTP2_CANCEL, NGHTTP2_NO_ERROR, NGHTTP2_REFUSED_STREAM, NGHTTP2_ENHANCE_YOUR_CALM } =
  http2.constants;
const STREAM_HEADERS: http2.OutgoingHttpHeaders = {
  "content-type": "application/grpc+proto",
  te: "trailers",
  "user-agent": "distcache-peer",
};

/**
 * The request headers of a peer's calls with one deadline `maxMs` (sent as
 * `grpc-timeout`; `undefined`: none, for a long-lived Exchange stream) and
 * this node's peer `credentials`: made once, and again
 * only when the credentials change (a secret rotation rewrites that object in
 * place), not per call.
 */
export class StreamHeaders {
  private made: Readonly<http2.OutgoingHttpHeaders> | undefined;
  /** The credentials `made` was made from: a copy, to compare against. */
  private seen: Record<string, string> = {};
  private seenCount = 0;

  constructor(
    private readonly maxMs: number | undefined,
    private readonly credentials: Readonly<Record<string, string>> = {},
  ) {}

  /** The headers for a call now. */
  current(): Readonly<http2.OutgoingHttpHeaders> {
    if (this.made === undefined || this.changed()) {
      this.seen = { ...this.credentials };
      this.seenCount = Object.keys(this.seen).length;
      const maxMs = this.maxMs;
      this.made = Object.freeze(
        maxMs === undefined
          ? { ...STREAM_HEADERS, ...this.seen }
          : {
              ...STREAM_HEADERS,
              ...this.seen,
              "grpc-timeout": `${Math.max(1, Math.ceil(maxMs))}m`,
            },
      );
    }
    return this.made;
  }

  private changed(): boolean {
    let count = 0;
    for (const name in this.credentials) {
      if (this.seen[name] !== this.credentials[name]) return true;
      count++;
    }
    return count !== this.seenCount;
  }
}

/**
 * One server-streaming gRPC call over a peer's session (a unary one too: on
 * the wire it is one response message, then the status). It skips the
 * Connect client's per-call machinery (async-iterator pipelines, web
 * `Headers`, abort controllers and errors made on every normal close): a
 * batch's answers arrive as a few messages, and that machinery cost more
 * than reading them. gRPC over HTTP/2 as specified: a POST with
 * `te: trailers` and `grpc-timeout`, one length-prefixed request message,
 * response messages until the trailers, whose `grpc-status` ends the call.
 *
 * {@link ServerStreamCall.run} resolves when the call ends with status OK and
 * rejects with a {@link ConnectError}: the server's status, DEADLINE_EXCEEDED
 * past the deadline, CANCELED when the signal aborts, UNAVAILABLE when the
 * peer cannot be reached or the connection breaks, INTERNAL for a malformed
 * answer, RESOURCE_EXHAUSTED for a message over
 * {@link MAX_RESPONSE_MESSAGE_BYTES}.
 */
export class ServerStreamCall {
  /**
   * Makes one call of `path` with `frame` (the request message in its
   * envelope) on `session`, handing each response message to `onMessage`;
   * `headers` are the request's, from a {@link StreamHeaders} with the
   * deadline's `maxMs`.
   */
  static run(
    session: Http2SessionManager,
    path: string,
    frame: Buffer,
    deadline: StreamDeadline,
    signal: AbortSignal | undefined,
    onMessage: OnResponseMessage,
    headers: Readonly<http2.OutgoingHttpHeaders>,
  ): Promise<void> {
    if (signal?.aborted) return Promise.reject(cancelled(signal));
    const call = new ServerStreamCall(session, deadline, signal, onMessage, headers);
    return new Promise<void>((resolve, reject) => call.start(path, frame, resolve, reject));
  }

  private readonly reader = new EnvelopeReader(MAX_RESPONSE_MESSAGE_BYTES);
  private resolve: (() => void) | undefined;
  private reject: ((error: ConnectError) => void) | undefined;
  private stream: http2.ClientHttp2Stream | undefined;
  private frame: Buffer | undefined;
  private timer: CallDeadline | undefined;
  private done = false;
  /** The status: the trailers, or response headers that carry `grpc-status` (trailers-only). */
  private trailers: http2.IncomingHttpHeaders | undefined;
  /** The stream's error (a reset or a broken connection); its "close" reports it. */
  private failure: Error | undefined;

  private constructor(
    private readonly session: Http2SessionManager,
    private readonly deadline: StreamDeadline,
    /** Cancels the call; `undefined` for a call only its deadline ends (a replication push). */
    private readonly signal: AbortSignal | undefined,
    private readonly onMessage: OnResponseMessage,
    private readonly headers: Readonly<http2.OutgoingHttpHeaders>,
  ) {}

  private start(
    path: string,
    frame: Buffer,
    resolve: () => void,
    reject: (error: ConnectError) => void,
  ): void {
    this.resolve = resolve;
    this.reject = reject;
    this.frame = frame;
    // The deadline runs from the call, connecting included, as Connect's does;
    // with `progress`, it runs from the peer's last sign of progress instead.
    this.timer = new CallDeadline(this.deadline, this.onExpired);
    this.signal?.addEventListener("abort", this.onAbort, { once: true });
    this.session.request("POST", path, this.headers, {}).then(this.onOpened, this.onUnreachable);
  }

  private finish(error?: ConnectError): void {
    if (this.done) return;
    this.done = true;
    this.timer?.stop();
    this.signal?.removeEventListener("abort", this.onAbort);
    const stream = this.stream;
    if (stream !== undefined && !stream.closed) stream.close(NGHTTP2_CANCEL);
    if (error === undefined) this.resolve!();
    else this.reject!(error);
  }

  private readonly onExpired = (error: ConnectError): void => this.finish(error);

  private readonly onAbort = (): void => this.finish(cancelled(this.signal!));

  private readonly onUnreachable = (error: unknown): void => this.finish(unreachable(error));

  private readonly onOpened = (stream: http2.ClientHttp2Stream): void => {
    this.stream = stream;
    if (this.done) {
      stream.close(NGHTTP2_CANCEL);
      return;
    }
    stream.on("response", this.onResponse);
    stream.on("trailers", this.onTrailers);
    stream.on("data", this.onData);
    stream.on("error", this.onError);
    stream.on("close", this.onClose);
    const frame = this.frame!;
    this.frame = undefined;
    stream.end(frame);
  };

  private readonly onResponse = (head: http2.IncomingHttpHeaders): void => {
    const refused = refusedResponse(head);
    if (refused !== undefined) {
      this.finish(refused);
      return;
    }
    if (head["grpc-status"] !== undefined) this.trailers = head;
  };

  private readonly onTrailers = (tail: http2.IncomingHttpHeaders): void => {
    this.trailers = tail;
  };

  private readonly onData = (chunk: Buffer): void => {
    if (this.done) return;
    this.session.notifyResponseByteRead(this.stream!);
    try {
      this.reader.push(chunk, this.onEnvelope);
    } catch (error) {
      this.finish(ConnectError.from(error, Code.Internal));
    }
  };

  private readonly onEnvelope = (flags: number, message: Buffer): void => {
    if (flags !== 0) throw new ConnectError(`peer sent message flags ${flags}`, Code.Internal);
    this.onMessage(message);
  };

  private readonly onError = (error: Error): void => {
    this.failure = error;
  };

  private readonly onClose = (): void => {
    if (this.done) return;
    const trailers = this.trailers;
    if (trailers === undefined) {
      this.finish(closedWithout(this.stream!.rstCode, this.failure));
      return;
    }
    const status = statusOf(trailers);
    if (status === undefined) {
      this.finish(
        this.reader.pendingBytes === 0
          ? undefined
          : new ConnectError("peer ended the call inside a message", Code.Internal),
      );
      return;
    }
    this.finish(status);
  };
}

/**
 * The error a response's headers give before any message: not HTTP 200, or
 * not gRPC; `undefined` when the call goes on.
 */
export function refusedResponse(head: http2.IncomingHttpHeaders): ConnectError | undefined {
  const status = Number(head[":status"]);
  if (status !== 200) {
    return new ConnectError(`peer answered HTTP ${status}`, codeFromHttpStatus(status));
  }
  const type = head["content-type"];
  if (typeof type !== "string" || !type.startsWith("application/grpc")) {
    return new ConnectError(`peer answered content-type ${type}`, Code.Internal);
  }
  return undefined;
}

/**
 * The error the status in `trailers` (or a trailers-only response's headers)
 * says, `undefined` for OK. Read here rather than with protocol-grpc's
 * findTrailerError: that one wants web `Headers` and throws on a malformed
 * `grpc-message`.
 */
export function statusOf(trailers: http2.IncomingHttpHeaders): ConnectError | undefined {
  const code = Number(trailers["grpc-status"]);
  if (code === 0) return undefined;
  const text = trailers["grpc-message"];
  return new ConnectError(
    typeof text === "string" ? decodeMessage(text) : `peer answered status ${code}`,
    Number.isInteger(code) && code > 0 && code <= 16 ? (code as Code) : Code.Unknown,
  );
}

/** The error of a call whose stream closed before its status arrived. */
export function closedWithout(
  rstCode: number | undefined,
  failure: Error | undefined,
): ConnectError {
  // A reset by the peer is reported by its code; a broken connection by its error.
  const reset = (failure as { code?: string } | undefined)?.code === "ERR_HTTP2_STREAM_ERROR";
  if (failure !== undefined && !reset) return unreachable(failure);
  const code = rstCode ?? NGHTTP2_NO_ERROR;
  const text = `peer closed the stream (HTTP/2 code ${code}) without a status`;
  switch (code) {
    case NGHTTP2_REFUSED_STREAM:
      return new ConnectError(text, Code.Unavailable);
    case NGHTTP2_CANCEL:
      return new ConnectError(text, Code.Canceled);
    case NGHTTP2_ENHANCE_YOUR_CALM:
      return new ConnectError(text, Code.ResourceExhausted);
    default:
      return new ConnectError(text, Code.Internal);
  }
}

/** A failure to reach the peer (connect, session lost) as UNAVAILABLE; a ConnectError as it is. */
export function unreachable(error: unknown): ConnectError {
  if (error instanceof ConnectError) return error;
  return new ConnectError(errorMessage(error), Code.Unavailable, undefined, undefined, error);
}

export function cancelled(signal: AbortSignal): ConnectError {
  return ConnectError.from(signal.reason, Code.Canceled);
}

/** `grpc-message` is percent-encoded. */
function decodeMessage(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}
