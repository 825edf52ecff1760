// Write stamps (see @distcache/core's stamps.ts) as PeerService carries them.
import { create } from "@bufbuild/protobuf";
import type { Stamp } from "@distcache/core";
import { StampSchema, type Stamp as WireStamp } from "./gen/distcache/peer/v1/peer_pb.js";

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
