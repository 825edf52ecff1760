// gRPC's length-prefixed message framing (the 5-byte envelope): encoding a
// frame, and one incremental reader that every hand-written gRPC path
// (client streams and server fast paths) uses to split a byte stream into messages.
import { Code, ConnectError } from "@connectrpc/connect";

/** Bytes of the envelope header: 1 flags byte, then a 4-byte big-endian length. */
export const ENVELOPE_HEADER_BYTES = 5;
/** Envelope flag: the message is compressed with the call's `grpc-encoding`. */
export const FLAG_COMPRESSED = 0b1;

/**
 * A frame for a `length`-byte uncompressed message: the 5-byte header, then
 * `room` bytes (default: all of `length`) for the caller to fill from offset 5.
 * `room < length` lets a caller write the rest of the message separately.
 */
export function envelope(length: number, room = length): Buffer {
  const frame = Buffer.allocUnsafe(ENVELOPE_HEADER_BYTES + room);
  frame[0] = 0;
  frame.writeUInt32BE(length, 1);
  return frame;
}

/** `message` in an uncompressed envelope (one copy). */
export function encodeEnvelope(message: Uint8Array): Buffer {
  const frame = envelope(message.byteLength);
  frame.set(message, ENVELOPE_HEADER_BYTES);
  return frame;
}

/** What {@link EnvelopeReader.push} calls per complete message. */
export type OnEnvelope = (flags: number, message: Buffer) => void;

/**
 * What {@link EnvelopeReader.pushRange} calls per complete message: the
 * message is `bytes[start, end)`, and `this` is the `target` given to
 * `pushRange`, so a per-call object passes one of its methods and itself, and
 * neither a closure nor a view of the bytes is made per message.
 */
export type OnEnvelopeRange<T> = (
  this: T,
  flags: number,
  bytes: Buffer,
  start: number,
  end: number,
) => void;

/**
 * Splits a stream of chunks into enveloped messages. A chunk holding whole
 * messages is read in place (no copy); a message split over chunks is joined
 * once, when its last byte arrives. A declared length over `maxBytes` throws
 * RESOURCE_EXHAUSTED as soon as its header is in, before the body is buffered.
 *
 * A message handed out is (a view of) a pushed chunk, or of a buffer the
 * reader joined from several; the reader never writes to either, so it stays
 * valid as long as the caller does not reuse the chunks it pushed
 * (`node:http2` hands out a fresh buffer per chunk).
 */
/** The shared empty list: a reader that never holds a partial envelope allocates none. */
const NO_CHUNKS = Object.freeze([]) as unknown as Buffer[];

export class EnvelopeReader {
  /** Bytes of an incomplete envelope, waiting for the rest (none allocated until one is). */
  private chunks: Buffer[] = NO_CHUNKS;
  private buffered = 0;
  /** Declared length of the incomplete envelope's message, once its header is in; -1 before. */
  private length = -1;
  /** Set by `clear` during `onMessage`: stop reading this chunk. */
  private cleared = false;
  #count = 0;

  /** Complete messages read so far. */
  get count(): number {
    return this.#count;
  }

  constructor(private readonly maxBytes: number) {}

  /** Bytes held of an envelope that has not arrived whole (0 between messages). */
  get pendingBytes(): number {
    return this.buffered;
  }

  /**
   * Reads `chunk`, calling `onMessage` with a view of each message it
   * completes. Stops early (keeping nothing) when `onMessage` calls
   * {@link EnvelopeReader.clear}.
   *
   * @throws ConnectError RESOURCE_EXHAUSTED for a message over `maxBytes`.
   */
  push(chunk: Buffer, onMessage: OnEnvelope): void {
    this.pushRange(chunk, viewOf, onMessage);
  }

  /**
   * As {@link EnvelopeReader.push}, handing each message out as a range of
   * a buffer (no view is allocated), with `this` set to `target`.
   *
   * @throws ConnectError RESOURCE_EXHAUSTED for a message over `maxBytes`.
   */
  pushRange<T>(chunk: Buffer, onMessage: OnEnvelopeRange<T>, target: T): void {
    this.cleared = false;
    let data = chunk;
    if (this.buffered > 0) {
      this.chunks.push(chunk);
      this.buffered += chunk.byteLength;
      if (!this.readHeader()) return;
      if (this.buffered < ENVELOPE_HEADER_BYTES + this.length) return;
      data = Buffer.concat(this.chunks, this.buffered);
      this.chunks = NO_CHUNKS;
      this.buffered = 0;
      this.length = -1;
    }
    let at = 0;
    while (data.byteLength - at >= ENVELOPE_HEADER_BYTES) {
      const length = data.readUInt32BE(at + 1);
      this.check(length);
      const end = at + ENVELOPE_HEADER_BYTES + length;
      if (end > data.byteLength) break;
      this.#count++;
      onMessage.call(target, data[at]!, data, at + ENVELOPE_HEADER_BYTES, end);
      if (this.cleared) {
        this.cleared = false;
        return;
      }
      at = end;
    }
    if (at < data.byteLength) {
      const rest = data.subarray(at);
      this.chunks = [rest];
      this.buffered = rest.byteLength;
      this.readHeader();
    }
  }

  /** Drops what is buffered (the call ended); a `push` under way stops after the current message. */
  clear(): void {
    if (this.buffered > 0) {
      this.chunks = NO_CHUNKS;
      this.buffered = 0;
    }
    this.length = -1;
    this.cleared = true;
  }

  /** Reads the header of the buffered envelope once 5 bytes are in; whether it is in. */
  private readHeader(): boolean {
    if (this.length >= 0) return true;
    if (this.buffered < ENVELOPE_HEADER_BYTES) return false;
    if (this.chunks[0]!.byteLength < ENVELOPE_HEADER_BYTES) {
      this.chunks = [Buffer.concat(this.chunks, this.buffered)];
    }
    this.length = this.chunks[0]!.readUInt32BE(1);
    this.check(this.length);
    return true;
  }

  private check(length: number): void {
    if (length > this.maxBytes) {
      throw new ConnectError(
        `message size ${length} is larger than configured readMaxBytes ${this.maxBytes}`,
        Code.ResourceExhausted,
      );
    }
  }
}

/** Hands a message to the {@link OnEnvelope} that `push` was given, as a view. */
function viewOf(this: OnEnvelope, flags: number, bytes: Buffer, start: number, end: number): void {
  this(flags, bytes.subarray(start, end));
}
