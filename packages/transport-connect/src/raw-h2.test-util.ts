// Helpers for the bad-input and overload tests: one real node on a loopback
// port, and a raw `node:http2` client that can send what no well-behaved
// client would (hand-made frames, wrong headers, bodies that stop halfway).
import * as http2 from "node:http2";
import { fromBinary } from "@bufbuild/protobuf";
import { type Client, createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { type Getter, Group, NotFoundError } from "@distcache/core";
import { expect } from "vitest";
import { freePort } from "../../../scripts/lib/ports.mjs";
import { CacheService, type GetResponse, GetResponseSchema } from "./gen/distcache/cache_pb.js";
import type { ConnectPoolOptions } from "./options.js";
import { ConnectPool } from "./pool.js";

export const GROUP = "scores";
export const GET_PATH = "/distcache.CacheService/Get";
export const SET_PATH = "/distcache.CacheService/Set";

/** A node under test: its pool, getter calls by key, and clients over gRPC and Connect. */
export interface Node {
  pool: ConnectPool;
  group: Group;
  port: number;
  url: string;
  calls: Map<string, number>;
  grpc: Client<typeof CacheService>;
  connect: Client<typeof CacheService>;
  close(): Promise<void>;
}

/** The demo rows; any other key is not found. */
export const demo: Getter = (key) => {
  const value = ({ Tom: "630", Jack: "589", Sam: "567" } as Record<string, string>)[key];
  if (value === undefined) throw new NotFoundError(key);
  return value;
};

/** Starts one node serving group "scores" with `getter` (default: the demo rows). */
export async function startNode(
  options: ConnectPoolOptions = {},
  getter: Getter = demo,
): Promise<Node> {
  const port = await freePort();
  const calls = new Map<string, number>();
  const group = new Group(GROUP, 8 << 20, (key, context) => {
    calls.set(key, (calls.get(key) ?? 0) + 1);
    return getter(key, context);
  });
  const pool = new ConnectPool(`127.0.0.1:${port}`, {
    ...options,
    server: { drainTimeoutMs: 200, ...options.server },
  });
  group.registerPeers(pool);
  await pool.serve();
  const url = `http://127.0.0.1:${port}`;
  const grpc = createClient(CacheService, createGrpcTransport({ baseUrl: url }));
  const connect = createClient(
    CacheService,
    createConnectTransport({ baseUrl: url, httpVersion: "2" }),
  );
  return { pool, group, port, url, calls, grpc, connect, close: () => pool.close() };
}

/** Asserts the node still answers a normal Get over gRPC (fast path) and Connect (adapter). */
export async function expectServing(node: Node): Promise<void> {
  for (const client of [node.grpc, node.connect]) {
    const response = await client.get({ group: GROUP, key: "Tom" }, { timeoutMs: 5_000 });
    expect(response.found).toBe(true);
    expect(new TextDecoder().decode(response.data)).toBe("630");
  }
}

/** A gRPC length-prefixed message. */
export function envelope(message: Uint8Array, flags = 0): Buffer {
  const frame = Buffer.alloc(5 + message.byteLength);
  frame[0] = flags;
  frame.writeUInt32BE(message.byteLength, 1);
  frame.set(message, 5);
  return frame;
}

/**
 * `GetRequest { group, key }` encoded by hand, so the key can be any bytes —
 * including ones that are not UTF-8, which no protobuf library would write.
 */
export function getRequestBytes(group: string | Uint8Array, key: string | Uint8Array): Buffer {
  const field = (tag: number, value: string | Uint8Array) => {
    const bytes = typeof value === "string" ? Buffer.from(value, "utf8") : Buffer.from(value);
    if (bytes.byteLength > 127) throw new Error("test helper: fields up to 127 bytes");
    return Buffer.concat([Buffer.from([tag, bytes.byteLength]), bytes]);
  };
  return Buffer.concat([field(0x0a, group), field(0x12, key)]);
}

/** What came back on one raw stream. */
export interface RawAnswer {
  status: number | undefined;
  headers: http2.IncomingHttpHeaders;
  trailers: http2.IncomingHttpHeaders;
  body: Buffer;
  /** The RST_STREAM code, when the stream was reset (0 = NO_ERROR after a complete response). */
  rstCode: number | undefined;
  /** grpc-status from the trailers, or from the headers of a trailers-only answer. */
  grpcStatus: number | undefined;
  grpcMessage: string | undefined;
  /** Milliseconds from sending the headers to the stream's close. */
  ms: number;
  /** Milliseconds from sending the headers to the last response frame (headers, data or trailers). */
  answeredMs: number | undefined;
}

export interface RawRequest {
  path?: string;
  method?: string;
  /** `content-type`; `null` sends none. Default `application/grpc`. */
  contentType?: string | null;
  headers?: http2.OutgoingHttpHeaders;
  body?: Uint8Array;
  /** Whether to end the request stream after `body`. Default `true`. */
  end?: boolean;
  /** Give up (and reset the stream) after this long. Default 5 s. */
  timeoutMs?: number;
}

/** Sends one request on `session` and collects everything until the stream closes. */
export function rawCall(
  session: http2.ClientHttp2Session,
  request: RawRequest,
): Promise<RawAnswer> {
  const headers: http2.OutgoingHttpHeaders = {
    ":method": request.method ?? "POST",
    ":path": request.path ?? GET_PATH,
    te: "trailers",
    ...request.headers,
  };
  const contentType = request.contentType === undefined ? "application/grpc" : request.contentType;
  if (contentType !== null) headers["content-type"] = contentType;
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const stream = session.request(headers, { endStream: false });
    const answer: RawAnswer = {
      status: undefined,
      headers: {},
      trailers: {},
      body: Buffer.alloc(0),
      rstCode: undefined,
      grpcStatus: undefined,
      grpcMessage: undefined,
      ms: 0,
      answeredMs: undefined,
    };
    const answered = () => {
      answer.answeredMs = performance.now() - started;
    };
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => {
      stream.close(http2.constants.NGHTTP2_CANCEL);
      reject(new Error(`no answer within ${request.timeoutMs ?? 5_000} ms`));
    }, request.timeoutMs ?? 5_000);
    stream.on("response", (h) => {
      answer.headers = h;
      answer.status = Number(h[":status"]);
      answered();
    });
    stream.on("trailers", (t) => {
      answer.trailers = t;
      answered();
    });
    stream.on("data", (chunk: Buffer) => {
      chunks.push(chunk);
      answered();
    });
    stream.on("error", () => {}); // a reset; its code is read on close
    stream.on("close", () => {
      clearTimeout(timer);
      answer.body = Buffer.concat(chunks);
      answer.rstCode = stream.rstCode;
      const type = answer.headers["content-type"];
      if (typeof type === "string" && type.startsWith("application/grpc-web")) {
        answer.trailers = { ...answer.trailers, ...grpcWebTrailers(answer.body) };
      }
      const status = answer.trailers["grpc-status"] ?? answer.headers["grpc-status"];
      answer.grpcStatus = status === undefined ? undefined : Number(status);
      const text = answer.trailers["grpc-message"] ?? answer.headers["grpc-message"];
      answer.grpcMessage = typeof text === "string" ? decodeURIComponent(text) : undefined;
      answer.ms = performance.now() - started;
      resolve(answer);
    });
    if (request.body !== undefined) stream.write(request.body);
    if (request.end ?? true) stream.end();
  });
}

/** The trailers a gRPC-Web body ends with: an envelope flagged 0x80 holding `name: value` lines. */
function grpcWebTrailers(body: Buffer): http2.IncomingHttpHeaders {
  const trailers: http2.IncomingHttpHeaders = {};
  let offset = 0;
  while (offset + 5 <= body.byteLength) {
    const length = body.readUInt32BE(offset + 1);
    if ((body[offset]! & 0x80) !== 0) {
      const text = body.subarray(offset + 5, offset + 5 + length).toString("latin1");
      for (const line of text.split("\r\n")) {
        const colon = line.indexOf(":");
        if (colon > 0) trailers[line.slice(0, colon).toLowerCase()] = line.slice(colon + 1).trim();
      }
    }
    offset += 5 + length;
  }
  return trailers;
}

/** The `GetResponse` in a gRPC answer's body. */
export function getResponse(answer: RawAnswer): GetResponse {
  expect(answer.body.byteLength).toBeGreaterThanOrEqual(5);
  const length = answer.body.readUInt32BE(1);
  return fromBinary(GetResponseSchema, answer.body.subarray(5, 5 + length));
}

/** An HTTP/2 session to `node`, connected. */
export async function connect(node: Node): Promise<http2.ClientHttp2Session> {
  const session = http2.connect(node.url);
  session.on("error", () => {});
  await new Promise<void>((resolve, reject) => {
    session.once("connect", () => resolve());
    session.once("close", () => reject(new Error("session closed before connecting")));
  });
  return session;
}

/** Waits until `check()` holds, polling every 10 ms. */
export async function eventually(check: () => boolean, timeoutMs = 3_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > until) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 10));
  }
}
