// The Get fast path's hand-written protobuf: GetResponse written byte for
// byte as `toBinary` writes it, and the common shape of GetRequest read
// without `fromBinary` (which stays the fallback for every other shape).
import type { ByteView } from "@distcache/core";
import { ENVELOPE_HEADER_BYTES, envelope } from "../../grpc/envelope.js";
import { varintSize, writeVarint } from "../../grpc/varint.js";

/** The fields of a `GetRequest` the fast path reads. */
export interface GetFields {
  readonly group: string;
  readonly key: string;
}

/** The end of a `found: true` GetResponse: field 2, true. */
export const FOUND_TAIL = Buffer.from([0x10, 0x01]);

/**
 * A `GetRequest` in its common shape, decoded by hand: only fields 1 and 2,
 * each with a length of at most two varint bytes, only ASCII. For such bytes
 * `fromBinary` gives exactly these strings (a later field replaces an earlier
 * one, and ASCII is its own UTF-8). Anything else — other fields, other wire
 * types, non-ASCII text, truncation — returns `undefined`, and the caller
 * decodes with `fromBinary`, so the answer is always `fromBinary`'s.
 */
export function decodeSimpleGetRequest(
  bytes: Buffer,
  start: number,
  end: number,
): GetFields | undefined {
  let group = "";
  let key = "";
  let at = start;
  while (at < end) {
    const tag = bytes[at++]!;
    if ((tag !== 0x0a && tag !== 0x12) || at >= end) return undefined;
    let length = bytes[at++]!;
    if (length >= 0x80) {
      if (at >= end) return undefined;
      const high = bytes[at++]!;
      if (high >= 0x80) return undefined;
      length = (length & 0x7f) | (high << 7);
    }
    const stop = at + length;
    if (stop > end) return undefined;
    for (let i = at; i < stop; i++) if (bytes[i]! >= 0x80) return undefined;
    // ASCII decodes the same as latin1 and as UTF-8.
    const text = bytes.toString("latin1", at, stop);
    if (tag === 0x0a) group = text;
    else key = text;
    at = stop;
  }
  return { group, key };
}

/**
 * `GetResponse { data, found: true }` in an envelope, byte for byte what
 * `toBinary(GetResponseSchema, …)` writes: field 1 (omitted when empty), then
 * field 2.
 */
export function encodeFound(view: ByteView): Buffer {
  const size = view.length;
  const length = (size === 0 ? 0 : 1 + varintSize(size) + size) + FOUND_TAIL.length;
  const frame = envelope(length);
  let offset = ENVELOPE_HEADER_BYTES;
  if (size > 0) {
    frame[offset++] = 0x0a; // field 1, length-delimited
    offset = writeVarint(frame, offset, size);
    offset += view.copyTo(frame, offset);
  }
  frame[offset++] = 0x10; // field 2 (found), varint
  frame[offset] = 0x01; // true
  return frame;
}

/**
 * The envelope header and the start of `GetResponse { data, found: true }`
 * for a `size`-byte value that is written after it, followed by
 * {@link FOUND_TAIL}: the value itself is never copied.
 */
export function encodeFoundHead(size: number): Buffer {
  const head = 1 + varintSize(size);
  const frame = envelope(head + size + FOUND_TAIL.length, head);
  frame[ENVELOPE_HEADER_BYTES] = 0x0a; // field 1, length-delimited
  writeVarint(frame, ENVELOPE_HEADER_BYTES + 1, size);
  return frame;
}

/** `GetResponse { found: false, err }` in an envelope (`err` omitted when empty, as proto3 does). */
export function encodeNotFound(err: string): Buffer {
  const size = Buffer.byteLength(err, "utf8");
  const length = size === 0 ? 0 : 1 + varintSize(size) + size;
  const frame = envelope(length);
  if (size > 0) {
    frame[ENVELOPE_HEADER_BYTES] = 0x1a; // field 3, length-delimited
    const offset = writeVarint(frame, ENVELOPE_HEADER_BYTES + 1, size);
    frame.write(err, offset, "utf8");
  }
  return frame;
}
