// The StoreMany fast path against Connect's own handler over real HTTP/2: the
// same raw requests to a NodeServer with fast paths and to one with
// `fastPaths: false`, each with a group of its own; statuses, messages,
// answers and what each group kept must agree.
import * as http2 from "node:http2";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { Code } from "@connectrpc/connect";
import { Group, type Stamp } from "@distcache/core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { peerCallHeaders } from "../../auth/peer-token.js";
import {
  StoreManyRequestSchema,
  StoreManyResponseSchema,
} from "../../gen/distcache/peer/v1/peer_pb.js";
import { SERVER_DEFAULTS } from "../../options.js";
import { makeSender, toWire } from "../../peer-wire.js";
import { envelope, type RawAnswer, type RawRequest, rawCall } from "../../raw-h2.test-util.js";
import type { ServiceHost } from "../host.js";
import { NodeServer } from "../server.js";
import { STORE_MANY_MAX_ITEMS } from "../validation.js";

const GROUP = "store-many-fast";
const PATH = "/distcache.peer.v1.PeerService/StoreMany";
const FAST = "application/grpc";
const MAX_VALUE_BYTES = 8_192;
const MAX_KEY_BYTES = 64;
const READ_MAX_BYTES = MAX_VALUE_BYTES + MAX_KEY_BYTES + 1_024;
const SENDER = "127.0.0.1:1";
const SECRET = "a-secret-of-at-least-16-chars";
const EPOCH = 1_000;

/** A server with a group of its own (so both sides' state can be compared). */
function side(fastPaths: boolean, secrets: string[] = []) {
  const group = new Group(GROUP, 1 << 20, () => {
    throw new Error("a replica never loads in these tests");
  });
  const host: ServiceHost = {
    membershipVersion: () => 7n,
    group: (name) => (name === GROUP ? group : undefined),
    heardFrom: () => {},
    epochSeen: () => 0,
  };
  const server = new NodeServer(
    host,
    {
      ...SERVER_DEFAULTS,
      maxKeyBytes: MAX_KEY_BYTES,
      maxValueBytes: MAX_VALUE_BYTES,
      fastPaths,
      drainTimeoutMs: 100,
    },
    { secrets, tls: undefined },
  );
  server.setMembers([SENDER, "127.0.0.1:2"]);
  return { group, server, session: undefined as http2.ClientHttp2Session | undefined };
}

const fast = side(true);
const reference = side(false);
const fastAuth = side(true, [SECRET]);
const referenceAuth = side(false, [SECRET]);
const all = [fast, reference, fastAuth, referenceAuth];

beforeAll(async () => {
  for (const s of all) {
    await s.server.listen("127.0.0.1", 0);
    s.session = http2.connect(`http://127.0.0.1:${s.server.address!.port}`);
    s.session.on("error", () => {});
  }
});
afterAll(async () => {
  for (const s of all) s.session?.close();
  await Promise.all(all.map((s) => s.server.close()));
});

interface Item {
  key: string;
  data?: Uint8Array;
  stamp?: Stamp;
}

function request(items: Item[], init: { group?: string; sender?: string } = {}): Uint8Array {
  return toBinary(
    StoreManyRequestSchema,
    create(StoreManyRequestSchema, {
      sender: makeSender(init.sender ?? SENDER, 7n),
      group: init.group ?? GROUP,
      items: items.map((i) => ({
        key: i.key,
        data: i.data ?? new TextEncoder().encode(`v:${i.key}`),
        stamp: toWire(i.stamp),
      })),
    }),
  );
}

/** The same request to the fast path and to Connect alone. */
async function both(
  call: RawRequest,
  pair: [ReturnType<typeof side>, ReturnType<typeof side>] = [fast, reference],
): Promise<{ fast: RawAnswer; connect: RawAnswer }> {
  return {
    fast: await rawCall(pair[0].session!, { path: PATH, ...call }),
    connect: await rawCall(pair[1].session!, { path: PATH, ...call }),
  };
}

/** The `ahead` stamp of an OK answer (its one message), as numbers. */
function ahead(answer: RawAnswer): { epoch: number; seq: number } | undefined {
  expect(answer.body.byteLength).toBeGreaterThanOrEqual(5);
  const length = answer.body.readUInt32BE(1);
  expect(answer.body.byteLength).toBe(5 + length);
  const stamp = fromBinary(StoreManyResponseSchema, answer.body.subarray(5)).ahead;
  return stamp === undefined ? undefined : { epoch: Number(stamp.epoch), seq: Number(stamp.seq) };
}

const held = (group: Group, key: string) => group.getCached(key)?.toString();

describe("the StoreMany fast path answers as Connect does", () => {
  it("keeps every item, answers with no `ahead`, counts alike", async () => {
    const items = [
      { key: "a", stamp: { epoch: EPOCH, seq: 1 } },
      { key: "b", data: new Uint8Array(0), stamp: { epoch: EPOCH, seq: 1 } },
      { key: "c" }, // unstamped (an older peer)
    ];
    const { fast: f, connect: c } = await both({ body: envelope(request(items)) });
    expect(f.headers["content-type"]).toBe(FAST);
    expect([f.status, f.grpcStatus, c.grpcStatus]).toEqual([200, 0, 0]);
    expect(ahead(f)).toEqual(undefined);
    expect(ahead(c)).toEqual(undefined);
    for (const s of [fast, reference]) {
      expect([held(s.group, "a"), held(s.group, "b"), held(s.group, "c")]).toEqual([
        "v:a",
        "",
        "v:c",
      ]);
    }
    expect(fast.server.received).toEqual(reference.server.received);
  });

  it("refuses a push older than a write the sender announced, and answers `ahead` for an old epoch", async () => {
    for (const s of [fast, reference]) {
      // The owner announced a write of "x" at (EPOCH, 10) (a stamped Invalidate).
      await s.group.peerHandler.remove("x", { from: SENDER, stamp: { epoch: EPOCH, seq: 10 } });
    }
    const stale = await both({
      body: envelope(request([{ key: "x", stamp: { epoch: EPOCH, seq: 5 } }])),
    });
    expect([stale.fast.grpcStatus, stale.connect.grpcStatus]).toEqual([0, 0]);
    expect(ahead(stale.fast)).toEqual(ahead(stale.connect));
    for (const s of [fast, reference]) expect(held(s.group, "x")).toBeUndefined();

    const later = await both({
      body: envelope(request([{ key: "x", stamp: { epoch: EPOCH, seq: 11 } }])),
    });
    expect(ahead(later.fast)).toEqual(ahead(later.connect));
    for (const s of [fast, reference]) expect(held(s.group, "x")).toBe("v:x");

    // A push stamped by an earlier incarnation of the sender: the answer says how far ahead.
    const old = await both({
      body: envelope(request([{ key: "y", stamp: { epoch: EPOCH - 1, seq: 1 } }])),
    });
    expect(ahead(old.fast)).toEqual({ epoch: EPOCH, seq: expect.any(Number) });
    expect(ahead(old.fast)).toEqual(ahead(old.connect));
    expect(held(fast.group, "y")).toBe(held(reference.group, "y"));
    expect(fast.group.stats().staleCopiesRefused).toBe(reference.group.stats().staleCopiesRefused);
    expect(fast.group.stats().staleCopiesRefused).toBeGreaterThan(0);
  });

  const noSender = toBinary(
    StoreManyRequestSchema,
    create(StoreManyRequestSchema, { group: GROUP, items: [{ key: "a" }] }),
  );
  const valid = envelope(request([{ key: "a" }]));
  // One key again and again, no values: small enough for the read limit.
  const tooMany = Array.from({ length: STORE_MANY_MAX_ITEMS + 1 }, () => ({
    key: "k",
    data: new Uint8Array(0),
  }));
  const outOfRange = toBinary(
    StoreManyRequestSchema,
    create(StoreManyRequestSchema, {
      sender: makeSender(SENDER, 7n),
      group: GROUP,
      items: [{ key: "a", stamp: { epoch: 2n ** 60n, seq: 1n } }],
    }),
  );
  const cases: [string, RawRequest, Code][] = [
    ["no message", {}, Code.Unimplemented],
    ["two messages", { body: Buffer.concat([valid, valid]) }, Code.Unimplemented],
    [
      "a message and 2 bytes more",
      { body: Buffer.concat([valid, valid.subarray(0, 2)]) },
      Code.InvalidArgument,
    ],
    ["an envelope cut short", { body: valid.subarray(0, 8) }, Code.InvalidArgument],
    ["3 bytes of a header", { body: valid.subarray(0, 3) }, Code.InvalidArgument],
    [
      "compressed without grpc-encoding",
      { body: envelope(request([{ key: "a" }]), 1) },
      Code.Internal,
    ],
    ["not protobuf", { body: envelope(new Uint8Array([0xff, 0xff])) }, Code.Internal],
    [
      "a malformed grpc-timeout",
      { body: valid, headers: { "grpc-timeout": "soon" } },
      Code.InvalidArgument,
    ],
    ["no items", { body: envelope(request([])) }, Code.InvalidArgument],
    ["too many items", { body: envelope(request(tooMany)) }, Code.InvalidArgument],
    [
      "an empty key",
      { body: envelope(request([{ key: "a" }, { key: "" }])) },
      Code.InvalidArgument,
    ],
    [
      "a key over maxKeyBytes",
      { body: envelope(request([{ key: "k".repeat(MAX_KEY_BYTES + 1) }])) },
      Code.InvalidArgument,
    ],
    [
      "a value over maxValueBytes",
      { body: envelope(request([{ key: "a", data: new Uint8Array(MAX_VALUE_BYTES + 1) }])) },
      Code.InvalidArgument,
    ],
    ["a stamp out of range", { body: envelope(outOfRange) }, Code.InvalidArgument],
    [
      "an unknown group",
      { body: envelope(request([{ key: "a" }], { group: "nope" })) },
      Code.FailedPrecondition,
    ],
    ["no sender", { body: envelope(noSender) }, Code.InvalidArgument],
    [
      "a sender address over 256 bytes",
      { body: envelope(request([{ key: "a" }], { sender: "h".repeat(1_000) })) },
      Code.InvalidArgument,
    ],
    [
      "a sender that is not a member",
      { body: envelope(request([{ key: "a" }], { sender: "10.0.0.9:1" })) },
      Code.PermissionDenied,
    ],
  ];

  it.each(cases)("%s: the same status and message, nothing kept", async (_, call, code) => {
    const before = [fast, reference].map((s) => s.group.stats().items);
    const { fast: f, connect: c } = await both(call);
    expect(f.headers["content-type"]).toBe(FAST);
    expect([f.status, f.grpcStatus], f.grpcMessage).toEqual([200, code]);
    expect(c.grpcStatus, c.grpcMessage).toBe(code);
    expect(f.grpcMessage).toBe(c.grpcMessage);
    expect([fast, reference].map((s) => s.group.stats().items)).toEqual(before);
  });

  it("a header announcing more than the read limit is RESOURCE_EXHAUSTED before its body", async () => {
    const header = Buffer.alloc(5);
    header.writeUInt32BE(READ_MAX_BYTES + 1, 1);
    const f = await rawCall(fast.session!, { path: PATH, body: header, end: false });
    expect(f.grpcStatus).toBe(Code.ResourceExhausted);
    expect(f.grpcMessage).toBe(
      `message size ${READ_MAX_BYTES + 1} is larger than configured readMaxBytes ${READ_MAX_BYTES}`,
    );
    expect(f.rstCode).toBe(http2.constants.NGHTTP2_NO_ERROR);
    const whole = Buffer.concat([header, Buffer.alloc(READ_MAX_BYTES + 1)]);
    const c = await rawCall(reference.session!, { path: PATH, body: whole });
    expect([c.grpcStatus, c.grpcMessage]).toEqual([f.grpcStatus, f.grpcMessage]);
  });
});

describe("the StoreMany fast path with peer secrets", () => {
  const pair: [ReturnType<typeof side>, ReturnType<typeof side>] = [fastAuth, referenceAuth];
  const body = envelope(request([{ key: "z", stamp: { epoch: EPOCH, seq: 1 } }]));

  it("a call without credentials is UNAUTHENTICATED on both, and keeps nothing", async () => {
    const { fast: f, connect: c } = await both({ body }, pair);
    expect([f.grpcStatus, c.grpcStatus]).toEqual([Code.Unauthenticated, Code.Unauthenticated]);
    expect(f.grpcMessage).toBe(c.grpcMessage);
    for (const s of pair) expect(held(s.group, "z")).toBeUndefined();
  });

  it("a sender other than the authenticated peer is PERMISSION_DENIED on both", async () => {
    const headers = peerCallHeaders("127.0.0.1:2", [SECRET]);
    const { fast: f, connect: c } = await both({ body, headers }, pair);
    expect([f.grpcStatus, c.grpcStatus]).toEqual([Code.PermissionDenied, Code.PermissionDenied]);
    expect(f.grpcMessage).toBe(c.grpcMessage);
    for (const s of pair) expect(held(s.group, "z")).toBeUndefined();
  });

  it("the authenticated sender's pushes are kept on both", async () => {
    const headers = peerCallHeaders(SENDER, [SECRET]);
    const { fast: f, connect: c } = await both({ body, headers }, pair);
    expect([f.grpcStatus, c.grpcStatus]).toEqual([0, 0]);
    expect(f.headers["content-type"]).toBe(FAST);
    for (const s of pair) expect(held(s.group, "z")).toBe("v:z");
  });
});
