import { describe, expect, it } from "vitest";
import { ByteView } from "./byteview.js";

describe("ByteView.adoptRange", () => {
  const page = new Uint8Array([0, 0, 104, 105, 33, 0, 0]); // "hi!" at 2..5

  it("is the range only: length, text, bytes, copyTo, unwrap", () => {
    const view = ByteView.adoptRange(page, 2, 3);
    expect(view.length).toBe(3);
    expect(view.toString()).toBe("hi!");
    expect([...view.bytes()]).toEqual([104, 105, 33]);
    const target = new Uint8Array(5);
    expect(view.copyTo(target, 1)).toBe(3);
    expect([...target]).toEqual([0, 104, 105, 33, 0]);
    const raw = ByteView.unwrap(view);
    expect(raw.byteOffset).toBe(2);
    expect(raw.byteLength).toBe(3);
    expect(raw.buffer).toBe(page.buffer); // no copy
    expect(ByteView.unwrap(view)).toBe(raw); // made once
  });

  it("bytes() is a copy the caller may change", () => {
    const view = ByteView.adoptRange(page, 2, 3);
    const copy = view.bytes();
    copy[0] = 0;
    expect(view.toString()).toBe("hi!");
    expect(page[2]).toBe(104);
  });

  it("compares by bytes with ranges, whole views, arrays and strings", () => {
    const range = ByteView.adoptRange(page, 2, 3);
    expect(range.equals(ByteView.from("hi!"))).toBe(true);
    expect(ByteView.from("hi!").equals(range)).toBe(true);
    expect(range.equals(ByteView.adoptRange(new Uint8Array([9, 104, 105, 33]), 1, 3))).toBe(true);
    expect(range.equals(new Uint8Array([104, 105, 33]))).toBe(true);
    expect(range.equals("hi!")).toBe(true);
    expect(range.equals("hi")).toBe(false);
    expect(range.equals(ByteView.adoptRange(page, 1, 3))).toBe(false);
    expect(ByteView.adoptRange(page, 0, 0).equals("")).toBe(true);
  });
});

describe("ByteView over a Buffer", () => {
  it("from() and bytes() copy even though Buffer#slice would share memory", () => {
    const buffer = Buffer.from("abc");
    const view = ByteView.from(buffer);
    buffer[0] = 0x7a;
    expect(view.toString()).toBe("abc");
    const adopted = ByteView.adopt(Buffer.from("xyz"));
    const copy = adopted.bytes();
    copy[0] = 0x41;
    expect(adopted.toString()).toBe("xyz");
  });
});

describe("ByteView.copyTo of a range", () => {
  it("copies small and large ranges and refuses a target that is too small", () => {
    const page = new Uint8Array(2_000).map((_, i) => i & 0xff);
    for (const length of [0, 1, 64, 65, 100, 1_500]) {
      const view = ByteView.adoptRange(page, 300, length);
      const target = new Uint8Array(length + 4).fill(0xee);
      expect(view.copyTo(target, 2)).toBe(length);
      expect([...target.subarray(2, 2 + length)]).toEqual([...page.subarray(300, 300 + length)]);
      expect([target[0], target[1], target[length + 2], target[length + 3]]).toEqual([
        0xee, 0xee, 0xee, 0xee,
      ]);
      if (length > 0) expect(() => view.copyTo(new Uint8Array(length - 1))).toThrow(RangeError);
    }
  });
});
