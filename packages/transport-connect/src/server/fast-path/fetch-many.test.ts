// The FetchMany fast path against Connect's own handler over real HTTP/2: the
// same raw requests to a NodeServer with fast paths and to one with
// `fastPaths: false`; statuses, messages and results must agree.
import * as http2 from "node:http2";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { Code } from "@connectrpc/connect";
import { Group, NotFoundError } from "@distcache/core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  FetchManyRequestSchema,
  FetchManyResponseSchema,
  type FetchResult,
} from "../../gen/distcache/peer/v1/peer_pb.js";
import { SERVER_DEFAULTS } from "../../options.js";
import { makeSender } from "../../peer-wire.js";
import {
  envelope,
  eventually,
  type RawAnswer,
  type RawRequest,
  rawCall,
} from "../../raw-h2.test-util.js";
import type { ServiceHost } from "../host.js";
import { NodeServer } from "../server.js";

const GROUP = "fetch-many-fast";
const PATH = "/distcache.peer.v1.PeerService/FetchMany";
const FAST = "application/grpc";
const CONNECT = "application/grpc+proto";
const MAX_VALUE_BYTES = 1_024;
const MAX_KEY_BYTES = 64;
const READ_MAX_BYTES = MAX_VALUE_BYTES + MAX_KEY_BYTES + 1_024;

const group = new Group(GROUP, 1 << 20, (key) => {
  if (key === "boom") throw new Error("database is down");
  if (key.startsWith("none")) throw new NotFoundError(key);
  return `v:${key}`;
});
const host: ServiceHost = {
  membershipVersion: () => 7n,
  group: (name) => (name === GROUP ? group : undefined),
  heardFrom: () => {},
  epochSeen: () => 0,
};
const options = {
  ...SERVER_DEFAULTS,
  maxKeyBytes: MAX_KEY_BYTES,
  maxValueBytes: MAX_VALUE_BYTES,
  drainTimeoutMs: 100,
};
const fast = new NodeServer(host, options);
const reference = new NodeServer(host, { ...options, fastPaths: false });
// The made-up sender of the requests below is a member of both.
for (const server of [fast, reference]) server.setMembers(["127.0.0.1:1"]);
const sessions: http2.ClientHttp2Session[] = [];

beforeAll(async () => {
  await fast.listen("127.0.0.1", 0);
  await reference.listen("127.0.0.1", 0);
  for (const server of [fast, reference]) {
    const session = http2.connect(`http://127.0.0.1:${server.address!.port}`);
    session.on("error", () => {});
    sessions.push(session);
  }
});
afterAll(async () => {
  for (const session of sessions) session.close();
  await Promise.all([fast.close(), reference.close()]);
});

function request(
  keys: string[],
  init: { group?: string; cacheOnly?: boolean; sender?: string } = {},
): Uint8Array {
  return toBinary(
    FetchManyRequestSchema,
    create(FetchManyRequestSchema, {
      sender: makeSender(init.sender ?? "127.0.0.1:1", 7n),
      group: init.group ?? GROUP,
      keys,
      cacheOnly: init.cacheOnly ?? false,
    }),
  );
}

/** The same request to the fast path and to Connect alone. */
async function both(call: RawRequest): Promise<{ fast: RawAnswer; connect: RawAnswer }> {
  const [f, c] = [sessions[0]!, sessions[1]!];
  return {
    fast: await rawCall(f, { path: PATH, ...call }),
    connect: await rawCall(c, { path: PATH, ...call }),
  };
}

/** Every result in an answer's messages, by index. */
function results(answer: RawAnswer): FetchResult[] {
  const out: FetchResult[] = [];
  const body = answer.body;
  for (let at = 0; at < body.byteLength; at += 5 + body.readUInt32BE(at + 1)) {
    const message = body.subarray(at + 5, at + 5 + body.readUInt32BE(at + 1));
    out.push(...fromBinary(FetchManyResponseSchema, message).results);
  }
  return out.sort((a, b) => a.index - b.index);
}

describe("the FetchMany fast path answers as Connect does", () => {
  it("results: found, not found, load failed, not cached, with the same data and stamps", async () => {
    await group.get("Tom");
    const keys = ["Tom", "Jack", "none-1", "boom", "Tom"];
    const { fast: f, connect: c } = await both({ body: envelope(request(keys)) });
    expect(f.headers["content-type"]).toBe(FAST);
    expect(c.headers["content-type"]).toBe(CONNECT);
    expect([f.grpcStatus, c.grpcStatus]).toEqual([0, 0]);
    expect(results(f)).toEqual(results(c));
    // "Tom" twice: served once, answered at its first index only (peer.proto).
    expect(results(f).map((r) => r.index)).toEqual([0, 1, 2, 3]);
    const cached = await both({ body: envelope(request(["Tom", "nobody"], { cacheOnly: true })) });
    expect(results(cached.fast)).toEqual(results(cached.connect));
    // Every key counted in flight was given back, hits (answered at once) and
    // loads alike; the calls' own slots go as the server sees their streams close.
    for (const server of [fast, reference]) {
      await eventually(() => server.stats().inFlight === 0, 10_000).catch(() => {});
      expect(server.stats().inFlight).toBe(0);
    }
  });

  const valid = envelope(request(["Tom", "Jack"]));
  const noSender = toBinary(
    FetchManyRequestSchema,
    create(FetchManyRequestSchema, { group: GROUP, keys: ["Tom"] }),
  );
  const cases: [string, RawRequest, Code][] = [
    ["an envelope cut short", { body: valid.subarray(0, 8) }, Code.InvalidArgument],
    ["3 bytes of a header", { body: valid.subarray(0, 3) }, Code.InvalidArgument],
    ["not protobuf", { body: envelope(new Uint8Array([0xff, 0xff])) }, Code.Internal],
    [
      "a malformed grpc-timeout",
      { body: valid, headers: { "grpc-timeout": "soon" } },
      Code.InvalidArgument,
    ],
    ["no keys", { body: envelope(request([])) }, Code.InvalidArgument],
    ["an empty key", { body: envelope(request(["Tom", ""])) }, Code.InvalidArgument],
    [
      "a key over maxKeyBytes",
      { body: envelope(request(["k".repeat(MAX_KEY_BYTES + 1)])) },
      Code.InvalidArgument,
    ],
    [
      "an unknown group",
      { body: envelope(request(["Tom"], { group: "nope" })) },
      Code.FailedPrecondition,
    ],
    ["no sender", { body: envelope(noSender) }, Code.InvalidArgument],
    [
      "a sender address over 256 bytes",
      { body: envelope(request(["Tom"], { sender: "h".repeat(1_000) })) },
      Code.InvalidArgument,
    ],
    [
      "a group name over 256 bytes",
      { body: envelope(request(["Tom"], { group: "g".repeat(257) })) },
      Code.InvalidArgument,
    ],
  ];

  it.each(cases)("%s: the same status and message", async (_, call, code) => {
    const { fast: f, connect: c } = await both(call);
    expect(f.headers["content-type"]).toBe(FAST);
    expect([f.status, f.grpcStatus], f.grpcMessage).toEqual([200, code]);
    expect(c.grpcStatus, c.grpcMessage).toBe(code);
    expect(f.grpcMessage).toBe(c.grpcMessage);
  });

  // Where the fast path has always answered otherwise than Connect: pinned
  // here so a change to either side is seen.
  const differences: [string, RawRequest, [Code, string], [Code, string]][] = [
    [
      "no message",
      {},
      [Code.Unimplemented, "protocol error: missing input message for server streaming method"],
      [Code.Unimplemented, "protocol error: missing input message for server-streaming method"],
    ],
    [
      "two messages",
      { body: Buffer.concat([valid, valid]) },
      [
        Code.Unimplemented,
        "protocol error: received extra input message for server streaming method",
      ],
      [
        Code.Unimplemented,
        "protocol error: received extra input message for server-streaming method",
      ],
    ],
    [
      "a message and 2 bytes more",
      { body: Buffer.concat([valid, valid.subarray(0, 2)]) },
      [
        Code.Unimplemented,
        "protocol error: received extra input message for server streaming method",
      ],
      [Code.InvalidArgument, "protocol error: incomplete envelope"],
    ],
    [
      "compressed without grpc-encoding",
      { body: envelope(request(["Tom"]), 1) },
      [Code.Internal, "unexpected message flags 1"],
      [Code.Internal, "received compressed envelope, but do not know how to decompress"],
    ],
  ];

  it.each(differences)(
    "%s: the fast path's answer and Connect's",
    async (_, call, fastAnswer, connectAnswer) => {
      const { fast: f, connect: c } = await both(call);
      expect(f.headers["content-type"]).toBe(FAST);
      expect([f.grpcStatus, f.grpcMessage]).toEqual(fastAnswer);
      expect([c.grpcStatus, c.grpcMessage]).toEqual(connectAnswer);
    },
  );

  it("a header announcing more than the read limit is RESOURCE_EXHAUSTED before its body", async () => {
    // Connect waits for the body; the fast path answers from the header.
    const header = Buffer.alloc(5);
    header.writeUInt32BE(READ_MAX_BYTES + 1, 1);
    const f = await rawCall(sessions[0]!, { path: PATH, body: header, end: false });
    expect(f.grpcStatus).toBe(Code.ResourceExhausted);
    expect(f.grpcMessage).toBe(
      `message size ${READ_MAX_BYTES + 1} is larger than configured readMaxBytes ${READ_MAX_BYTES}`,
    );
    expect(f.rstCode).toBe(http2.constants.NGHTTP2_NO_ERROR);
    const whole = Buffer.concat([header, Buffer.alloc(READ_MAX_BYTES + 1)]);
    const c = await rawCall(sessions[1]!, { path: PATH, body: whole });
    expect([c.grpcStatus, c.grpcMessage]).toEqual([f.grpcStatus, f.grpcMessage]);
  });
});
