// The Get fast path's hand-written protobuf against @bufbuild/protobuf: the
// same bytes out, and the same fields in (or a fallback to fromBinary).
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { ByteView } from "@distcache/core";
import { describe, expect, it } from "vitest";
import { GetRequestSchema, GetResponseSchema } from "../../gen/distcache/cache_pb.js";
import { envelope as frame } from "../../raw-h2.test-util.js";
import { decodeSimpleGetRequest, encodeFound, encodeNotFound } from "./get-codec.js";

const GROUP = "fast";
const MAX_KEY_BYTES = 64;

function getFrame(g: string, key: string): Buffer {
  return frame(toBinary(GetRequestSchema, create(GetRequestSchema, { group: g, key })));
}

describe("pieces", () => {
  it("encodes GetResponse exactly as toBinary does", () => {
    const values = [
      new Uint8Array(0),
      Buffer.from("630"),
      Buffer.alloc(127, 1),
      Buffer.alloc(128, 2),
      Buffer.alloc(16_384, 3),
      Buffer.alloc(2_097_152, 4),
    ];
    for (const value of values) {
      const expected = toBinary(
        GetResponseSchema,
        create(GetResponseSchema, { data: value, found: true }),
      );
      expect(encodeFound(ByteView.from(value)).equals(frame(expected))).toBe(true);
    }
    for (const err of ["", "key is required", "é".repeat(100), "🙂 x".repeat(50)]) {
      const expected = toBinary(
        GetResponseSchema,
        create(GetResponseSchema, { found: false, err }),
      );
      expect(encodeNotFound(err).equals(frame(expected))).toBe(true);
    }
  });

  it("the hand decoder gives fromBinary's answer or none (200 000 generated inputs)", () => {
    // A seeded generator (xorshift32), so a failure reproduces.
    let seed = 0x2545f491;
    const next = (n: number) => {
      seed ^= seed << 13;
      seed ^= seed >>> 17;
      seed ^= seed << 5;
      return (seed >>> 0) % n;
    };
    const alphabet = [0x61, 0x7a, 0x30, 0x20, 0x7f, 0x00, 0x80, 0xc3, 0xa9, 0xff, 0x0a, 0x12];
    const piece = (): number[] => {
      switch (next(8)) {
        case 0:
          return [next(256)]; // any byte: a tag, a length, garbage
        case 1: {
          const length = next(4) === 0 ? 128 + next(300) : next(12);
          const bytes = Array.from({ length }, () =>
            next(4) === 0 ? alphabet[next(alphabet.length)]! : 0x61 + next(26),
          );
          const varint = length < 128 ? [length] : [(length & 0x7f) | 0x80, length >> 7];
          return [[0x0a, 0x12][next(2)]!, ...varint, ...bytes];
        }
        case 2:
          return [[0x0a, 0x12][next(2)]!, 0x80 | next(128), next(2)]; // a 2-byte length
        case 3:
          return [0x08, next(200)]; // a varint field
        case 4:
          return [0x1a, 1, 0x61]; // an unknown length-delimited field
        case 5:
          return [[0x0a, 0x12][next(2)]!, 0x80 | next(128), 0x80 | next(128), next(3)]; // 3 bytes
        default:
          return [[0x0a, 0x12][next(2)]!, 3, 0x61 + next(26), 0x62, 0x63];
      }
    };
    let byHand = 0;
    for (let n = 0; n < 200_000; n++) {
      const bytes: number[] = [];
      const parts = next(4);
      for (let i = 0; i < parts; i++) bytes.push(...piece());
      if (next(5) === 0 && bytes.length > 0) bytes.length = next(bytes.length); // truncate
      const buffer = Buffer.from([9, 9, ...bytes, 9]);
      let expected: { group: string; key: string } | "error";
      try {
        const message = fromBinary(GetRequestSchema, buffer.subarray(2, 2 + bytes.length));
        expected = { group: message.group, key: message.key };
      } catch {
        expected = "error";
      }
      const actual = decodeSimpleGetRequest(buffer, 2, 2 + bytes.length);
      if (actual === undefined) continue;
      byHand++;
      expect(actual, Buffer.from(bytes).toString("hex")).toEqual(expected);
    }
    expect(byHand).toBeGreaterThan(50_000);
    // The shape clients send is decoded by hand.
    expect(
      decodeSimpleGetRequest(getFrame(GROUP, "Tom"), 5, getFrame(GROUP, "Tom").length),
    ).toEqual({
      group: GROUP,
      key: "Tom",
    });
    const long = getFrame(GROUP, "k".repeat(MAX_KEY_BYTES));
    expect(decodeSimpleGetRequest(long, 5, long.length)?.key).toBe("k".repeat(MAX_KEY_BYTES));
  });
});
