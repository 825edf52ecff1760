// The hand-written PeerService codec against protobuf-es: every encoder must
// write exactly `toBinary`'s bytes, and the decoder must read what
// `fromBinary` reads, for many generated messages and odd encodings.
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { BinaryWriter, WireType } from "@bufbuild/protobuf/wire";
import type { Stamp } from "@distcache/core";
import { describe, expect, it } from "vitest";
import {
  ExchangeRequestSchema,
  ExchangeResponseSchema,
  FetchManyRequestSchema,
  FetchManyResponseSchema,
  FetchOutcome,
  StoreManyRequestSchema,
  StoreManyResponseSchema,
} from "../gen/distcache/peer/v1/peer_pb.js";
import { makeSender, toWire } from "../peer-wire.js";
import {
  EXCHANGE_FETCH_MANY,
  EXCHANGE_STORE_MANY,
  type ExchangeResponseRead,
  encodeExchangeCancel,
  encodeExchangeEnd,
  readExchangeRequest,
  readExchangeResponse,
} from "./exchange-codec.js";
import {
  type DecodedFetchResult,
  decodeFetchManyResponse,
  encodeFetchManyRequest,
  encodeFetchManyResponse,
  encodeStoreManyRequest,
  encodeStoreManyResponse,
  type FetchResultFields,
  readFetchManyRequest,
  readStoreManyRequest,
  SenderField,
  type StoreItemFields,
  type StoreManyRequestFields,
} from "./peer-codec.js";

/** mulberry32: the same cases on every run. */
function random(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const ALPHABET = ["a", "Z", "0", ":", "é", "ß", "日", "😀", "\ud800", " ", "\u0000"];

function text(next: () => number, max: number): string {
  const length = Math.floor(next() * (max + 1));
  let out = "";
  for (let i = 0; i < length; i++) out += ALPHABET[Math.floor(next() * ALPHABET.length)];
  return out;
}

function bytes(next: () => number, max: number): Uint8Array {
  const out = new Uint8Array(Math.floor(next() * (max + 1)));
  for (let i = 0; i < out.length; i++) out[i] = Math.floor(next() * 256);
  return out;
}

/** A stamp part: 0, small, around 2^31/2^32, or up to 2^53 - 1. */
function part(next: () => number): number {
  const pick = next();
  if (pick < 0.2) return 0;
  if (pick < 0.4) return Math.floor(next() * 200);
  if (pick < 0.6) return 2 ** 31 - 1000 + Math.floor(next() * 2 ** 33);
  if (pick < 0.8) return Number.MAX_SAFE_INTEGER - Math.floor(next() * 1000);
  return Math.floor(next() * Number.MAX_SAFE_INTEGER);
}

function stamp(next: () => number): Stamp | undefined {
  return next() < 0.3 ? undefined : { epoch: part(next), seq: part(next) };
}

/** The message inside a frame, after checking the envelope header. */
function body(frame: Buffer): Uint8Array {
  expect(frame[0]).toBe(0);
  expect(frame.readUInt32BE(1)).toBe(frame.byteLength - 5);
  return new Uint8Array(frame.subarray(5));
}

const OUTCOMES = [
  FetchOutcome.UNSPECIFIED,
  FetchOutcome.FOUND,
  FetchOutcome.NOT_FOUND,
  FetchOutcome.LOAD_FAILED,
  FetchOutcome.NOT_CACHED,
];

function results(next: () => number): FetchResultFields[] {
  return Array.from({ length: 1 + Math.floor(next() * 6) }, () => ({
    index: next() < 0.2 ? 0 : Math.floor(next() * 2_000),
    outcome: OUTCOMES[Math.floor(next() * OUTCOMES.length)]!,
    data: next() < 0.3 ? undefined : bytes(next, 300),
    error: next() < 0.5 ? undefined : text(next, 20),
    stamp: stamp(next),
  }));
}

describe("peer codec: encoders write toBinary's bytes", () => {
  it("FetchManyRequest, for many senders, groups, keys and cache_only", () => {
    const next = random(1);
    const senders = new SenderField();
    for (let round = 0; round < 500; round++) {
      const sender = makeSender(
        `127.0.0.1:${Math.floor(next() * 65_536)}`,
        next() < 0.2 ? 0n : BigInt(Math.floor(next() * 2 ** 53)) * 2048n + 7n,
      );
      const group = text(next, 12);
      const keys = Array.from({ length: Math.floor(next() * 5) }, () => text(next, 40));
      const cacheOnly = next() < 0.5;
      const expected = toBinary(
        FetchManyRequestSchema,
        create(FetchManyRequestSchema, { sender, group, keys, cacheOnly }),
      );
      expect(body(encodeFetchManyRequest(senders.of(sender), group, keys, cacheOnly))).toEqual(
        expected,
      );
    }
  });

  it("FetchManyResponse, with every outcome, empty and absent fields, and stamps up to 2^53 - 1", () => {
    const next = random(2);
    for (let round = 0; round < 500; round++) {
      const list = results(next);
      const expected = toBinary(
        FetchManyResponseSchema,
        create(FetchManyResponseSchema, {
          results: list.map((r) => ({ ...r, stamp: toWire(r.stamp) })),
        }),
      );
      expect(body(encodeFetchManyResponse(list))).toEqual(expected);
    }
  });

  it("StoreManyRequest, with empty values and absent stamps", () => {
    const next = random(3);
    const senders = new SenderField();
    for (let round = 0; round < 500; round++) {
      const sender = makeSender(text(next, 30), BigInt(Math.floor(next() * 2 ** 40)));
      const group = text(next, 12);
      const items: StoreItemFields[] = Array.from({ length: Math.floor(next() * 5) }, () => ({
        key: text(next, 40),
        value: bytes(next, 500),
        stamp: stamp(next),
      }));
      const expected = toBinary(
        StoreManyRequestSchema,
        create(StoreManyRequestSchema, {
          sender,
          group,
          items: items.map((i) => ({ key: i.key, data: i.value, stamp: toWire(i.stamp) })),
        }),
      );
      expect(body(encodeStoreManyRequest(senders.of(sender), group, items))).toEqual(expected);
    }
  });

  it("StoreManyResponse, with and without ahead", () => {
    const next = random(4);
    for (let round = 0; round < 200; round++) {
      const ahead = stamp(next);
      const expected = toBinary(
        StoreManyResponseSchema,
        create(StoreManyResponseSchema, { ahead: toWire(ahead) }),
      );
      expect(body(encodeStoreManyResponse(ahead))).toEqual(expected);
    }
  });

  it("a sender field is encoded again when the membership version changes", () => {
    const field = new SenderField();
    const a = field.of(makeSender("127.0.0.1:1", 1n));
    expect(field.of(makeSender("127.0.0.1:1", 1n))).toBe(a);
    expect(field.of(makeSender("127.0.0.1:1", 2n))).not.toEqual(a);
  });
});

describe("peer codec: Exchange messages are toBinary's bytes", () => {
  const end = (next: () => number) =>
    next() < 0.4
      ? undefined
      : next() < 0.5
        ? { code: 0, message: "" }
        : { code: 1 + Math.floor(next() * 16), message: text(next, 30) };
  const id = (next: () => number) =>
    next() < 0.2 ? 0xffff_ffff : 1 + Math.floor(next() * 2 ** (1 + Math.floor(next() * 31)));

  it("requests: a FetchMany or StoreMany in a slot, and a cancel", () => {
    const next = random(11);
    const senders = new SenderField();
    for (let round = 0; round < 300; round++) {
      const sender = makeSender(`127.0.0.1:${Math.floor(next() * 65_536)}`, 3n);
      const group = text(next, 12);
      const call = id(next);
      const keys = Array.from({ length: Math.floor(next() * 5) }, () => text(next, 40));
      const cacheOnly = next() < 0.5;
      const fetch = encodeFetchManyRequest(senders.of(sender), group, keys, cacheOnly, {
        id: call,
        field: EXCHANGE_FETCH_MANY,
      });
      expect(body(fetch)).toEqual(
        toBinary(
          ExchangeRequestSchema,
          create(ExchangeRequestSchema, {
            id: call,
            call: { case: "fetchMany", value: { sender, group, keys, cacheOnly } },
          }),
        ),
      );
      const read = readExchangeRequest(body(fetch));
      expect([read.id, read.field]).toEqual([call, EXCHANGE_FETCH_MANY]);
      // Lone surrogates come back as U+FFFD: compare with what fromBinary reads.
      const reference = fromBinary(FetchManyRequestSchema, read.body);
      expect(readFetchManyRequest(read.body)).toMatchObject({
        group: reference.group,
        keys: reference.keys,
        cacheOnly,
      });
      const items: StoreItemFields[] = Array.from({ length: Math.floor(next() * 4) }, () => ({
        key: text(next, 20),
        value: bytes(next, 200),
        stamp: stamp(next),
      }));
      const store = encodeStoreManyRequest(senders.of(sender), group, items, {
        id: call,
        field: EXCHANGE_STORE_MANY,
      });
      expect(body(store)).toEqual(
        toBinary(
          ExchangeRequestSchema,
          create(ExchangeRequestSchema, {
            id: call,
            call: {
              case: "storeMany",
              value: {
                sender,
                group,
                items: items.map((i) => ({ key: i.key, data: i.value, stamp: toWire(i.stamp) })),
              },
            },
          }),
        ),
      );
      expect(body(encodeExchangeCancel(call))).toEqual(
        toBinary(
          ExchangeRequestSchema,
          create(ExchangeRequestSchema, { id: call, call: { case: "cancel", value: {} } }),
        ),
      );
    }
  });

  it("responses: results or a StoreMany answer in a slot, with or without the end, and a bare end", () => {
    const next = random(12);
    const read: ExchangeResponseRead = { id: 0, field: 0, body: undefined, end: undefined };
    for (let round = 0; round < 300; round++) {
      const call = id(next);
      const last = end(next);
      const list = results(next);
      const fetch = encodeFetchManyResponse(list, {
        id: call,
        field: EXCHANGE_FETCH_MANY,
        end: last,
      });
      const expected = create(ExchangeResponseSchema, {
        id: call,
        body: {
          case: "fetchMany",
          value: { results: list.map((r) => ({ ...r, stamp: toWire(r.stamp) })) },
        },
        end: last,
      });
      expect(body(fetch)).toEqual(toBinary(ExchangeResponseSchema, expected));
      readExchangeResponse(body(fetch), read);
      const sent = fromBinary(ExchangeResponseSchema, body(fetch)).end;
      expect([read.id, read.field, read.end]).toEqual([
        call,
        EXCHANGE_FETCH_MANY,
        sent === undefined ? undefined : { code: sent.code, message: sent.message },
      ]);
      expect(decoded(read.body!)).toEqual(
        viaFromBinary(
          toBinary(
            FetchManyResponseSchema,
            create(FetchManyResponseSchema, {
              results: list.map((r) => ({ ...r, stamp: toWire(r.stamp) })),
            }),
          ),
        ),
      );
      const ahead = stamp(next);
      const store = encodeStoreManyResponse(ahead, {
        id: call,
        field: EXCHANGE_STORE_MANY,
        end: last,
      });
      expect(body(store)).toEqual(
        toBinary(
          ExchangeResponseSchema,
          create(ExchangeResponseSchema, {
            id: call,
            body: { case: "storeMany", value: { ahead: toWire(ahead) } },
            end: last,
          }),
        ),
      );
      const only = end(next) ?? { code: 0, message: "" };
      expect(body(encodeExchangeEnd(call, only))).toEqual(
        toBinary(ExchangeResponseSchema, create(ExchangeResponseSchema, { id: call, end: only })),
      );
    }
  });

  it("a request that is not one call is INVALID_ARGUMENT", () => {
    const bad = [
      new Uint8Array([]), // no id, no call
      toBinary(ExchangeRequestSchema, create(ExchangeRequestSchema, { id: 5 })), // no call
      toBinary(
        ExchangeRequestSchema,
        create(ExchangeRequestSchema, { call: { case: "cancel", value: {} } }),
      ), // id 0
      new Uint8Array([0x08, 0x01, 0x12, 0x05, 0x0a]), // truncated
      new Uint8Array([0x08, 0x01, 0x22, 0x00, 0x22, 0x00]), // two calls
    ];
    for (const message of bad) {
      expect(() => readExchangeRequest(message)).toThrow(/bad ExchangeRequest/);
    }
  });
});

/** What fromBinary reads, in the decoder's shape. */
function viaFromBinary(message: Uint8Array): DecodedFetchResult[] {
  return fromBinary(FetchManyResponseSchema, message).results.map((r) => ({
    index: r.index,
    outcome: r.outcome,
    data: r.data,
    error: r.error,
    stamp: r.stamp === undefined ? undefined : { epoch: r.stamp.epoch, seq: r.stamp.seq },
  }));
}

/** The decoder's results, stamp parts as bigints (it reads numbers where they fit) to compare with fromBinary's. */
function decoded(message: Uint8Array): DecodedFetchResult[] {
  const out: DecodedFetchResult[] = [];
  decodeFetchManyResponse(message, (r) =>
    out.push({
      ...r,
      stamp: r.stamp && { epoch: BigInt(r.stamp.epoch), seq: BigInt(r.stamp.seq) },
    }),
  );
  return out;
}

describe("peer codec: the FetchManyResponse decoder reads what fromBinary reads", () => {
  it("messages as the encoders write them (byte for byte toBinary's, above)", () => {
    const next = random(5);
    for (let round = 0; round < 500; round++) {
      const message = body(encodeFetchManyResponse(results(next)));
      expect(decoded(message)).toEqual(viaFromBinary(message));
    }
  });

  it("unknown fields, repeated singular fields, a stamp sent twice, fields out of order", () => {
    const w = new BinaryWriter();
    // Unknown top-level fields of every wire type.
    w.tag(9, WireType.Varint).uint64(123456789012345n);
    w.tag(10, WireType.Bit64).fixed64(5n);
    w.tag(11, WireType.Bit32).fixed32(5);
    w.tag(12, WireType.LengthDelimited).bytes(new Uint8Array([1, 2, 3]));
    w.tag(1, WireType.LengthDelimited).fork();
    w.tag(5, WireType.LengthDelimited).fork().tag(1, WireType.Varint).uint64(7n).join();
    w.tag(3, WireType.LengthDelimited).bytes(new Uint8Array([9, 9]));
    w.tag(2, WireType.Varint).int32(FetchOutcome.FOUND);
    w.tag(1, WireType.Varint).uint32(4);
    w.tag(1, WireType.Varint).uint32(5); // the last value wins
    w.tag(15, WireType.LengthDelimited).string("unknown inside");
    // The stamp again: merged, so epoch 7 stays and seq is set.
    w.tag(5, WireType.LengthDelimited).fork().tag(2, WireType.Varint).uint64(3n).join();
    w.tag(4, WireType.LengthDelimited).string("ünïcode");
    w.join();
    w.tag(1, WireType.LengthDelimited).fork().join(); // an empty result
    const message = w.finish();
    const read = decoded(message);
    expect(read).toEqual(viaFromBinary(message));
    expect(read[0]).toMatchObject({ index: 5, stamp: { epoch: 7n, seq: 3n } });
    expect(read[1]).toMatchObject({ index: 0, outcome: 0, stamp: undefined });
  });

  it("throws where fromBinary throws: truncated messages and invalid UTF-8", () => {
    const whole = body(
      encodeFetchManyResponse([
        {
          index: 3,
          outcome: FetchOutcome.FOUND,
          data: new Uint8Array(10),
          stamp: { epoch: 1, seq: 2 },
        },
      ]),
    );
    for (let cut = 1; cut < whole.byteLength; cut++) {
      const part = whole.subarray(0, cut);
      expect(() => fromBinary(FetchManyResponseSchema, part)).toThrow();
      expect(() => decoded(part)).toThrow();
    }
    const w = new BinaryWriter();
    w.tag(1, WireType.LengthDelimited).fork();
    w.tag(4, WireType.LengthDelimited).bytes(new Uint8Array([0xc3, 0x28]));
    w.join();
    const badText = w.finish();
    expect(() => fromBinary(FetchManyResponseSchema, badText)).toThrow();
    expect(() => decoded(badText)).toThrow();
  });
});

/** What a reader and fromBinary give for `bytes`: both values, or both errors. */
function outcome<T>(read: () => T): { value: T } | { error: true } {
  try {
    return { value: read() };
  } catch {
    return { error: true };
  }
}

/** The fields the server reads of a request from fromBinary, in the readers' shape. */
function fetchFields(bytes: Uint8Array) {
  const r = fromBinary(FetchManyRequestSchema, bytes);
  const sender = r.sender && {
    address: r.sender.address,
    membershipVersion: r.sender.membershipVersion,
  };
  return { sender, group: r.group, keys: r.keys, cacheOnly: r.cacheOnly };
}

function storeFields(bytes: Uint8Array) {
  return storeShape(fromBinary(StoreManyRequestSchema, bytes));
}

function plainFetch(bytes: Uint8Array) {
  const r = readFetchManyRequest(bytes);
  const sender = r.sender && {
    address: r.sender.address,
    membershipVersion: r.sender.membershipVersion,
  };
  return { sender, group: r.group, keys: [...r.keys], cacheOnly: r.cacheOnly };
}

function plainStore(bytes: Uint8Array) {
  return storeShape(readStoreManyRequest(bytes));
}

/** A StoreManyRequest as plain data, whichever reader read it. */
function storeShape(r: StoreManyRequestFields) {
  const sender = r.sender && {
    address: r.sender.address,
    membershipVersion: r.sender.membershipVersion,
  };
  const items = r.items.map((i) => ({
    key: i.key,
    data: i.data,
    stamp: i.stamp && { epoch: BigInt(i.stamp.epoch), seq: BigInt(i.stamp.seq) },
  }));
  return { sender, group: r.group, items };
}

describe("peer codec: the request readers read what fromBinary reads", () => {
  it("FetchManyRequest and StoreManyRequest as toBinary writes them", () => {
    const next = random(6);
    for (let round = 0; round < 300; round++) {
      const sender =
        next() < 0.1
          ? undefined
          : makeSender(text(next, 20), BigInt(Math.floor(next() * 2 ** 53)) * 3n);
      const fetch = toBinary(
        FetchManyRequestSchema,
        create(FetchManyRequestSchema, {
          sender,
          group: text(next, 10),
          keys: Array.from({ length: Math.floor(next() * 5) }, () => text(next, 30)),
          cacheOnly: next() < 0.5,
        }),
      );
      expect(plainFetch(fetch)).toEqual(fetchFields(fetch));
      const store = toBinary(
        StoreManyRequestSchema,
        create(StoreManyRequestSchema, {
          sender,
          group: text(next, 10),
          items: Array.from({ length: Math.floor(next() * 5) }, () => ({
            key: text(next, 30),
            data: bytes(next, 100),
            stamp: toWire(stamp(next)),
          })),
        }),
      );
      expect(plainStore(store)).toEqual(storeFields(store));
    }
  });

  it("odd encodings: unknown fields, a sender sent twice, other wire types, groups, truncation, bad UTF-8", () => {
    const odd: Uint8Array[] = [];
    // Unknown fields and a sender in two parts (merged).
    let w = new BinaryWriter();
    w.tag(1, WireType.LengthDelimited).fork().tag(1, WireType.LengthDelimited).string("a:1").join();
    w.tag(9, WireType.Varint).uint64(5n);
    w.tag(3, WireType.LengthDelimited).string("k1");
    w.tag(1, WireType.LengthDelimited).fork().tag(2, WireType.Varint).uint64(77n).join();
    w.tag(4, WireType.Varint).uint64(2n); // any non-zero varint is true
    w.tag(2, WireType.LengthDelimited).string("g1");
    w.tag(2, WireType.LengthDelimited).string("g2"); // the last wins
    w.tag(3, WireType.LengthDelimited).string("k2");
    odd.push(w.finish());
    // A known field with another wire type (fromBinary reads it by its declared type).
    w = new BinaryWriter();
    w.tag(4, WireType.Bit32).fixed32(1);
    odd.push(w.finish());
    // The sender as a group.
    w = new BinaryWriter();
    w.tag(1, WireType.StartGroup)
      .tag(1, WireType.LengthDelimited)
      .string("a:1")
      .tag(1, WireType.EndGroup);
    odd.push(w.finish());
    // Bad UTF-8 in a key.
    w = new BinaryWriter();
    w.tag(3, WireType.LengthDelimited).bytes(new Uint8Array([0xc3, 0x28]));
    odd.push(w.finish());
    // A store item with its stamp in two parts and an unknown field.
    w = new BinaryWriter();
    w.tag(3, WireType.LengthDelimited).fork();
    w.tag(3, WireType.LengthDelimited).fork().tag(1, WireType.Varint).uint64(9n).join();
    w.tag(7, WireType.Bit64).fixed64(1n);
    w.tag(1, WireType.LengthDelimited).string("key");
    w.tag(3, WireType.LengthDelimited).fork().tag(2, WireType.Varint).uint64(4n).join();
    w.join();
    odd.push(w.finish());
    // Every cut of a canonical request.
    const whole = toBinary(
      StoreManyRequestSchema,
      create(StoreManyRequestSchema, {
        sender: makeSender("127.0.0.1:9", 5n),
        group: "g",
        items: [{ key: "k", data: new Uint8Array([1, 2, 3]), stamp: { epoch: 1n, seq: 2n } }],
      }),
    );
    for (let cut = 1; cut < whole.byteLength; cut++) odd.push(whole.subarray(0, cut));
    for (const bytes of odd) {
      expect(outcome(() => plainFetch(bytes))).toEqual(outcome(() => fetchFields(bytes)));
      expect(outcome(() => plainStore(bytes))).toEqual(outcome(() => storeFields(bytes)));
    }
  });
});
