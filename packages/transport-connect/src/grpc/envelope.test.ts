// The envelope encoder and the incremental reader: messages split over
// chunks, several in one chunk, the size limit read from the header, clear().
import { Code, ConnectError } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import {
  ENVELOPE_HEADER_BYTES,
  EnvelopeReader,
  encodeEnvelope,
  envelope,
  FLAG_COMPRESSED,
} from "./envelope.js";

/** Feeds `chunks` to `reader`, returning every message as [flags, text]. */
function read(reader: EnvelopeReader, chunks: Buffer[]): [number, string][] {
  const out: [number, string][] = [];
  for (const chunk of chunks) {
    reader.push(chunk, (flags, message) => out.push([flags, message.toString()]));
  }
  return out;
}

/** `bytes` cut at `cuts` (offsets). */
function cut(bytes: Buffer, ...cuts: number[]): Buffer[] {
  const pieces: Buffer[] = [];
  let at = 0;
  for (const end of [...cuts, bytes.byteLength]) {
    pieces.push(bytes.subarray(at, end));
    at = end;
  }
  return pieces;
}

const text = (s: string) => Buffer.from(s);

describe("encoding", () => {
  it("encodeEnvelope: flags 0, the 4-byte big-endian length, then the message", () => {
    const frame = encodeEnvelope(text("hello"));
    expect([...frame.subarray(0, ENVELOPE_HEADER_BYTES)]).toEqual([0, 0, 0, 0, 5]);
    expect(frame.subarray(ENVELOPE_HEADER_BYTES).toString()).toBe("hello");
    expect(encodeEnvelope(new Uint8Array(0)).equals(Buffer.from([0, 0, 0, 0, 0]))).toBe(true);
    expect(encodeEnvelope(Buffer.alloc(70_000)).readUInt32BE(1)).toBe(70_000);
  });

  it("envelope(length, room) declares `length` and leaves `room` bytes to fill", () => {
    const frame = envelope(1_000, 3);
    expect(frame.byteLength).toBe(ENVELOPE_HEADER_BYTES + 3);
    expect(frame[0]).toBe(0);
    expect(frame.readUInt32BE(1)).toBe(1_000);
    expect(envelope(7).byteLength).toBe(ENVELOPE_HEADER_BYTES + 7);
  });
});

describe("EnvelopeReader", () => {
  const one = encodeEnvelope(text("first message"));
  const two = encodeEnvelope(text("second"));
  const empty = encodeEnvelope(new Uint8Array(0));

  it("reads a message in one chunk in place, without copying it", () => {
    const reader = new EnvelopeReader(1_024);
    const seen: Buffer[] = [];
    reader.push(one, (_, message) => seen.push(message));
    expect(seen).toHaveLength(1);
    expect(seen[0]!.buffer).toBe(one.buffer);
    expect(seen[0]!.byteOffset).toBe(one.byteOffset + ENVELOPE_HEADER_BYTES);
    expect(reader.count).toBe(1);
    expect(reader.pendingBytes).toBe(0);
  });

  it("joins a message split over chunks at every possible cut, header included", () => {
    for (let at = 1; at < one.byteLength; at++) {
      const reader = new EnvelopeReader(1_024);
      expect(read(reader, cut(one, at))).toEqual([[0, "first message"]]);
      expect(reader.pendingBytes).toBe(0);
    }
    // One byte at a time.
    const reader = new EnvelopeReader(1_024);
    const bytes = Array.from({ length: one.byteLength }, (_, i) => one.subarray(i, i + 1));
    expect(read(reader, bytes)).toEqual([[0, "first message"]]);
  });

  it("reads several messages in one chunk, in order, and the rest of a split one", () => {
    const all = Buffer.concat([one, empty, two, one]);
    expect(read(new EnvelopeReader(1_024), [all])).toEqual([
      [0, "first message"],
      [0, ""],
      [0, "second"],
      [0, "first message"],
    ]);
    for (let at = 1; at < all.byteLength; at++) {
      const reader = new EnvelopeReader(1_024);
      const messages = read(reader, cut(all, at));
      expect(messages.map(([, m]) => m)).toEqual(["first message", "", "second", "first message"]);
      expect(reader.count).toBe(4);
    }
  });

  it("hands out the flags byte as sent", () => {
    const compressed = Buffer.from(encodeEnvelope(text("z")));
    compressed[0] = FLAG_COMPRESSED;
    expect(read(new EnvelopeReader(1_024), [compressed, two])).toEqual([
      [FLAG_COMPRESSED, "z"],
      [0, "second"],
    ]);
  });

  it("counts the bytes of an envelope that has not arrived whole", () => {
    const reader = new EnvelopeReader(1_024);
    expect(read(reader, [one.subarray(0, 3)])).toEqual([]);
    expect(reader.pendingBytes).toBe(3);
    expect(read(reader, [one.subarray(3, 9)])).toEqual([]);
    expect(reader.pendingBytes).toBe(9);
    expect(read(reader, [one.subarray(9)])).toEqual([[0, "first message"]]);
    expect(reader.pendingBytes).toBe(0);
  });

  it("a message of exactly maxBytes is read; one byte more is refused from its header, before the body", () => {
    const limit = 16;
    const fits = encodeEnvelope(Buffer.alloc(limit, 0x61));
    expect(read(new EnvelopeReader(limit), [fits])).toEqual([[0, "a".repeat(limit)]]);
    const over = envelope(limit + 1, 0); // the header alone
    for (const chunks of [[over], cut(over, 2), cut(over, 4)]) {
      const reader = new EnvelopeReader(limit);
      let error: unknown;
      try {
        read(reader, chunks);
      } catch (e) {
        error = e;
      }
      expect(error).toBeInstanceOf(ConnectError);
      expect((error as ConnectError).code).toBe(Code.ResourceExhausted);
      expect((error as ConnectError).rawMessage).toBe(
        `message size ${limit + 1} is larger than configured readMaxBytes ${limit}`,
      );
    }
    // After a whole message in the same chunk, the next header is checked as well.
    const reader = new EnvelopeReader(limit);
    const seen: string[] = [];
    expect(() =>
      reader.push(Buffer.concat([fits, over]), (_, m) => seen.push(m.toString())),
    ).toThrow(ConnectError);
    expect(seen).toEqual(["a".repeat(limit)]);
  });

  it("clear() during a message stops reading the chunk and keeps nothing", () => {
    const reader = new EnvelopeReader(1_024);
    const seen: string[] = [];
    reader.push(Buffer.concat([one, two, one.subarray(0, 4)]), (_, message) => {
      seen.push(message.toString());
      reader.clear();
    });
    expect(seen).toEqual(["first message"]);
    expect(reader.pendingBytes).toBe(0);
    // The next chunk starts a new envelope.
    expect(read(reader, [two])).toEqual([[0, "second"]]);
  });

  it("clear() between chunks drops a partial envelope", () => {
    const reader = new EnvelopeReader(1_024);
    expect(read(reader, [one.subarray(0, 8)])).toEqual([]);
    reader.clear();
    expect(reader.pendingBytes).toBe(0);
    expect(read(reader, [two])).toEqual([[0, "second"]]);
  });

  it("pushRange hands out each message as a range of a buffer, with `this` bound to the target", () => {
    const reader = new EnvelopeReader(1_024);
    const all = Buffer.concat([one, two]);
    const sink = { seen: [] as [string, boolean][] };
    reader.pushRange(
      all,
      function (this: typeof sink, _flags, bytes, start, end) {
        this.seen.push([bytes.toString("utf8", start, end), bytes === all]);
      },
      sink,
    );
    // A message split over chunks comes from the buffer they were joined into.
    for (const chunk of cut(one, 7)) {
      reader.pushRange(
        chunk,
        function (this: typeof sink, _flags, bytes, start, end) {
          this.seen.push([bytes.toString("utf8", start, end), bytes === all]);
        },
        sink,
      );
    }
    expect(sink.seen).toEqual([
      ["first message", true],
      ["second", true],
      ["first message", false],
    ]);
  });

  it("an empty chunk changes nothing", () => {
    const reader = new EnvelopeReader(1_024);
    expect(
      read(reader, [Buffer.alloc(0), one.subarray(0, 2), Buffer.alloc(0), one.subarray(2)]),
    ).toEqual([[0, "first message"]]);
  });
});
