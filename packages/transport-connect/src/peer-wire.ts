// Core's peer types as PeerService messages carry them, both ways: write
// stamps, failure lists and the sender. The client and the server convert
// through these only, so the two sides cannot drift apart.
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import type { PropagationResult, Stamp } from "@distcache/core";
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

/** A stamp from the wire; absent from peers that do not send one. */
export function fromWire(stamp: WireStamp | undefined): Stamp | undefined {
  if (stamp === undefined) return undefined;
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
