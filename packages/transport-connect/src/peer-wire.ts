// Core's peer types as PeerService messages carry them, both ways: write
// stamps, failure lists and the sender. The client and the server convert
// through these only, so the two sides cannot drift apart.
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { MAX_STAMP_PART, type PropagationResult, type Stamp } from "@distcache/core";
import {
  type PeerFailure,
  type PeerFailureSchema,
  type Sender,
  SenderSchema,
  StampSchema,
  type Stamp as WireStamp,
} from "./gen/distcache/peer/v1/peer_pb.js";

/** A stamp for the wire. */
export function toWire(stamp: Stamp | undefined): WireStamp | undefined {
  if (stamp === undefined) return undefined;
  return create(StampSchema, { epoch: BigInt(stamp.epoch), seq: BigInt(stamp.seq) });
}

const MAX_WIRE_PART = BigInt(MAX_STAMP_PART);

/**
 * A stamp from the wire; absent from peers that do not send one.
 * @throws ConnectError INVALID_ARGUMENT for a part over 2^53 - 1 (stamps are
 *   exact JavaScript numbers; a larger one would compare wrongly).
 */
export function fromWire(
  stamp: { readonly epoch: bigint | number; readonly seq: bigint | number } | undefined,
): Stamp | undefined {
  if (stamp === undefined) return undefined;
  const { epoch, seq } = stamp;
  // Parts read as numbers (grpc/uint64.ts) are in range by construction.
  if (
    typeof epoch === "number" &&
    typeof seq === "number" &&
    epoch <= MAX_STAMP_PART &&
    seq <= MAX_STAMP_PART
  ) {
    return { epoch, seq };
  }
  if (stamp.epoch > MAX_WIRE_PART || stamp.seq > MAX_WIRE_PART) {
    throw new ConnectError(
      `stamp (${stamp.epoch}, ${stamp.seq}) is out of range: each part is at most ${MAX_STAMP_PART}`,
      Code.InvalidArgument,
    );
  }
  return { epoch: Number(stamp.epoch), seq: Number(stamp.seq) };
}

/** The members a write did not reach, as a `StoreResponse`/`InvalidateResponse` lists them. */
export function failuresToWire(
  failed: PropagationResult["failed"],
): MessageInitShape<typeof PeerFailureSchema>[] {
  return failed.map((f) => ({ address: f.peer, reason: f.reason }));
}

/** A response's list of members a write did not reach, as core reports them. */
export function failuresFromWire(failed: readonly PeerFailure[]): PropagationResult["failed"] {
  return failed.map((f) => ({ peer: f.address, reason: f.reason }));
}

/** The sender of a peer request: this node's address and its membership version. */
export function makeSender(address: string, version: bigint): Sender {
  return create(SenderSchema, { address, membershipVersion: version });
}
