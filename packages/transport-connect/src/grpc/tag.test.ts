import { BinaryReader, BinaryWriter, WireType } from "@bufbuild/protobuf/wire";
import { describe, expect, it } from "vitest";
import { readTag } from "./tag.js";

/** What `BinaryReader.tag()` makes of `bytes`: [field, wire] or its error's message. */
function theirs(bytes: Uint8Array): [number, number] | string {
  try {
    return new BinaryReader(bytes).tag();
  } catch (error) {
    return (error as Error).message;
  }
}

function ours(bytes: Uint8Array): [number, number] | string {
  try {
    const tag = readTag(new BinaryReader(bytes));
    return [tag >>> 3, tag & 7];
  } catch (error) {
    return (error as Error).message;
  }
}

describe("readTag", () => {
  it("reads and refuses what BinaryReader.tag() reads and refuses", () => {
    const cases: Uint8Array[] = [
      new BinaryWriter().tag(1, WireType.Varint).finish(),
      new BinaryWriter().tag(5, WireType.LengthDelimited).finish(),
      new BinaryWriter().tag(536_870_911, WireType.Bit32).finish(), // the largest field number
      Uint8Array.of(0x00), // field 0
      Uint8Array.of(0x0e), // wire type 6
      Uint8Array.of(0x0f), // wire type 7
      Uint8Array.of(0xff, 0xff, 0xff, 0xff, 0x0f), // 5 bytes that fit 32 bits
      Uint8Array.of(0xff, 0xff, 0xff, 0xff, 0x1f), // 5 bytes past 32 bits
      Uint8Array.of(0x80, 0x80, 0x80, 0x80, 0x80, 0x01), // 6 bytes
      Uint8Array.of(0x80), // truncated
    ];
    for (const bytes of cases) expect(ours(bytes), `${bytes}`).toEqual(theirs(bytes));
  });

  it("leaves the reader after the tag", () => {
    const bytes = new BinaryWriter().tag(2, WireType.Varint).uint32(300).finish();
    const reader = new BinaryReader(bytes);
    readTag(reader);
    expect(reader.uint32()).toBe(300);
  });
});
