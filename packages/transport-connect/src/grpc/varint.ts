// Protobuf's base-128 varint, as the hand-written codecs (get-codec.ts,
// peer-codec.ts) size and write it: for integers 0 ≤ value ≤ 2^53.
//
// Values past 2^31 (a stamp's epoch is one) are split into two 32-bit halves
// and shifted bitwise: `%` and `/` on a double that is no small integer cost
// a floating-point remainder per byte, the most of a stamp's encoding.

const TWO_32 = 0x1_0000_0000;

/** Bytes of `value` as a varint. */
export function varintSize(value: number): number {
  if (value < 0x80) return 1;
  if (value < 0x4000) return 2;
  if (value < 0x20_0000) return 3;
  if (value < 0x1000_0000) return 4;
  if (value < 0x8_0000_0000) return 5;
  // 35 bits or more: 7 bits per byte of the high half's bit length past 32.
  const high = Math.floor(value / TWO_32);
  return Math.ceil((64 - Math.clz32(high)) / 7);
}

/** Writes `value` as a varint at `offset` of `target`; returns the offset after it. */
export function writeVarint(target: Uint8Array, offset: number, value: number): number {
  if (value < 0x8000_0000) {
    // A small integer: bitwise operators are exact.
    while (value > 0x7f) {
      target[offset++] = (value & 0x7f) | 0x80;
      value >>>= 7;
    }
    target[offset++] = value;
    return offset;
  }
  // `>>> 0` keeps the low 32 bits exactly for any integer up to 2^53.
  let low = value >>> 0;
  let high = (value - low) / TWO_32;
  while (high > 0 || low > 0x7f) {
    target[offset++] = (low & 0x7f) | 0x80;
    low = ((low >>> 7) | (high << 25)) >>> 0;
    high >>>= 7;
  }
  target[offset++] = low;
  return offset;
}
