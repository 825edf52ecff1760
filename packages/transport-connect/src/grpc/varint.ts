// Protobuf's base-128 varint, as the hand-written codecs (get-codec.ts,
// peer-codec.ts) size and write it: for integers 0 ≤ value ≤ 2^53.

/** Bytes of `value` as a varint. */
export function varintSize(value: number): number {
  let size = 1;
  while (value >= 0x80) {
    value = Math.floor(value / 0x80);
    size++;
  }
  return size;
}

/** Writes `value` as a varint at `offset` of `target`; returns the offset after it. */
export function writeVarint(target: Uint8Array, offset: number, value: number): number {
  while (value >= 0x80) {
    // Arithmetic, not bitwise: bitwise operators would cut values past 2^32.
    target[offset++] = (value % 0x80) | 0x80;
    value = Math.floor(value / 0x80);
  }
  target[offset++] = value;
  return offset;
}
