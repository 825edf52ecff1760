import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { utf8Length, writeUtf8 } from "./utf8.js";

/** `text` written by writeUtf8 between two marker bytes, and where it ended. */
function written(text: string) {
  const bytes = utf8Length(text);
  const target = Buffer.alloc(bytes + 2, 0xee);
  const end = writeUtf8(target, 1, text, bytes);
  return { bytes, end, target };
}

describe("utf8Length and writeUtf8", () => {
  it("agree with Buffer on any string: ASCII, multi-byte, surrogate pairs, lone surrogates, long", () => {
    const strings = fc.oneof(
      fc.string({ unit: "binary", maxLength: 80 }),
      fc.string({ unit: "grapheme-ascii", maxLength: 80 }),
      fc.string({
        unit: fc.integer({ min: 0, max: 0xffff }).map((c) => String.fromCharCode(c)),
        maxLength: 20,
      }),
      fc.string({ maxLength: 200 }),
    );
    fc.assert(
      fc.property(strings, (text) => {
        const { bytes, end, target } = written(text);
        expect(bytes).toBe(Buffer.byteLength(text, "utf8"));
        expect(end).toBe(1 + bytes);
        expect(target.subarray(1, end)).toEqual(Buffer.from(text, "utf8"));
        // Nothing written outside its bytes.
        expect([target[0], target[end]]).toEqual([0xee, 0xee]);
      }),
      { numRuns: 3_000 },
    );
  });

  it("handles the edges of the short path: 64 and 65 ASCII units, one non-ASCII unit last", () => {
    for (const text of [
      "",
      "a".repeat(64),
      "a".repeat(65),
      `${"a".repeat(63)}é`,
      `${"a".repeat(63)}\ud83d`,
    ]) {
      const { bytes, end, target } = written(text);
      expect(bytes, text).toBe(Buffer.byteLength(text, "utf8"));
      expect(target.subarray(1, end), text).toEqual(Buffer.from(text, "utf8"));
    }
  });
});
