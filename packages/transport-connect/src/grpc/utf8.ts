// UTF-8 sizes and writes of short strings (keys, group names) without a call
// into Node's C++ per string: the peer codecs write one key per forwarded Get
// and per replicated value, and `Buffer.byteLength` plus `buf.write` cost
// more than the key's bytes (docs/benchmarks.md, "The codec's stamps and keys").

/** Longer strings go to Buffer's own UTF-8 code at once. */
const SHORT = 64;

/** The UTF-8 length of `text`. */
export function utf8Length(text: string): number {
  const length = text.length;
  if (length > SHORT) return Buffer.byteLength(text, "utf8");
  for (let i = 0; i < length; i++) {
    if (text.charCodeAt(i) >= 0x80) return Buffer.byteLength(text, "utf8");
  }
  return length;
}

/**
 * Writes `text`, `bytes` long in UTF-8 (its {@link utf8Length}), at `offset`
 * of `target`; returns the offset after it. A string is ASCII exactly when
 * its UTF-8 length equals its UTF-16 length (any other code unit takes more
 * bytes than units), and is then copied code by code.
 */
export function writeUtf8(target: Buffer, offset: number, text: string, bytes: number): number {
  if (bytes !== text.length || bytes > SHORT)
    return offset + target.write(text, offset, bytes, "utf8");
  for (let i = 0; i < bytes; i++) target[offset + i] = text.charCodeAt(i);
  return offset + bytes;
}
