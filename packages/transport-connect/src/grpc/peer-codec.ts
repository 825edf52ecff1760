// The PeerService messages of the peer hot paths, written and read without
// protobuf-es reflection: FetchMany's request and response, StoreMany's
// request and response. Encoders write, straight into a gRPC envelope, byte
// for byte what `toBinary` writes (peer-codec.test.ts checks it); decoders
// read with protobuf-es's own BinaryReader, as `fromBinary` reads, and the
// request decoders hand anything but the canonical shape to `fromBinary`.
import { fromBinary, toBinary } from "@bufbuild/protobuf";
import { BinaryReader, WireType } from "@bufbuild/protobuf/wire";
import type { Stamp } from "@distcache/core";
import {
  type FetchManyRequest,
  FetchManyRequestSchema,
  type FetchOutcome,
  type Sender,
  SenderSchema,
  type StoreManyRequest,
  StoreManyRequestSchema,
} from "../gen/distcache/peer/v1/peer_pb.js";
import { ENVELOPE_HEADER_BYTES, envelope } from "./envelope.js";
import { type ExchangeSlot, slotFrame, writeSlotEnd } from "./exchange-codec.js";
import { readTag } from "./tag.js";
import { readUint64 } from "./uint64.js";
import { utf8Length, writeUtf8 } from "./utf8.js";
import { varintSize, writeVarint } from "./varint.js";

// Why by hand: `create`, `toBinary` and `fromBinary` walk each message's
// descriptor field by field and make message objects, and the encoder copied
// a pushed value twice (into the writer, then into the envelope); on a cold
// key that was 4–5% of the cluster's CPU (docs/benchmarks.md, "Costs (issue 14)").

// Tags: (field number << 3) | wire type; every field here is below 16, so one byte.
const LEN = 2; // wire type: length-delimited
const tag = (field: number, wire: number): number => (field << 3) | wire;

/** One key's result of a FetchMany, as the owner queues it (stamps as core numbers). */
export interface FetchResultFields {
  readonly index: number;
  readonly outcome: FetchOutcome;
  /** Absent or empty: not written (proto3). */
  readonly data?: Uint8Array | undefined;
  /** Absent or "": not written. */
  readonly error?: string | undefined;
  readonly stamp?: Stamp | undefined;
}

/** One replication push of a StoreMany. */
export interface StoreItemFields {
  readonly key: string;
  readonly value: Uint8Array;
  readonly stamp: Stamp | undefined;
}

/**
 * The `sender` field (field 1, as every peer request has it) of one sender,
 * encoded once and reused while the sender stays the same (its address and
 * membership version change only with the membership).
 */
export class SenderField {
  private address = "";
  private version = -1n;
  private bytes: Uint8Array = new Uint8Array(0);

  /** Field 1 holding `sender`, as `toBinary` writes it inside a request. */
  of(sender: Sender): Uint8Array {
    if (sender.address !== this.address || sender.membershipVersion !== this.version) {
      const body = toBinary(SenderSchema, sender);
      const field = new Uint8Array(1 + varintSize(body.byteLength) + body.byteLength);
      field[0] = tag(1, LEN);
      const at = writeVarint(field, 1, body.byteLength);
      field.set(body, at);
      this.address = sender.address;
      this.version = sender.membershipVersion;
      this.bytes = field;
    }
    return this.bytes;
  }
}

/**
 * A frame for a message of `length` bytes: alone in its envelope, or in
 * `slot` of an Exchange message; and the offset its bytes start at.
 */
function frameFor(length: number, slot: ExchangeSlot | undefined): [Buffer, number] {
  return slot === undefined ? [envelope(length), ENVELOPE_HEADER_BYTES] : slotFrame(slot, length);
}

/** Ends a frame from {@link frameFor}: the slot's `end`, if any, after the message. */
function endFrame(frame: Buffer, at: number, slot: ExchangeSlot | undefined): Buffer {
  if (slot !== undefined) writeSlotEnd(frame, at, slot);
  return frame;
}

/**
 * `FetchManyRequest { sender, group, keys, cache_only }` in an envelope, or
 * in `slot` of an ExchangeRequest. `sender` is the encoded field from
 * {@link SenderField}.
 */
export function encodeFetchManyRequest(
  sender: Uint8Array,
  group: string,
  keys: readonly string[],
  cacheOnly: boolean,
  slot?: ExchangeSlot,
): Buffer {
  const groupBytes = utf8Length(group);
  const keyBytes = new Array<number>(keys.length);
  let length = sender.byteLength + stringFieldSize(groupBytes) + (cacheOnly ? 2 : 0);
  for (let i = 0; i < keys.length; i++) {
    const size = utf8Length(keys[i]!);
    keyBytes[i] = size;
    length += 1 + varintSize(size) + size; // repeated: every element is written, "" too
  }
  const [frame, start] = frameFor(length, slot);
  frame.set(sender, start);
  let at = start + sender.byteLength;
  at = writeStringField(frame, at, 2, group, groupBytes);
  for (let i = 0; i < keys.length; i++) {
    frame[at++] = tag(3, LEN);
    at = writeVarint(frame, at, keyBytes[i]!);
    at = writeUtf8(frame, at, keys[i]!, keyBytes[i]!);
  }
  if (cacheOnly) {
    frame[at++] = tag(4, 0);
    frame[at++] = 1;
  }
  return endFrame(frame, at, slot);
}

/**
 * `FetchManyResponse { results }` in an envelope, or in `slot` of an
 * ExchangeResponse; values are copied once, into the frame.
 */
export function encodeFetchManyResponse(
  results: readonly FetchResultFields[],
  slot?: ExchangeSlot,
): Buffer {
  const bodies = new Array<number>(results.length);
  const errors = new Array<number>(results.length);
  let length = 0;
  for (let i = 0; i < results.length; i++) {
    const r = results[i]!;
    const errorBytes = r.error === undefined ? 0 : utf8Length(r.error);
    errors[i] = errorBytes;
    const dataBytes = r.data?.byteLength ?? 0;
    const body =
      varintFieldSize(r.index) +
      varintFieldSize(r.outcome) +
      (dataBytes === 0 ? 0 : 1 + varintSize(dataBytes) + dataBytes) +
      stringFieldSize(errorBytes) +
      stampFieldSize(r.stamp);
    bodies[i] = body;
    length += 1 + varintSize(body) + body;
  }
  const [frame, start] = frameFor(length, slot);
  let at = start;
  for (let i = 0; i < results.length; i++) {
    const r = results[i]!;
    frame[at++] = tag(1, LEN);
    at = writeVarint(frame, at, bodies[i]!);
    at = writeVarintField(frame, at, 1, r.index);
    at = writeVarintField(frame, at, 2, r.outcome);
    const data = r.data;
    if (data !== undefined && data.byteLength > 0) {
      frame[at++] = tag(3, LEN);
      at = writeVarint(frame, at, data.byteLength);
      frame.set(data, at);
      at += data.byteLength;
    }
    if (r.error !== undefined) at = writeStringField(frame, at, 4, r.error, errors[i]!);
    at = writeStampField(frame, at, 5, r.stamp);
  }
  return endFrame(frame, at, slot);
}

/**
 * `StoreManyRequest { sender, group, items }` in an envelope, or in `slot` of
 * an ExchangeRequest; each value is copied once, into the frame.
 */
export function encodeStoreManyRequest(
  sender: Uint8Array,
  group: string,
  items: readonly StoreItemFields[],
  slot?: ExchangeSlot,
): Buffer {
  const groupBytes = utf8Length(group);
  const keys = new Array<number>(items.length);
  const bodies = new Array<number>(items.length);
  let length = sender.byteLength + stringFieldSize(groupBytes);
  for (let i = 0; i < items.length; i++) {
    const item = items[i]!;
    const keyBytes = utf8Length(item.key);
    keys[i] = keyBytes;
    const valueBytes = item.value.byteLength;
    const body =
      stringFieldSize(keyBytes) +
      (valueBytes === 0 ? 0 : 1 + varintSize(valueBytes) + valueBytes) +
      stampFieldSize(item.stamp);
    bodies[i] = body;
    length += 1 + varintSize(body) + body;
  }
  const [frame, start] = frameFor(length, slot);
  frame.set(sender, start);
  let at = start + sender.byteLength;
  at = writeStringField(frame, at, 2, group, groupBytes);
  for (let i = 0; i < items.length; i++) {
    const item = items[i]!;
    frame[at++] = tag(3, LEN);
    at = writeVarint(frame, at, bodies[i]!);
    at = writeStringField(frame, at, 1, item.key, keys[i]!);
    const value = item.value;
    if (value.byteLength > 0) {
      frame[at++] = tag(2, LEN);
      at = writeVarint(frame, at, value.byteLength);
      frame.set(value, at);
      at += value.byteLength;
    }
    at = writeStampField(frame, at, 3, item.stamp);
  }
  return endFrame(frame, at, slot);
}

/**
 * `StoreManyResponse { ahead }` in an envelope (no bytes at all without
 * `ahead`), or in `slot` of an ExchangeResponse.
 */
export function encodeStoreManyResponse(ahead: Stamp | undefined, slot?: ExchangeSlot): Buffer {
  const [frame, start] = frameFor(stampFieldSize(ahead), slot);
  return endFrame(frame, writeStampField(frame, start, 1, ahead), slot);
}

/** One `FetchResult` as {@link decodeFetchManyResponse} reads it; `data` is a view of the message. */
export interface DecodedFetchResult {
  index: number;
  outcome: number;
  data: Uint8Array;
  error: string;
  /** The stamp's parts as sent (range-checked by the caller); `undefined` when absent. */
  stamp: ReadStamp | undefined;
}

const NO_BYTES = new Uint8Array(0);

/**
 * Reads a `FetchManyResponse`, calling `onResult` per result in order, as
 * `fromBinary` reads it: unknown fields skipped, a repeated singular field's
 * last value kept, a repeated `stamp` merged field by field, strings checked
 * as UTF-8. `onResult` gets a fresh object per result; its `data` is a view
 * of `message`.
 *
 * @throws Error for bytes that are not a FetchManyResponse (truncated, bad varint or UTF-8).
 */
export function decodeFetchManyResponse(
  message: Uint8Array,
  onResult: (result: DecodedFetchResult) => void,
): void {
  const reader = new BinaryReader(message);
  while (reader.pos < reader.len) {
    const fieldTag = readTag(reader);
    const field = fieldTag >>> 3;
    const wire = fieldTag & 7;
    if (field !== 1) {
      reader.skip(wire, field);
      continue;
    }
    const length = reader.uint32();
    const end = reader.pos + length;
    if (end > reader.len) throw new Error("premature EOF");
    const result: DecodedFetchResult = {
      index: 0,
      outcome: 0,
      data: NO_BYTES,
      error: "",
      stamp: undefined,
    };
    while (reader.pos < end) {
      const fTag = readTag(reader);
      const f = fTag >>> 3;
      const w = fTag & 7;
      switch (f) {
        case 1:
          result.index = reader.uint32();
          break;
        case 2:
          result.outcome = reader.int32();
          break;
        case 3:
          result.data = reader.bytes();
          break;
        case 4:
          result.error = reader.string(true);
          break;
        case 5:
          result.stamp = readStamp(reader, result.stamp);
          break;
        default:
          reader.skip(w, f);
      }
    }
    if (reader.pos !== end) throw new Error("premature EOF");
    onResult(result);
  }
}

/** A stamp's parts as read: numbers, or an exact bigint past 2^53 - 1 (see {@link readUint64}). */
export interface ReadStamp {
  epoch: number | bigint;
  seq: number | bigint;
}

/** A `Stamp` message, merged into `into` (a repeated field merges, as protobuf does). */
function readStamp(reader: BinaryReader, into: ReadStamp | undefined): ReadStamp {
  const stamp = into ?? { epoch: 0, seq: 0 };
  const length = reader.uint32();
  const end = reader.pos + length;
  if (end > reader.len) throw new Error("premature EOF");
  while (reader.pos < end) {
    const fTag = readTag(reader);
    const f = fTag >>> 3;
    const w = fTag & 7;
    if (f === 1) stamp.epoch = readUint64(reader);
    else if (f === 2) stamp.seq = readUint64(reader);
    else reader.skip(w, f);
  }
  if (reader.pos !== end) throw new Error("premature EOF");
  return stamp;
}

/** A request's `sender`, as the server reads it. */
export interface SenderFields {
  readonly address: string;
  readonly membershipVersion: bigint;
}

/** A `FetchManyRequest`, as the server reads it. */
export interface FetchManyRequestFields {
  readonly sender?: SenderFields | undefined;
  readonly group: string;
  readonly keys: readonly string[];
  readonly cacheOnly: boolean;
}

/** One item of a `StoreManyRequest`, as the server reads it; `data` is a view of the message. */
export interface StoreItemRead {
  readonly key: string;
  readonly data: Uint8Array;
  readonly stamp?: Readonly<ReadStamp> | undefined;
}

/** A `StoreManyRequest`, as the server reads it. */
export interface StoreManyRequestFields {
  readonly sender?: SenderFields | undefined;
  readonly group: string;
  readonly items: readonly StoreItemRead[];
}

/** Thrown by the canonical readers for a shape they leave to `fromBinary`. */
class NotCanonical extends Error {}

/**
 * A `FetchManyRequest`: its canonical encoding read by hand, anything else
 * (other wire types for known fields, groups, bad UTF-8, truncation) by
 * `fromBinary`, whose values or error are then the answer.
 *
 * @throws what `fromBinary` throws for bytes that are not a FetchManyRequest.
 */
export function readFetchManyRequest(message: Uint8Array): FetchManyRequestFields {
  try {
    return readFetchManyCanonical(message);
  } catch {
    return fromBinary(FetchManyRequestSchema, message) satisfies FetchManyRequest;
  }
}

/** As {@link readFetchManyRequest}, for a `StoreManyRequest`. */
export function readStoreManyRequest(message: Uint8Array): StoreManyRequestFields {
  try {
    return readStoreManyCanonical(message);
  } catch {
    return fromBinary(StoreManyRequestSchema, message) satisfies StoreManyRequest;
  }
}

function readFetchManyCanonical(message: Uint8Array): FetchManyRequestFields {
  const keys: string[] = [];
  let cacheOnly = false;
  const { sender, group } = readRequestCanonical(message, (reader, field, wire) => {
    if (field === 3) {
      expectWire(wire, WireType.LengthDelimited);
      keys.push(reader.string(true));
    } else if (field === 4) {
      expectWire(wire, WireType.Varint);
      cacheOnly = reader.bool();
    } else return false;
    return true;
  });
  return { sender, group, keys, cacheOnly };
}

function readStoreManyCanonical(message: Uint8Array): StoreManyRequestFields {
  const items: StoreItemRead[] = [];
  const { sender, group } = readRequestCanonical(message, (reader, field, wire) => {
    if (field !== 3) return false;
    expectWire(wire, WireType.LengthDelimited);
    items.push(readStoreItem(reader));
    return true;
  });
  return { sender, group, items };
}

/**
 * The fields every batched peer request shares, `sender` (1) and `group`
 * (2), read in the canonical encoding; any other field goes to `other`,
 * which reads it and returns `true`, or returns `false` to have it skipped.
 */
function readRequestCanonical(
  message: Uint8Array,
  other: (reader: BinaryReader, field: number, wire: WireType) => boolean,
): { sender: SenderFields | undefined; group: string } {
  const reader = new BinaryReader(message);
  let sender: { address: string; membershipVersion: bigint } | undefined;
  let group = "";
  while (reader.pos < reader.len) {
    const fieldTag = readTag(reader);
    const field = fieldTag >>> 3;
    const wire = fieldTag & 7;
    if (field === 1) {
      expectWire(wire, WireType.LengthDelimited);
      sender = readSender(reader, sender);
    } else if (field === 2) {
      expectWire(wire, WireType.LengthDelimited);
      group = reader.string(true);
    } else if (!other(reader, field, wire)) reader.skip(wire, field);
  }
  return { sender, group };
}

function readSender(
  reader: BinaryReader,
  into: { address: string; membershipVersion: bigint } | undefined,
): { address: string; membershipVersion: bigint } {
  // A repeated message field merges into the one read before (protobuf's rule).
  const sender = into ?? { address: "", membershipVersion: 0n };
  const end = messageEnd(reader);
  while (reader.pos < end) {
    const fTag = readTag(reader);
    const f = fTag >>> 3;
    const w = fTag & 7;
    if (f === 1) {
      expectWire(w, WireType.LengthDelimited);
      sender.address = reader.string(true);
    } else if (f === 2) {
      expectWire(w, WireType.Varint);
      sender.membershipVersion = BigInt(reader.uint64());
    } else reader.skip(w, f);
  }
  if (reader.pos !== end) throw new NotCanonical();
  return sender;
}

function readStoreItem(reader: BinaryReader): StoreItemRead {
  let key = "";
  let data: Uint8Array = NO_BYTES;
  let stamp: ReadStamp | undefined;
  const end = messageEnd(reader);
  while (reader.pos < end) {
    const fTag = readTag(reader);
    const f = fTag >>> 3;
    const w = fTag & 7;
    if (f === 1) {
      expectWire(w, WireType.LengthDelimited);
      key = reader.string(true);
    } else if (f === 2) {
      expectWire(w, WireType.LengthDelimited);
      data = reader.bytes();
    } else if (f === 3) {
      expectWire(w, WireType.LengthDelimited);
      stamp = readStamp(reader, stamp);
    } else reader.skip(w, f);
  }
  if (reader.pos !== end) throw new NotCanonical();
  return { key, data, stamp };
}

/** The end of the length-delimited message whose length the reader is at. */
function messageEnd(reader: BinaryReader): number {
  const length = reader.uint32();
  const end = reader.pos + length;
  if (end > reader.len) throw new NotCanonical();
  return end;
}

function expectWire(wire: WireType, expected: WireType): void {
  if (wire !== expected) throw new NotCanonical();
}

// --- sizes and writers -----------------------------------------------------------

/** A varint field: omitted at 0 (proto3). */
function varintFieldSize(value: number): number {
  return value === 0 ? 0 : 1 + varintSize(value);
}

function writeVarintField(
  target: Uint8Array,
  offset: number,
  field: number,
  value: number,
): number {
  if (value === 0) return offset;
  target[offset] = tag(field, 0);
  return writeVarint(target, offset + 1, value);
}

/** A string field of `bytes` UTF-8 bytes: omitted when empty (proto3). */
function stringFieldSize(bytes: number): number {
  return bytes === 0 ? 0 : 1 + varintSize(bytes) + bytes;
}

function writeStringField(
  target: Buffer,
  offset: number,
  field: number,
  text: string,
  bytes: number,
): number {
  if (bytes === 0) return offset;
  target[offset++] = tag(field, LEN);
  offset = writeVarint(target, offset, bytes);
  return writeUtf8(target, offset, text, bytes);
}

/** A `Stamp` message field: written whenever set, even with both parts 0. */
function stampFieldSize(stamp: Stamp | undefined): number {
  if (stamp === undefined) return 0;
  const body = varintFieldSize(stamp.epoch) + varintFieldSize(stamp.seq);
  return 1 + varintSize(body) + body;
}

function writeStampField(
  target: Uint8Array,
  offset: number,
  field: number,
  stamp: Stamp | undefined,
): number {
  if (stamp === undefined) return offset;
  target[offset++] = tag(field, LEN);
  offset = writeVarint(target, offset, varintFieldSize(stamp.epoch) + varintFieldSize(stamp.seq));
  offset = writeVarintField(target, offset, 1, stamp.epoch);
  return writeVarintField(target, offset, 2, stamp.seq);
}
