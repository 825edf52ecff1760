// The Exchange stream's own fields (peer.proto: ExchangeRequest,
// ExchangeResponse, ExchangeEnd) around the FetchMany and StoreMany messages
// it carries: the call id, which method, and a call's end. The carried
// messages are written by peer-codec.ts into the same frame (an
// {@link ExchangeSlot}), so a call on the stream costs no extra copy.
import { BinaryReader, WireType } from "@bufbuild/protobuf/wire";
import { Code, ConnectError } from "@connectrpc/connect";
import { ENVELOPE_HEADER_BYTES, envelope } from "./envelope.js";
import { readTag } from "./tag.js";
import { varintSize, writeVarint } from "./varint.js";

/** ExchangeRequest.fetch_many and ExchangeResponse.fetch_many. */
export const EXCHANGE_FETCH_MANY = 2;
/** ExchangeRequest.store_many and ExchangeResponse.store_many. */
export const EXCHANGE_STORE_MANY = 3;
/** ExchangeRequest.cancel. */
export const EXCHANGE_CANCEL = 4;
const END_FIELD = 4;
const LEN = 2;

/** Largest call id (uint32); ids run from 1. */
export const MAX_EXCHANGE_ID = 0xffff_ffff;

/** How one call of an Exchange ended: a gRPC status code and message. */
export interface ExchangeEndFields {
  readonly code: number;
  readonly message: string;
}

/** The call's end with status OK. */
export const EXCHANGE_OK: ExchangeEndFields = Object.freeze({ code: 0, message: "" });

/**
 * Where an encoder of peer-codec.ts puts its message: as field `field` of an
 * Exchange message of call `id`, followed by `end` when the message ends the
 * call (responses only).
 */
export interface ExchangeSlot {
  readonly id: number;
  readonly field: number;
  readonly end?: ExchangeEndFields | undefined;
}

/** Bytes an Exchange message adds around a carried message of `inner` bytes. */
export function slotSize(slot: ExchangeSlot, inner: number): number {
  return (
    1 +
    varintSize(slot.id) +
    1 +
    varintSize(inner) +
    (slot.end === undefined ? 0 : endSize(slot.end))
  );
}

/**
 * A frame (envelope) for an Exchange message carrying `inner` bytes in
 * `slot`, and the offset at which the carried message's bytes go. The caller
 * writes exactly `inner` bytes there, then {@link writeSlotEnd}.
 */
export function slotFrame(slot: ExchangeSlot, inner: number): [Buffer, number] {
  const frame = envelope(inner + slotSize(slot, inner));
  let at = ENVELOPE_HEADER_BYTES;
  frame[at++] = 1 << 3; // id, varint
  at = writeVarint(frame, at, slot.id);
  frame[at++] = (slot.field << 3) | LEN;
  at = writeVarint(frame, at, inner);
  return [frame, at];
}

/** Writes the slot's `end` (if any) at `at`, after the carried message. */
export function writeSlotEnd(frame: Buffer, at: number, slot: ExchangeSlot): number {
  return slot.end === undefined ? at : writeEnd(frame, at, slot.end);
}

/** An `ExchangeRequest { id, cancel {} }` in an envelope: the caller gave up on call `id`. */
export function encodeExchangeCancel(id: number): Buffer {
  const frame = envelope(1 + varintSize(id) + 2);
  let at = ENVELOPE_HEADER_BYTES;
  frame[at++] = 1 << 3;
  at = writeVarint(frame, at, id);
  frame[at++] = (EXCHANGE_CANCEL << 3) | LEN;
  frame[at] = 0;
  return frame;
}

/** An `ExchangeResponse { id, end }` with no results: the end of a call. */
export function encodeExchangeEnd(id: number, end: ExchangeEndFields): Buffer {
  const frame = envelope(1 + varintSize(id) + endSize(end));
  let at = ENVELOPE_HEADER_BYTES;
  frame[at++] = 1 << 3;
  at = writeVarint(frame, at, id);
  writeEnd(frame, at, end);
  return frame;
}

function endBodySize(end: ExchangeEndFields): number {
  const text = Buffer.byteLength(end.message, "utf8");
  return (
    (end.code === 0 ? 0 : 1 + varintSize(end.code)) + (text === 0 ? 0 : 1 + varintSize(text) + text)
  );
}

function endSize(end: ExchangeEndFields): number {
  const body = endBodySize(end);
  return 1 + varintSize(body) + body;
}

function writeEnd(frame: Buffer, at: number, end: ExchangeEndFields): number {
  frame[at++] = (END_FIELD << 3) | LEN;
  at = writeVarint(frame, at, endBodySize(end));
  if (end.code !== 0) {
    frame[at++] = 1 << 3;
    at = writeVarint(frame, at, end.code);
  }
  const text = Buffer.byteLength(end.message, "utf8");
  if (text > 0) {
    frame[at++] = (2 << 3) | LEN;
    at = writeVarint(frame, at, text);
    at += frame.write(end.message, at, text, "utf8");
  }
  return at;
}

/** One ExchangeRequest as the server reads it: `body` is a view of the carried request. */
export interface ExchangeRequestRead {
  readonly id: number;
  /** {@link EXCHANGE_FETCH_MANY}, {@link EXCHANGE_STORE_MANY} or {@link EXCHANGE_CANCEL}. */
  readonly field: number;
  readonly body: Uint8Array;
}

/**
 * Reads an ExchangeRequest. Unknown fields are skipped, as protobuf skips
 * them.
 *
 * @throws ConnectError INVALID_ARGUMENT for bytes that are not one call: not
 *   protobuf, no id (0), no method, or more than one (a conforming encoder
 *   writes a oneof once).
 */
export function readExchangeRequest(message: Uint8Array): ExchangeRequestRead {
  try {
    const reader = new BinaryReader(message);
    let id = 0;
    let field = 0;
    let body: Uint8Array | undefined;
    while (reader.pos < reader.len) {
      const numberTag = readTag(reader);
      const number = numberTag >>> 3;
      const wire = numberTag & 7;
      if (number === 1 && wire === WireType.Varint) id = reader.uint32();
      else if (
        (number === EXCHANGE_FETCH_MANY ||
          number === EXCHANGE_STORE_MANY ||
          number === EXCHANGE_CANCEL) &&
        wire === WireType.LengthDelimited
      ) {
        if (body !== undefined) throw new Error("more than one call in one ExchangeRequest");
        field = number;
        body = reader.bytes();
      } else reader.skip(wire, number);
    }
    if (id === 0) throw new Error("ExchangeRequest without an id");
    if (body === undefined) throw new Error(`ExchangeRequest ${id} without a call`);
    return { id, field, body };
  } catch (error) {
    throw new ConnectError(
      `bad ExchangeRequest: ${error instanceof Error ? error.message : String(error)}`,
      Code.InvalidArgument,
    );
  }
}

/** One ExchangeResponse as the caller reads it; `body` is a view of the message. */
export interface ExchangeResponseRead {
  id: number;
  /** 0 (no body), {@link EXCHANGE_FETCH_MANY} or {@link EXCHANGE_STORE_MANY}. */
  field: number;
  body: Uint8Array | undefined;
  end: ExchangeEndFields | undefined;
}

/**
 * Reads an ExchangeResponse into `into` (one object per stream, reused).
 *
 * @throws Error for bytes that are not an ExchangeResponse.
 */
export function readExchangeResponse(
  message: Uint8Array,
  into: ExchangeResponseRead,
): ExchangeResponseRead {
  const reader = new BinaryReader(message);
  into.id = 0;
  into.field = 0;
  into.body = undefined;
  into.end = undefined;
  while (reader.pos < reader.len) {
    const numberTag = readTag(reader);
    const number = numberTag >>> 3;
    const wire = numberTag & 7;
    if (number === 1 && wire === WireType.Varint) into.id = reader.uint32();
    else if (
      (number === EXCHANGE_FETCH_MANY || number === EXCHANGE_STORE_MANY) &&
      wire === WireType.LengthDelimited
    ) {
      into.field = number;
      into.body = reader.bytes();
    } else if (number === END_FIELD && wire === WireType.LengthDelimited) {
      into.end = readEnd(reader);
    } else reader.skip(wire, number);
  }
  return into;
}

function readEnd(reader: BinaryReader): ExchangeEndFields {
  const length = reader.uint32();
  const stop = reader.pos + length;
  if (stop > reader.len) throw new Error("premature EOF");
  let code = 0;
  let message = "";
  while (reader.pos < stop) {
    const numberTag = readTag(reader);
    const number = numberTag >>> 3;
    const wire = numberTag & 7;
    if (number === 1 && wire === WireType.Varint) code = reader.uint32();
    else if (number === 2 && wire === WireType.LengthDelimited) message = reader.string(true);
    else reader.skip(wire, number);
  }
  if (reader.pos !== stop) throw new Error("premature EOF");
  if (code === 0 && message === "") return EXCHANGE_OK;
  return { code, message };
}
