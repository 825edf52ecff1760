// A field's tag, read without the `[field, wireType]` pair protobuf-es's
// BinaryReader.tag() allocates per field: the peer codecs read several tags
// per key on every forwarded Get.
import type { BinaryReader } from "@bufbuild/protobuf/wire";

/**
 * Reads the next tag and checks it as `BinaryReader.tag()` does (a varint
 * that fits 32 bits, field number at least 1, wire type at most 5). The
 * field number is `tag >>> 3`, the wire type `tag & 7`.
 *
 * @throws Error "illegal tag: …", as `BinaryReader.tag()`.
 */
export function readTag(reader: BinaryReader): number {
  const start = reader.pos;
  const tag = reader.uint32();
  const bytesRead = reader.pos - start;
  // `buf` is private in BinaryReader's types only; its own tag() reads it so.
  const buf = (reader as unknown as { readonly buf: Uint8Array }).buf;
  if (bytesRead > 5 || (bytesRead === 5 && buf[reader.pos - 1]! > 0x0f)) {
    throw new Error("illegal tag: varint overflows uint32");
  }
  if (tag >>> 3 <= 0 || (tag & 7) > 5) {
    throw new Error(`illegal tag: field no ${tag >>> 3} wire type ${tag & 7}`);
  }
  return tag;
}
