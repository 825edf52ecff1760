// Bad input over the wire: each malformed request gets a clear answer or a clean
// close within milliseconds, never reaches the getter, and the node keeps serving
// (raw node:http2 and node:net; key, message and value limits: interop.test.ts).
import * as http2 from "node:http2";
import * as net from "node:net";
import { Code, createClient } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-node";
import * as grpc from "@grpc/grpc-js";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { CacheService } from "../gen/distcache/cache_pb.js";
import {
  connect,
  envelope,
  eventually,
  expectServing,
  GET_PATH,
  GROUP,
  getRequestBytes,
  getResponse,
  type Node,
  rawCall,
  SET_PATH,
  startNode,
} from "../raw-h2.test-util.js";

const { NGHTTP2_CANCEL } = http2.constants;
/** "Within milliseconds", with room for a loaded 2-core CI machine. */
const PROMPT_MS = 1_000;

let node: Node;
let session: http2.ClientHttp2Session;
const totalCalls = () => [...node.calls.values()].reduce((a, b) => a + b, 0);

beforeAll(async () => {
  node = await startNode({ server: { requestReceiveTimeoutMs: 400, maxHeaderListBytes: 4_096 } });
  session = await connect(node);
});
afterAll(async () => {
  session?.destroy();
  await node?.close();
});
afterEach(async () => {
  await expectServing(node);
  expect(node.pool.stats().guard.inFlight).toBeLessThanOrEqual(2);
});

describe("invalid arguments", () => {
  it("an empty group is answered in-band (no such group), over gRPC and Connect, with no getter call", async () => {
    const before = totalCalls();
    const raw = await rawCall(session, { body: envelope(getRequestBytes("", "Tom")) });
    expect(raw.grpcStatus).toBe(0);
    expect(getResponse(raw)).toMatchObject({ found: false, err: "no such group: " });
    expect(raw.ms).toBeLessThan(PROMPT_MS);
    expect(await node.connect.get({ group: "", key: "Tom" })).toMatchObject({
      found: false,
      err: "no such group: ",
    });
    expect(await node.connect.delete({ group: "", key: "Tom" })).toMatchObject({
      success: false,
      err: "no such group: ",
    });
    expect(totalCalls()).toBe(before);
  });

  it("an empty key over the fast path and gRPC-Web is answered in-band", async () => {
    const before = totalCalls();
    const raw = await rawCall(session, { body: envelope(getRequestBytes(GROUP, "")) });
    expect(getResponse(raw)).toMatchObject({ found: false, err: "key is required" });
    const web = createClient(
      CacheService,
      createGrpcWebTransport({ baseUrl: node.url, httpVersion: "2" }),
    );
    expect(await web.get({ group: GROUP, key: "" })).toMatchObject({
      found: false,
      err: "key is required",
    });
    expect(totalCalls()).toBe(before);
  });
});

describe("invalid UTF-8 in a key", () => {
  // 0xC3 0x28 is an invalid two-byte sequence; a lenient decoder would read it
  // as "\uFFFD(" — the same key as a client that sent "\uFFFD(" itself.
  const invalid = Buffer.from([0x54, 0xc3, 0x28]);

  it("is refused before any handler over gRPC (both paths): INTERNAL, parse error, no getter call", async () => {
    const before = totalCalls();
    for (const contentType of ["application/grpc", "application/grpc-web+proto"]) {
      const raw = await rawCall(session, {
        contentType,
        body: envelope(getRequestBytes(GROUP, invalid)),
      });
      expect(raw.grpcStatus).toBe(Code.Internal);
      expect(raw.grpcMessage).toMatch(/^parse binary: .*utf-8/i);
      expect(raw.ms).toBeLessThan(PROMPT_MS);
    }
    expect(totalCalls()).toBe(before);
    expect(node.calls.has("T\uFFFD(")).toBe(false);
  });

  it("is refused over Connect binary (INTERNAL) and JSON (INVALID_ARGUMENT), never replaced by U+FFFD", async () => {
    const before = totalCalls();
    const binary = await rawCall(session, {
      contentType: "application/proto",
      headers: { "connect-protocol-version": "1" },
      body: getRequestBytes(GROUP, invalid),
    });
    expect(binary.status).toBe(500);
    expect(JSON.parse(binary.body.toString())).toMatchObject({ code: "internal" });
    // Raw invalid bytes inside a JSON string: the strict decoder refuses the body.
    const json = Buffer.concat([
      Buffer.from(`{"group":"${GROUP}","key":"`),
      invalid,
      Buffer.from(`"}`),
    ]);
    for (const body of [json, Buffer.from(`{"group":"${GROUP}","key":"T\\ud800"}`)]) {
      const answer = await rawCall(session, {
        contentType: "application/json",
        headers: { "connect-protocol-version": "1" },
        body,
      });
      expect(answer.status).toBe(400);
      expect(JSON.parse(answer.body.toString())).toMatchObject({ code: "invalid_argument" });
    }
    expect(totalCalls()).toBe(before);
  });
});

describe("malformed frames", () => {
  it("garbage in a well-formed envelope is a parse error (INTERNAL) on both gRPC paths", async () => {
    const garbage = Buffer.from([0xff, 0xff, 0xff, 0xff, 0x0f, 0x12, 0x80]);
    for (const contentType of ["application/grpc", "application/grpc-web+proto"]) {
      const raw = await rawCall(session, { contentType, body: envelope(garbage) });
      expect(raw.grpcStatus).toBe(Code.Internal);
      expect(raw.grpcMessage).toMatch(/^parse binary/);
    }
  });

  it("bytes that are not an envelope at all, and a body cut short, are INVALID_ARGUMENT", async () => {
    const frame = envelope(getRequestBytes(GROUP, "Tom"));
    for (const contentType of ["application/grpc", "application/grpc-web+proto"]) {
      // The envelope says 9 bytes follow; 4 arrive, then END_STREAM.
      const cut = await rawCall(session, { contentType, body: frame.subarray(0, 9) });
      expect(cut.grpcStatus).toBe(Code.InvalidArgument);
      expect(cut.ms).toBeLessThan(PROMPT_MS);
      // Three bytes: not even a whole envelope header.
      const stub = await rawCall(session, { contentType, body: frame.subarray(0, 3) });
      expect(stub.grpcStatus).toBe(Code.InvalidArgument);
    }
  });

  it("an envelope that announces more than the read limit is RESOURCE_EXHAUSTED before its body is sent", async () => {
    const header = Buffer.from([0, 0x40, 0, 0, 0]); // 1 GiB announced
    const answers = await Promise.all(
      [
        [GET_PATH, "application/grpc"], // the fast path
        [SET_PATH, "application/grpc"], // Connect
        [GET_PATH, "application/grpc-web+proto"],
      ].map(([path, contentType]) =>
        rawCall(session, { path, contentType, body: header, end: false }),
      ),
    );
    for (const raw of answers) {
      expect(raw.grpcStatus).toBe(Code.ResourceExhausted);
      expect(raw.grpcMessage).toContain("larger than configured readMaxBytes");
      // Answered at once. Connect then leaves the stream open for the rest of
      // a body that never comes; the receive timeout (400 ms here) resets it.
      expect(raw.answeredMs).toBeLessThan(PROMPT_MS);
    }
  });

  it("a body that stops arriving is reset after requestReceiveTimeoutMs and frees its slot", async () => {
    const reset = node.pool.stats().guard.resetSlowRequests;
    const frame = envelope(getRequestBytes(GROUP, "Tom"));
    const stalled = await Promise.all(
      ["application/grpc", "application/grpc-web+proto", "application/proto"].map((contentType) =>
        rawCall(session, { contentType, body: frame.subarray(0, 7), end: false }),
      ),
    );
    for (const answer of stalled) {
      expect(answer.rstCode).toBe(NGHTTP2_CANCEL);
      expect(answer.ms).toBeGreaterThanOrEqual(350);
      expect(answer.ms).toBeLessThan(400 + PROMPT_MS);
    }
    expect(node.pool.stats().guard.resetSlowRequests).toBe(reset + 3);
    await eventually(() => node.pool.stats().guard.inFlight === 0);
  });
});

describe("wrong HTTP", () => {
  it("a wrong content-type is 415, a GET is 405, and neither reaches a handler", async () => {
    const before = totalCalls();
    const body = envelope(getRequestBytes(GROUP, "Tom"));
    const text = await rawCall(session, { contentType: "text/plain", body });
    expect(text.status).toBe(415);
    const none = await rawCall(session, { contentType: null, body });
    expect(none.status).toBe(415);
    const get = await rawCall(session, { method: "GET", body });
    expect(get.status).toBe(405);
    expect(totalCalls()).toBe(before);
  });

  it("an unknown method or service is UNIMPLEMENTED (gRPC trailers-only; Connect 404)", async () => {
    for (const path of ["/distcache.CacheService/Nope", "/nope.Service/Get", "/"]) {
      const raw = await rawCall(session, { path, body: envelope(Buffer.alloc(0)) });
      expect(raw.status).toBe(200);
      expect(raw.grpcStatus).toBe(Code.Unimplemented);
      expect(raw.grpcMessage).toBe(`unknown method ${path}`);
    }
    const connectStyle = await rawCall(session, {
      path: "/distcache.CacheService/Nope",
      contentType: "application/json",
      body: Buffer.from("{}"),
    });
    expect(connectStyle.status).toBe(501); // Connect's HTTP status for unimplemented
    expect(JSON.parse(connectStyle.body.toString())).toMatchObject({ code: "unimplemented" });
    // And a real gRPC client reads it as UNIMPLEMENTED.
    const client = new grpc.Client(`127.0.0.1:${node.port}`, grpc.credentials.createInsecure());
    try {
      const code = await new Promise<grpc.status | undefined>((resolve) => {
        client.makeUnaryRequest(
          "/distcache.CacheService/Nope",
          (request: Buffer) => request,
          (response: Buffer) => response,
          Buffer.alloc(0),
          (error) => resolve(error?.code),
        );
      });
      expect(code).toBe(grpc.status.UNIMPLEMENTED);
    } finally {
      client.close();
    }
  });

  it("an unknown compression is UNIMPLEMENTED, a malformed grpc-timeout INVALID_ARGUMENT", async () => {
    const body = envelope(getRequestBytes(GROUP, "Tom"));
    const zstd = await rawCall(session, { headers: { "grpc-encoding": "zstd" }, body });
    expect(zstd.grpcStatus).toBe(Code.Unimplemented);
    for (const contentType of ["application/grpc", "application/grpc-web+proto"]) {
      const timeout = await rawCall(session, {
        contentType,
        headers: { "grpc-timeout": "soon" },
        body,
      });
      expect(timeout.grpcStatus).toBe(Code.InvalidArgument);
    }
  });

  it("a header list over maxHeaderListBytes is refused; the session survives", async () => {
    const answer = await rawCall(session, {
      headers: { "x-big": "b".repeat(8_000) },
      body: envelope(getRequestBytes(GROUP, "Tom")),
    });
    expect(answer.status).toBeUndefined(); // no response: the stream was reset
    expect(answer.rstCode).toBe(http2.constants.NGHTTP2_ENHANCE_YOUR_CALM);
    expect(session.destroyed).toBe(false);
    const ok = await rawCall(session, { body: envelope(getRequestBytes(GROUP, "Tom")) });
    expect(getResponse(ok)).toMatchObject({ found: true });
  });

  it("HTTP/1.1 on the h2c port is closed at once, not left hanging", async () => {
    for (const request of [
      "GET / HTTP/1.1\r\nHost: x\r\n\r\n",
      "POST /distcache.CacheService/Get HTTP/1.1\r\nHost: x\r\nContent-Type: application/grpc\r\nContent-Length: 0\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n",
    ]) {
      const started = performance.now();
      const socket = net.connect(node.port, "127.0.0.1");
      const received: Buffer[] = [];
      socket.on("data", (chunk: Buffer) => received.push(chunk));
      socket.on("error", () => {});
      socket.write(request);
      await new Promise<void>((resolve) => socket.once("close", () => resolve()));
      expect(performance.now() - started).toBeLessThan(PROMPT_MS);
      // What it got is HTTP/2 (SETTINGS, GOAWAY), never an HTTP/1.1 answer.
      expect(Buffer.concat(received).toString("latin1")).not.toContain("HTTP/1.1");
    }
  });

  it("a connection that sends half a preface and stops holds nothing once the idle timeout passes", async () => {
    const idle = await startNode({ server: { idleSessionTimeoutMs: 200 } });
    try {
      const socket = net.connect(idle.port, "127.0.0.1");
      socket.on("error", () => {});
      socket.resume(); // read what comes, so the server's FIN is seen
      socket.write("PRI * HTTP/2.0\r\n");
      const started = performance.now();
      await new Promise<void>((resolve) => socket.once("close", () => resolve()));
      expect(performance.now() - started).toBeLessThan(200 + PROMPT_MS);
      expect(idle.pool.stats().guard.closedIdleSessions).toBe(1);
      await expectServing(idle);
    } finally {
      await idle.close();
    }
  });
});
