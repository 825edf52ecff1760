import { BinaryReader, BinaryWriter } from "@bufbuild/protobuf/wire";
import fc from "fast-check";
import { describe, expect, it, vi } from "vitest";
import { readUint64 } from "./uint64.js";

/** `value` as a uint64 varint, then a uint32 300 to show where the reader stopped. */
const bytesOf = (value: bigint) => new BinaryWriter().uint64(value).uint32(300).finish();

function read(value: bigint) {
  const reader = new BinaryReader(bytesOf(value));
  const got = readUint64(reader);
  return { got, next: reader.uint32() };
}

describe("readUint64", () => {
  it("reads a number up to 2^53 - 1 and the exact bigint past it, and stops after the varint", () => {
    const values = [0n, 1n, 127n, 128n, 2n ** 49n - 1n, 2n ** 49n, 2n ** 53n - 1n];
    for (const value of values)
      expect(read(value), String(value)).toEqual({ got: Number(value), next: 300 });
    for (const value of [2n ** 53n, 2n ** 63n, 2n ** 64n - 1n]) {
      expect(read(value), String(value)).toEqual({ got: value, next: 300 });
    }
  });

  it("agrees with BinaryReader.uint64() on any uint64", () => {
    fc.assert(
      fc.property(fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }), (value) => {
        const { got, next } = read(value);
        expect(BigInt(got)).toBe(BigInt(new BinaryReader(bytesOf(value)).uint64()));
        expect(typeof got).toBe(value <= BigInt(Number.MAX_SAFE_INTEGER) ? "number" : "bigint");
        expect(next).toBe(300);
      }),
      { numRuns: 2_000 },
    );
  });

  it("reads values below 2^53 itself, a stamp's epoch included, and only larger ones through BinaryReader.uint64()", () => {
    const uint64 = vi.spyOn(BinaryReader.prototype, "uint64");
    try {
      // An epoch as Incarnation makes it (Date.now() x 1024 + up to 1023): an eight-byte varint.
      const epoch = BigInt(Date.now()) * 1024n + 1023n;
      for (const value of [0n, 2n ** 49n - 1n, 2n ** 49n, epoch, 2n ** 53n - 1n]) {
        uint64.mockClear();
        expect(read(value).got, String(value)).toBe(Number(value));
        expect(uint64, String(value)).not.toHaveBeenCalled();
      }
      for (const value of [2n ** 53n, 2n ** 56n, 2n ** 64n - 1n]) {
        uint64.mockClear();
        expect(read(value).got, String(value)).toBe(value);
        expect(uint64, String(value)).toHaveBeenCalledTimes(1);
      }
    } finally {
      uint64.mockRestore();
    }
  });

  it("throws as BinaryReader.uint64() does on a truncated varint", () => {
    for (const bytes of [
      Uint8Array.of(0x80),
      Uint8Array.of(0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff),
    ]) {
      expect(() => readUint64(new BinaryReader(bytes))).toThrow();
      expect(() => new BinaryReader(bytes).uint64()).toThrow();
    }
  });
});
