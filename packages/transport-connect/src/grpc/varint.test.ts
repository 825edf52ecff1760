import { BinaryWriter } from "@bufbuild/protobuf/wire";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { varintSize, writeVarint } from "./varint.js";

/** protobuf-es's bytes for `value` as a uint64 varint. */
const theirs = (value: number) => new BinaryWriter().uint64(BigInt(value)).finish();

function ours(value: number): Uint8Array {
  const target = new Uint8Array(10);
  const end = writeVarint(target, 0, value);
  expect(end).toBe(varintSize(value));
  return target.subarray(0, end);
}

describe("varint", () => {
  it("writes and sizes every boundary as protobuf-es does", () => {
    const values = [0, 1, 0x7f, 0x80, 0x3fff, 0x4000, 0x1f_ffff, 0x20_0000, 0xfff_ffff];
    for (let bits = 28; bits <= 53; bits++) values.push(2 ** bits - 1, 2 ** bits);
    values.push(0x7fff_ffff, 0x8000_0000, 0xffff_ffff, Number.MAX_SAFE_INTEGER, 1_780_000_000_123);
    for (const value of values) expect(ours(value), String(value)).toEqual(theirs(value));
  });

  it("agrees with protobuf-es on any integer up to 2^53 - 1", () => {
    fc.assert(
      fc.property(fc.maxSafeNat(), (value) => {
        expect(ours(value)).toEqual(theirs(value));
      }),
      { numRuns: 5_000 },
    );
  });
});
