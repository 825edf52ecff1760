// A uint64 varint read as a JavaScript number when it fits one exactly (a
// write stamp's parts always do), without the BigInts protobuf-es's
// BinaryReader.uint64() makes: the peer client reads two per forwarded key.
import type { BinaryReader } from "@bufbuild/protobuf/wire";

/**
 * Reads a uint64 varint: a number when it is at most 2^53 - 1, else the
 * exact bigint `BinaryReader.uint64()` reads (rare: an out-of-range stamp,
 * which the caller refuses, named exactly).
 *
 * @throws Error as `BinaryReader.uint64()` does for a truncated varint.
 */
export function readUint64(reader: BinaryReader): number | bigint {
  const start = reader.pos;
  // `buf` is private in BinaryReader's types only; its own readers use it so.
  const buf = (reader as unknown as { readonly buf: Uint8Array }).buf;
  let value = 0;
  let scale = 1;
  let pos = start;
  // Eight bytes hold 56 bits. Below 2^53 (an eighth byte under 0x10) the sum
  // is exact in a double; a stamp's epoch (Date.now() x 1024, ~2^51) is such
  // an eight-byte varint. Anything longer or larger goes to protobuf-es.
  for (let i = 0; i < 8 && pos < reader.len; i++) {
    const byte = buf[pos++]!;
    if (i === 7 && byte >= 0x10) break;
    value += (byte & 0x7f) * scale;
    if (byte < 0x80) {
      reader.pos = pos;
      return value;
    }
    scale *= 0x80;
  }
  reader.pos = start;
  const exact = BigInt(reader.uint64());
  return exact <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(exact) : exact;
}
