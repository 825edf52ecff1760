// The gRPC fast path against Connect's own gRPC handler over real HTTP/2: the
// same raw requests to the pool's server and to a reference NodeServer with
// `fastPaths: false`; the answers must agree.
import * as http2 from "node:http2";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { Group, NotFoundError } from "@distcache/core";
import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { freePort } from "../../../../../scripts/lib/ports.mjs";
import { GetRequestSchema, GetResponseSchema } from "../../gen/distcache/cache_pb.js";
import { SERVER_DEFAULTS } from "../../options.js";
import { ConnectPool } from "../../pool.js";
import { NodeServer } from "../server.js";

// One group, two servers: the pool's (fast paths in front of Connect) and the
// reference (Connect alone, same services, same read limit). Which path
// answered is visible on the wire: the fast path answers
// `content-type: application/grpc`, Connect `application/grpc+proto`.
const GROUP = "fast";
const SCORES: Record<string, string> = { Tom: "630", Jack: "589", Sam: "567" };
/** Never loads; its load ends only when its signal aborts. */
const SLOW = "slow";
const BOOM = "boom";
/** Loads in 50 ms. */
const LATE = "late";
const EMPTY = "empty";
const BIG = "big";
const BIG_VALUE = Buffer.alloc(100_000, 0x61);
/** The smallest value the fast path writes without copying it. */
const EDGE = "edge";
const EDGE_VALUE = Buffer.alloc(4_096, 0x62);
/** Small limits keep the oversized-message cases cheap: read limit 1024 + 64 + 1024. */
const MAX_VALUE_BYTES = 1_024;
const MAX_KEY_BYTES = 64;
const READ_MAX_BYTES = MAX_VALUE_BYTES + MAX_KEY_BYTES + 1_024;

const GET = "/distcache.CacheService/Get";
const FAST = "application/grpc";
const CONNECT = "application/grpc+proto";

let group: Group;
let pool: ConnectPool;
let fastPort: number;
let reference: NodeServer;
let referencePort: number;
const loads: string[] = [];
let slowAborts = 0;

beforeAll(async () => {
  group = new Group(GROUP, 1 << 20, (key, { signal }) => {
    loads.push(key);
    if (key === SLOW) {
      return new Promise<string>((_, fail) => {
        signal.addEventListener(
          "abort",
          () => {
            slowAborts++;
            fail(signal.reason);
          },
          { once: true },
        );
      });
    }
    if (key === BOOM) throw new Error("database is down");
    if (key === LATE) return new Promise<string>((ok) => setTimeout(() => ok("on time"), 50));
    if (key === EMPTY) return new Uint8Array(0);
    if (key === BIG) return BIG_VALUE;
    if (key === EDGE) return EDGE_VALUE;
    if (key === `${EDGE}-1`) return EDGE_VALUE.subarray(1);
    const score = SCORES[key];
    if (score === undefined) throw new NotFoundError(key);
    return score;
  });
  fastPort = await freePort();
  pool = new ConnectPool(`127.0.0.1:${fastPort}`, {
    server: { maxKeyBytes: MAX_KEY_BYTES, maxValueBytes: MAX_VALUE_BYTES, drainTimeoutMs: 100 },
  });
  group.registerPeers(pool);
  await pool.serve();
  reference = new NodeServer(
    {
      membershipVersion: () => 0n,
      group: (name) => (name === GROUP ? group : undefined),
      heardFrom: () => {},
      epochSeen: () => 0,
    },
    {
      ...SERVER_DEFAULTS,
      maxKeyBytes: MAX_KEY_BYTES,
      maxValueBytes: MAX_VALUE_BYTES,
      drainTimeoutMs: 100,
      fastPaths: false,
    },
  );
  await reference.listen("127.0.0.1", 0);
  referencePort = reference.address!.port;
});

afterAll(async () => {
  await pool?.close();
  await reference?.close();
});

// ---------------------------------------------------------------- raw HTTP/2

interface Answer {
  headers: http2.IncomingHttpHeaders;
  trailers: http2.IncomingHttpHeaders;
  body: Buffer;
  /** grpc-status from the trailers, or the headers of a trailers-only answer. */
  status: string | undefined;
  /** grpc-message, percent-decoded. */
  message: string | undefined;
  rstCode: number;
}

/** An envelope: flags, 4-byte big-endian length, the message. */
function frame(message: Uint8Array, flags = 0): Buffer {
  const out = Buffer.alloc(5 + message.byteLength);
  out[0] = flags;
  out.writeUInt32BE(message.byteLength, 1);
  out.set(message, 5);
  return out;
}

function getFrame(g: string, key: string): Buffer {
  return frame(toBinary(GetRequestSchema, create(GetRequestSchema, { group: g, key })));
}

const sessions = new Map<number, http2.ClientHttp2Session>();
afterAll(() => {
  for (const session of sessions.values()) session.close();
});

function session(port: number): http2.ClientHttp2Session {
  let s = sessions.get(port);
  if (s === undefined || s.closed || s.destroyed) {
    s = http2.connect(`http://127.0.0.1:${port}`);
    s.on("error", () => {});
    sessions.set(port, s);
  }
  return s;
}

interface CallOptions {
  headers?: http2.OutgoingHttpHeaders;
  /** The body, or pieces sent one after another (a macrotask apart). */
  body?: Buffer | Buffer[];
  /** Leave the request open (no END_STREAM). */
  open?: boolean;
}

function call(port: number, options: CallOptions = {}): Promise<Answer> {
  const stream = session(port).request({
    ":method": "POST",
    ":path": GET,
    "content-type": "application/grpc",
    te: "trailers",
    ...options.headers,
  });
  return new Promise<Answer>((resolve, reject) => {
    let headers: http2.IncomingHttpHeaders = {};
    let trailers: http2.IncomingHttpHeaders = {};
    const chunks: Buffer[] = [];
    stream.on("response", (h) => {
      headers = h;
    });
    stream.on("trailers", (t) => {
      trailers = t;
    });
    stream.on("data", (chunk: Buffer) => chunks.push(chunk));
    stream.on("error", () => {}); // a reset after a complete answer
    stream.on("close", () => {
      if (headers[":status"] === undefined) {
        reject(new Error(`stream closed without a response (rst ${stream.rstCode})`));
        return;
      }
      const status = (trailers["grpc-status"] ?? headers["grpc-status"]) as string | undefined;
      const raw = (trailers["grpc-message"] ?? headers["grpc-message"]) as string | undefined;
      resolve({
        headers,
        trailers,
        body: Buffer.concat(chunks),
        status,
        message: raw === undefined ? undefined : decodeURIComponent(raw),
        rstCode: stream.rstCode ?? 0,
      });
    });
    const pieces = options.body === undefined ? [] : [options.body].flat();
    void (async () => {
      for (const [i, piece] of pieces.entries()) {
        if (i > 0) await new Promise((r) => setTimeout(r, 5));
        if (stream.destroyed) return;
        stream.write(piece);
      }
      if (!options.open && !stream.destroyed) stream.end();
    })();
  });
}

/** The same request to the fast path and to Connect alone. */
async function both(options: CallOptions): Promise<{ fast: Answer; connect: Answer }> {
  const fast = await call(fastPort, options);
  const connect = await call(referencePort, options);
  return { fast, connect };
}

function decode(answer: Answer) {
  expect(answer.body.byteLength).toBeGreaterThanOrEqual(5);
  expect(answer.body[0]).toBe(0);
  const length = answer.body.readUInt32BE(1);
  expect(answer.body.byteLength).toBe(5 + length);
  return fromBinary(GetResponseSchema, answer.body.subarray(5));
}

async function eventually(check: () => boolean, timeoutMs = 3_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > until) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 10));
  }
}

// ---------------------------------------------------------------- answers

describe("the fast path answers as Connect does", () => {
  it("a hit: status 200, one frame, grpc-status 0 in the trailers; the same bytes as Connect", async () => {
    await group.get("Tom");
    const before = group.stats();
    const { fast, connect } = await both({ body: getFrame(GROUP, "Tom") });
    expect(fast.headers[":status"]).toBe(200);
    expect(fast.headers["content-type"]).toBe(FAST);
    expect(connect.headers["content-type"]).toBe(CONNECT);
    expect(fast.trailers["grpc-status"]).toBe("0");
    expect(fast.headers["grpc-status"]).toBeUndefined();
    expect(fast.trailers["grpc-message"]).toBeUndefined();
    expect(fast.body.equals(connect.body)).toBe(true);
    expect(decode(fast)).toMatchObject({ found: true, err: "" });
    expect(Buffer.from(decode(fast).data).toString()).toBe("630");
    const after = group.stats();
    // One hit each: the fast path's getCached and Connect's get, both counted.
    expect(after.gets - before.gets).toBe(2);
    expect(after.hits - before.hits).toBe(2);
    expect(after.misses).toBe(before.misses);
  });

  it("a miss loads once, answers found, and counts one get and one miss", async () => {
    const before = group.stats();
    const fast = await call(fastPort, { body: getFrame(GROUP, "Jack") });
    expect(fast.headers["content-type"]).toBe(FAST);
    expect(fast.status).toBe("0");
    expect(Buffer.from(decode(fast).data).toString()).toBe("589");
    const after = group.stats();
    expect(after.gets - before.gets).toBe(1);
    expect(after.misses - before.misses).toBe(1);
    expect(after.hits).toBe(before.hits);
    expect(loads.filter((k) => k === "Jack")).toEqual(["Jack"]);
    const connect = await call(referencePort, { body: getFrame(GROUP, "Jack") });
    expect(fast.body.equals(connect.body)).toBe(true);
  });

  it.each([
    ["an unknown key", GROUP, "Nobody"],
    ["a getter failure", GROUP, BOOM],
    ["an unknown group", "nope", "Tom"],
    ["an empty key", GROUP, ""],
    ["a key of exactly maxKeyBytes", GROUP, "y".repeat(MAX_KEY_BYTES)],
    ["an empty value", GROUP, EMPTY],
    ["a 100 kB value (several DATA frames)", GROUP, BIG],
    ["a 4096-byte value (written without a copy)", GROUP, EDGE],
    ["a 4095-byte value (copied into the frame)", GROUP, `${EDGE}-1`],
  ])("%s: the same message, byte for byte", async (_, g, key) => {
    const { fast, connect } = await both({ body: getFrame(g, key) });
    expect(fast.headers["content-type"]).toBe(FAST);
    expect(fast.status).toBe("0");
    expect(connect.status).toBe("0");
    expect(fast.body.equals(connect.body)).toBe(true);
  });

  it("in-band answers carry the reference's texts", async () => {
    const answers = await Promise.all(
      [
        ["nope", "Tom"],
        [GROUP, ""],
        [GROUP, "Nobody"],
        [GROUP, BOOM],
      ].map(([g, key]) => call(fastPort, { body: getFrame(g!, key!) }).then(decode)),
    );
    expect(answers.map((a) => [a.found, a.err])).toEqual([
      [false, "no such group: nope"],
      [false, "key is required"],
      [false, "key not found: Nobody"],
      [false, "database is down"],
    ]);
    const empty = decode(await call(fastPort, { body: getFrame(GROUP, EMPTY) }));
    expect(empty).toMatchObject({ found: true, err: "" });
    expect(empty.data.byteLength).toBe(0);
  });

  it("takes application/grpc+proto too, and a body split over several DATA frames", async () => {
    const whole = getFrame(GROUP, "Tom");
    const proto = await call(fastPort, {
      headers: { "content-type": "application/grpc+proto" },
      body: whole,
    });
    expect(proto.headers["content-type"]).toBe(FAST);
    expect(Buffer.from(decode(proto).data).toString()).toBe("630");
    const split = await call(fastPort, {
      body: [whole.subarray(0, 2), whole.subarray(2, 7), whole.subarray(7)],
    });
    expect(split.headers["content-type"]).toBe(FAST);
    expect(Buffer.from(decode(split).data).toString()).toBe("630");
  });

  it("64 concurrent calls on one session all get their own answer", async () => {
    const keys = Array.from({ length: 64 }, (_, i) => ["Tom", "Jack", "Sam", "Nobody"][i % 4]!);
    const answers = await Promise.all(
      keys.map((key) => call(fastPort, { body: getFrame(GROUP, key) })),
    );
    answers.forEach((answer, i) => {
      expect(answer.headers["content-type"]).toBe(FAST);
      const message = decode(answer);
      const expected = SCORES[keys[i]!];
      expect(message.found).toBe(expected !== undefined);
      if (expected !== undefined) expect(Buffer.from(message.data).toString()).toBe(expected);
    });
  });
});

// ---------------------------------------------------------------- errors

describe("errors: the same status and message as Connect", () => {
  const cases: [string, CallOptions, string][] = [
    [
      "a key over maxKeyBytes (ASCII)",
      { body: getFrame(GROUP, "x".repeat(MAX_KEY_BYTES + 1)) },
      String(grpc.status.INVALID_ARGUMENT),
    ],
    [
      "a key over maxKeyBytes in UTF-8 bytes only (22 × '€' = 66 bytes)",
      { body: getFrame(GROUP, "€".repeat(22)) },
      String(grpc.status.INVALID_ARGUMENT),
    ],
    [
      "a message over the read limit",
      { body: getFrame(GROUP, "z".repeat(READ_MAX_BYTES)) },
      String(grpc.status.RESOURCE_EXHAUSTED),
    ],
    [
      "an envelope header announcing more than the read limit, nothing after it",
      { body: Buffer.from([0, 0x7f, 0xff, 0xff, 0xff]) },
      String(grpc.status.RESOURCE_EXHAUSTED),
    ],
    [
      "a compressed frame without grpc-encoding",
      {
        body: frame(
          toBinary(GetRequestSchema, create(GetRequestSchema, { group: GROUP, key: "Tom" })),
          1,
        ),
      },
      String(grpc.status.INTERNAL),
    ],
    ["an empty body", { body: Buffer.alloc(0) }, String(grpc.status.UNIMPLEMENTED)],
    [
      "3 bytes of an envelope header",
      { body: Buffer.from([0, 0, 0]) },
      String(grpc.status.INVALID_ARGUMENT),
    ],
    [
      "an envelope shorter than it says",
      { body: Buffer.from([0, 0, 0, 0, 10, 0x0a, 0x02]) },
      String(grpc.status.INVALID_ARGUMENT),
    ],
    [
      "a message that is not protobuf (wire type 7)",
      { body: frame(Buffer.from([0x0f, 0x01])) },
      String(grpc.status.INTERNAL),
    ],
    [
      "a string field that is not UTF-8",
      { body: frame(Buffer.from([0x12, 0x02, 0xc3, 0x28])) },
      String(grpc.status.INTERNAL),
    ],
    [
      "a length past the end of the message",
      { body: frame(Buffer.from([0x0a, 0x09, 0x61])) },
      String(grpc.status.INTERNAL),
    ],
    [
      "two messages in a unary call",
      { body: Buffer.concat([getFrame(GROUP, "Tom"), getFrame(GROUP, "Sam")]) },
      String(grpc.status.UNIMPLEMENTED),
    ],
    [
      "a message, then half an envelope",
      { body: Buffer.concat([getFrame(GROUP, "Tom"), Buffer.from([0, 0])]) },
      String(grpc.status.INVALID_ARGUMENT),
    ],
    [
      "a malformed grpc-timeout",
      { headers: { "grpc-timeout": "1x" }, body: getFrame(GROUP, "Tom") },
      String(grpc.status.INVALID_ARGUMENT),
    ],
    [
      "a grpc-timeout of 9 digits",
      { headers: { "grpc-timeout": "123456789m" }, body: getFrame(GROUP, "Tom") },
      String(grpc.status.INVALID_ARGUMENT),
    ],
  ];

  it.each(cases)("%s", async (_, options, status) => {
    const { fast, connect } = await both(options);
    expect(fast.headers[":status"]).toBe(200);
    expect(fast.headers["content-type"]).toBe(FAST);
    expect(fast.status).toBe(status);
    expect(connect.status).toBe(status);
    expect(fast.message).toBe(connect.message);
    expect(fast.message).not.toBe("");
    // Trailers-only: no message, the status in the headers.
    expect(fast.body.byteLength).toBe(0);
    expect(fast.headers["grpc-status"]).toBe(status);
    expect(
      loads.filter((k) => k.startsWith("x") || k.startsWith("€") || k.startsWith("z")),
    ).toEqual([]);
  });

  it("percent-encodes grpc-message", async () => {
    const fast = await call(fastPort, { body: getFrame(GROUP, "x".repeat(MAX_KEY_BYTES + 1)) });
    expect(fast.headers["grpc-message"]).toBe("key%20is%20longer%20than%2064%20bytes");
  });

  it("refuses an oversized message from its header, without waiting for the rest", async () => {
    // The header announces a message past the limit; the body never ends.
    const header = Buffer.alloc(5);
    header.writeUInt32BE(READ_MAX_BYTES + 1, 1);
    const answer = await call(fastPort, { body: header, open: true });
    expect(answer.status).toBe(String(grpc.status.RESOURCE_EXHAUSTED));
    // The server reset the stream with NO_ERROR: stop sending, the answer is complete.
    expect(answer.rstCode).toBe(http2.constants.NGHTTP2_NO_ERROR);
  });

  it("the node keeps serving after all of the above", async () => {
    const answer = await call(fastPort, { body: getFrame(GROUP, "Sam") });
    expect(answer.headers["content-type"]).toBe(FAST);
    expect(Buffer.from(decode(answer).data).toString()).toBe("567");
  });
});

// ---------------------------------------------------------------- deadlines and cancellation

describe("grpc-timeout and cancellation", () => {
  it("a deadline ends a waiting Get with DEADLINE_EXCEEDED and aborts the getter's wait", async () => {
    const aborts = slowAborts;
    const started = Date.now();
    const fast = await call(fastPort, {
      headers: { "grpc-timeout": "150m" },
      body: getFrame(GROUP, SLOW),
    });
    expect(Date.now() - started).toBeLessThan(1_500);
    expect(fast.headers["content-type"]).toBe(FAST);
    expect(fast.status).toBe(String(grpc.status.DEADLINE_EXCEEDED));
    expect(fast.message).toBe("the operation timed out");
    await eventually(() => slowAborts > aborts);
    const connect = await call(referencePort, {
      headers: { "grpc-timeout": "150m" },
      body: getFrame(GROUP, SLOW),
    });
    expect(connect.status).toBe(fast.status);
    expect(connect.message).toBe(fast.message);
  });

  it("a deadline also ends a call whose body never arrives", async () => {
    const started = Date.now();
    const answer = await call(fastPort, {
      headers: { "grpc-timeout": "100m" },
      body: Buffer.from([0, 0]),
      open: true,
    });
    expect(answer.headers["content-type"]).toBe(FAST);
    expect(answer.status).toBe(String(grpc.status.DEADLINE_EXCEEDED));
    expect(Date.now() - started).toBeLessThan(1_500);
  });

  it("a hit within its deadline is answered", async () => {
    const answer = await call(fastPort, {
      headers: { "grpc-timeout": "5S" },
      body: getFrame(GROUP, "Tom"),
    });
    expect(answer.status).toBe("0");
    expect(Buffer.from(decode(answer).data).toString()).toBe("630");
  });

  it("a grpc-timeout longer than a timer can hold (~24.8 days) is served as no deadline", async () => {
    // setTimeout would fire such a timer after 1 ms; the load takes 50.
    const answer = await call(fastPort, {
      headers: { "grpc-timeout": "99999999H" },
      body: getFrame(GROUP, LATE),
    });
    expect(answer.headers["content-type"]).toBe(FAST);
    expect(answer.status).toBe("0");
    expect(Buffer.from(decode(answer).data).toString()).toBe("on time");
  });

  it("a client that resets the stream aborts the getter's wait", async () => {
    const aborts = slowAborts;
    const stream = session(fastPort).request({
      ":method": "POST",
      ":path": GET,
      "content-type": "application/grpc",
      te: "trailers",
    });
    stream.on("error", () => {});
    stream.end(getFrame(GROUP, SLOW));
    const before = loads.filter((k) => k === SLOW).length;
    await eventually(() => loads.filter((k) => k === SLOW).length > before);
    stream.close(http2.constants.NGHTTP2_CANCEL);
    await eventually(() => slowAborts > aborts);
    // And the session still serves.
    const answer = await call(fastPort, { body: getFrame(GROUP, "Tom") });
    expect(answer.status).toBe("0");
  });

  it("grpc-js: deadline and cancel end the call with their status", async () => {
    const client = new grpc.Client(`127.0.0.1:${fastPort}`, grpc.credentials.createInsecure());
    const serialize = (value: { group: string; key: string }) =>
      Buffer.from(toBinary(GetRequestSchema, create(GetRequestSchema, value)));
    const deserialize = (bytes: Buffer) => fromBinary(GetResponseSchema, bytes);
    const get = (key: string, deadlineMs?: number) =>
      new Promise<{ code: number; data?: string }>((resolve) => {
        const options = deadlineMs === undefined ? {} : { deadline: Date.now() + deadlineMs };
        client.makeUnaryRequest(
          GET,
          serialize,
          deserialize,
          { group: GROUP, key },
          new grpc.Metadata(),
          options,
          (error, response) =>
            resolve({
              code: error?.code ?? grpc.status.OK,
              data: response ? Buffer.from(response.data).toString() : undefined,
            }),
        );
      });
    try {
      expect(await get("Tom")).toEqual({ code: grpc.status.OK, data: "630" });
      expect(await get("Tom", 2_000)).toEqual({ code: grpc.status.OK, data: "630" });
      expect((await get(SLOW, 100)).code).toBe(grpc.status.DEADLINE_EXCEEDED);
      expect((await get("x".repeat(MAX_KEY_BYTES + 1))).code).toBe(grpc.status.INVALID_ARGUMENT);
    } finally {
      client.close();
    }
  });
});

// ---------------------------------------------------------------- gRPC-Web and Connect

const GRPC_WEB = "application/grpc-web";
const CONNECT_PROTO = "application/proto";

/** A gRPC-Web body: its message frames and the status of its trailer frame (flag 0x80). */
function splitGrpcWeb(body: Buffer): { messages: Buffer[]; trailer: string } {
  const messages: Buffer[] = [];
  let trailer = "";
  for (let at = 0; at < body.byteLength; ) {
    const length = body.readUInt32BE(at + 1);
    const frameBytes = body.subarray(at, at + 5 + length);
    if ((body[at]! & 0x80) !== 0) trailer = frameBytes.subarray(5).toString();
    else messages.push(frameBytes);
    at += 5 + length;
  }
  return { messages, trailer };
}

const rawGet = (g: string, key: string) =>
  Buffer.from(toBinary(GetRequestSchema, create(GetRequestSchema, { group: g, key })));

describe("gRPC-Web and Connect (binary) on the fast path: Connect's answers", () => {
  it.each([
    ["a hit", GROUP, "Tom"],
    ["an unknown key", GROUP, "Nobody"],
    ["an unknown group", "nope", "Tom"],
    ["a 100 kB value (written without a copy)", GROUP, BIG],
    ["a 4096-byte value (written without a copy)", GROUP, EDGE],
    ["a 4095-byte value (copied)", GROUP, `${EDGE}-1`],
    ["an empty value", GROUP, EMPTY],
  ])("gRPC-Web, %s: the same message frame, status 0 in the trailer frame", async (_, g, key) => {
    const { fast, connect } = await both({
      headers: { "content-type": "application/grpc-web+proto", "x-grpc-web": "1" },
      body: getFrame(g, key),
    });
    expect(fast.headers[":status"]).toBe(200);
    expect(fast.headers["content-type"]).toBe(GRPC_WEB);
    expect(connect.headers["content-type"]).toBe("application/grpc-web+proto");
    const [f, c] = [splitGrpcWeb(fast.body), splitGrpcWeb(connect.body)];
    expect(f.messages).toHaveLength(1);
    expect(f.messages[0]!.equals(c.messages[0]!)).toBe(true);
    expect(f.trailer).toBe("grpc-status: 0\r\n");
    expect(c.trailer).toContain("grpc-status: 0");
  });

  it.each([
    ["a hit", GROUP, "Tom"],
    ["an unknown key", GROUP, "Nobody"],
    ["a getter failure", GROUP, BOOM],
    ["a 100 kB value (written without a copy)", GROUP, BIG],
    ["a 4095-byte value (copied)", GROUP, `${EDGE}-1`],
    ["an empty key", GROUP, ""],
  ])("Connect, %s: the same body, byte for byte, and its content-length", async (_, g, key) => {
    const { fast, connect } = await both({
      headers: { "content-type": CONNECT_PROTO, "connect-protocol-version": "1" },
      body: rawGet(g, key),
    });
    expect(fast.headers[":status"]).toBe(200);
    expect(fast.headers["content-type"]).toBe(CONNECT_PROTO);
    expect(fast.headers["content-length"]).toBe(String(fast.body.byteLength));
    expect(fast.body.equals(connect.body)).toBe(true);
  });

  it("Connect: the fast path answers a large value uncompressed where Connect gzips it", async () => {
    const { fast, connect } = await both({
      headers: { "content-type": CONNECT_PROTO, "accept-encoding": "gzip" },
      body: rawGet(GROUP, BIG),
    });
    // Which path answered shows here: Connect compresses what the client accepts.
    expect(connect.headers["content-encoding"]).toBe("gzip");
    expect(fast.headers["content-encoding"]).toBeUndefined();
    expect(Buffer.from(fromBinary(GetResponseSchema, fast.body).data).equals(BIG_VALUE)).toBe(true);
  });

  it("Connect: a body split over several DATA frames, and an empty body (a request with no field set)", async () => {
    const whole = rawGet(GROUP, "Sam");
    const split = await call(fastPort, {
      headers: { "content-type": CONNECT_PROTO },
      body: [whole.subarray(0, 3), whole.subarray(3)],
    });
    expect(fromBinary(GetResponseSchema, split.body)).toMatchObject({ found: true });
    const { fast, connect } = await both({
      headers: { "content-type": CONNECT_PROTO },
      body: Buffer.alloc(0),
    });
    expect(fast.body.equals(connect.body)).toBe(true);
    expect(fromBinary(GetResponseSchema, fast.body).err).toBe("no such group: ");
  });

  it.each([
    ["a hit", { group: GROUP, key: "Tom" }],
    ["a 100 kB value", { group: GROUP, key: BIG }],
    ["an empty value", { group: GROUP, key: EMPTY }],
    ["an unknown key", { group: GROUP, key: "Nobody" }],
    ["an unknown group", { group: "nope", key: "Tom" }],
    ["no fields", {}],
    [
      "an unknown field (ignored, as Connect's JSON options say)",
      { group: GROUP, key: "Sam", nope: 1 },
    ],
  ])("Connect JSON, %s: the same body, byte for byte", async (_, request) => {
    const { fast, connect } = await both({
      headers: { "content-type": "application/json" },
      body: Buffer.from(JSON.stringify(request)),
    });
    expect(fast.headers[":status"]).toBe(200);
    expect(fast.headers["content-type"]).toBe("application/json");
    expect(fast.headers["content-length"]).toBe(String(fast.body.byteLength));
    expect(fast.body.toString()).toBe(connect.body.toString());
  });

  it.each([
    ["not JSON", Buffer.from("{group")],
    ["a key of the wrong type", Buffer.from(JSON.stringify({ group: GROUP, key: 7 }))],
    ["invalid UTF-8", Buffer.from([0x7b, 0x22, 0xc3, 0x28, 0x22, 0x7d])],
    ["a key over maxKeyBytes", Buffer.from(JSON.stringify({ group: GROUP, key: "x".repeat(65) }))],
  ])("Connect JSON, %s: the same HTTP status and JSON error", async (_, body) => {
    const { fast, connect } = await both({ headers: { "content-type": "application/json" }, body });
    expect(fast.headers[":status"]).toBeGreaterThanOrEqual(400);
    expect(fast.headers[":status"]).toBe(connect.headers[":status"]);
    expect(JSON.parse(fast.body.toString())).toEqual(JSON.parse(connect.body.toString()));
  });

  const connectErrors: [string, CallOptions][] = [
    ["a key over maxKeyBytes", { body: rawGet(GROUP, "x".repeat(MAX_KEY_BYTES + 1)) }],
    ["a message that is not protobuf", { body: Buffer.from([0x0f, 0x01]) }],
    ["a string field that is not UTF-8", { body: Buffer.from([0x12, 0x02, 0xc3, 0x28]) }],
    ["a body over the read limit", { body: rawGet(GROUP, "z".repeat(READ_MAX_BYTES)) }],
    [
      "a content-length over the read limit",
      { headers: { "content-length": String(READ_MAX_BYTES + 1) }, open: true },
    ],
    [
      "a malformed connect-timeout-ms",
      { headers: { "connect-timeout-ms": "soon" }, body: rawGet(GROUP, "Tom") },
    ],
  ];
  it.each(connectErrors)("Connect, %s: the same HTTP status and JSON error", async (_, options) => {
    const { fast, connect } = await both({
      ...options,
      headers: { "content-type": CONNECT_PROTO, ...options.headers },
    });
    expect(fast.headers[":status"]).toBeGreaterThanOrEqual(400);
    expect(fast.headers[":status"]).toBe(connect.headers[":status"]);
    expect(fast.headers["content-type"]).toBe("application/json");
    expect(JSON.parse(fast.body.toString())).toEqual(JSON.parse(connect.body.toString()));
  });

  it("gRPC-Web, a key over maxKeyBytes: the same status and message as Connect", async () => {
    const { fast, connect } = await both({
      headers: { "content-type": "application/grpc-web+proto" },
      body: getFrame(GROUP, "x".repeat(MAX_KEY_BYTES + 1)),
    });
    expect(fast.headers["content-type"]).toBe(GRPC_WEB);
    expect(fast.status).toBe(String(grpc.status.INVALID_ARGUMENT));
    const connectStatus =
      connect.status ?? /grpc-status: (\d+)/.exec(splitGrpcWeb(connect.body).trailer)?.[1];
    expect(connectStatus).toBe(fast.status);
  });

  it("Connect-ES clients of both protocols read a large value, and a Connect deadline ends a waiting Get", async () => {
    const { createClient } = await import("@connectrpc/connect");
    const { createConnectTransport, createGrpcWebTransport } = await import(
      "@connectrpc/connect-node"
    );
    const { CacheService } = await import("../../gen/distcache/cache_pb.js");
    const baseUrl = `http://127.0.0.1:${fastPort}`;
    for (const transport of [
      createConnectTransport({ baseUrl, httpVersion: "2" }),
      createConnectTransport({ baseUrl, httpVersion: "2", useBinaryFormat: false }),
      createGrpcWebTransport({ baseUrl, httpVersion: "2" }),
    ]) {
      const client = createClient(CacheService, transport);
      const big = await client.get({ group: GROUP, key: BIG });
      expect(big.found).toBe(true);
      expect(Buffer.from(big.data).equals(BIG_VALUE)).toBe(true);
      const small = await client.get({ group: GROUP, key: "Sam" });
      expect(Buffer.from(small.data).toString()).toBe("567");
    }
    const connect = createClient(
      CacheService,
      createConnectTransport({ baseUrl, httpVersion: "2" }),
    );
    const abortsBefore = slowAborts;
    await expect(
      connect.get({ group: GROUP, key: SLOW }, { timeoutMs: 100 }),
    ).rejects.toMatchObject({ code: 4 /* DeadlineExceeded */ });
    await eventually(() => slowAborts > abortsBefore);
  });
});

// ---------------------------------------------------------------- what goes to Connect

describe("what the fast path leaves to Connect", () => {
  it("a gzip-compressed request (grpc-js) is served by Connect", async () => {
    const client = new grpc.Client(`127.0.0.1:${fastPort}`, grpc.credentials.createInsecure(), {
      "grpc.default_compression_algorithm": 2,
    });
    try {
      const response = await new Promise<{ data: Uint8Array; found: boolean }>((ok, fail) => {
        client.makeUnaryRequest(
          GET,
          (value: { group: string; key: string }) =>
            Buffer.from(toBinary(GetRequestSchema, create(GetRequestSchema, value))),
          (bytes: Buffer) => fromBinary(GetResponseSchema, bytes),
          { group: GROUP, key: "Tom" },
          (error, value) => (error ? fail(error) : ok(value!)),
        );
      });
      expect(response.found).toBe(true);
      expect(Buffer.from(response.data).toString()).toBe("630");
    } finally {
      client.close();
    }
    // The same on the raw wire: Connect's content type, so Connect answered.
    const zipped = await call(fastPort, {
      headers: { "grpc-encoding": "gzip" },
      body: frame(
        (await import("node:zlib")).gzipSync(
          toBinary(GetRequestSchema, create(GetRequestSchema, { group: GROUP, key: "Tom" })),
        ),
        1,
      ),
    });
    expect(zipped.headers["content-type"]).toBe(CONNECT);
    expect(zipped.status).toBe("0");
  });

  it("an unknown grpc-encoding gets Connect's UNIMPLEMENTED", async () => {
    const answer = await call(fastPort, {
      headers: { "grpc-encoding": "snappy" },
      body: getFrame(GROUP, "Tom"),
    });
    expect(answer.headers["content-type"]).toBe(CONNECT);
    expect(answer.status).toBe(String(grpc.status.UNIMPLEMENTED));
  });

  it("grpc-encoding identity stays on the fast path", async () => {
    const answer = await call(fastPort, {
      headers: { "grpc-encoding": "identity", "grpc-accept-encoding": "identity,deflate,gzip" },
      body: getFrame(GROUP, "Tom"),
    });
    expect(answer.headers["content-type"]).toBe(FAST);
    expect(answer.headers["grpc-encoding"]).toBeUndefined();
    expect(Buffer.from(decode(answer).data).toString()).toBe("630");
  });

  it.each([["gRPC JSON", { "content-type": "application/grpc+json" }, "application/grpc+json"]])(
    "%s goes to Connect",
    async (_, headers, contentType) => {
      const body =
        headers["content-type"] === "application/grpc+json"
          ? frame(Buffer.from(JSON.stringify({ group: GROUP, key: "Tom" })))
          : getFrame(GROUP, "Tom");
      const answer = await call(fastPort, { headers, body });
      expect(answer.headers["content-type"]).toBe(contentType);
    },
  );

  it("gRPC-Web text goes to Connect (which does not speak it: HTTP 415)", async () => {
    const answer = await call(fastPort, {
      headers: { "content-type": "application/grpc-web-text" },
      body: Buffer.from(getFrame(GROUP, "Tom").toString("base64")),
    });
    expect(answer.headers[":status"]).toBe(415);
  });

  it("Connect JSON with a charset parameter, or compressed, goes to Connect", async () => {
    const charset = await call(fastPort, {
      headers: { "content-type": "application/json; charset=utf-8" },
      body: Buffer.from(JSON.stringify({ group: GROUP, key: "Tom" })),
    });
    expect(charset.headers[":status"]).toBe(200);
    expect(JSON.parse(charset.body.toString())).toEqual({ data: "NjMw", found: true });
    const zipped = await call(fastPort, {
      headers: { "content-type": CONNECT_PROTO, "content-encoding": "gzip" },
      body: (await import("node:zlib")).gzipSync(rawGet(GROUP, "Tom")),
    });
    expect(fromBinary(GetResponseSchema, zipped.body).found).toBe(true);
  });

  it("Set and Delete go to Connect", async () => {
    const setRequest = frame(
      Buffer.from([
        0x0a,
        GROUP.length,
        ...Buffer.from(GROUP),
        0x12,
        3,
        ...Buffer.from("Ann"),
        0x1a,
        1,
        0x37,
      ]),
    );
    const set = await call(fastPort, {
      headers: { ":path": "/distcache.CacheService/Set" },
      body: setRequest,
    });
    expect(set.headers["content-type"]).toBe(CONNECT);
    expect(set.status).toBe("0");
    const got = await call(fastPort, { body: getFrame(GROUP, "Ann") });
    expect(got.headers["content-type"]).toBe(FAST);
    expect(Buffer.from(decode(got).data).toString()).toBe("7");
    const del = await call(fastPort, {
      headers: { ":path": "/distcache.CacheService/Delete" },
      body: getFrame(GROUP, "Ann"),
    });
    expect(del.headers["content-type"]).toBe(CONNECT);
    expect(del.status).toBe("0");
    expect(decode(await call(fastPort, { body: getFrame(GROUP, "Ann") })).found).toBe(false);
  });
});

// ---------------------------------------------------------------- pieces

describe("pieces", () => {
  it("getCached counts a hit like get and leaves a miss to get", async () => {
    const g = new Group("counting", 1 << 10, (key) => `v:${key}`);
    expect(g.getCached("a")).toBeUndefined();
    expect(g.getCached("")).toBeUndefined();
    expect(g.stats()).toMatchObject({ gets: 0, hits: 0, misses: 0 });
    await g.get("a");
    expect(g.getCached("a")?.toString()).toBe("v:a");
    expect(g.stats()).toMatchObject({ gets: 2, hits: 1, misses: 1 });
  });
});
