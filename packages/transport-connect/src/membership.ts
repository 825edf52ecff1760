// The membership as this node sees it: the hash ring of members, a client per
// peer, where a key lives (owner, replicas) and the membership version peers
// compare to notice that they disagree.
import type { PeerClient, Placement } from "@distcache/core";
import { HashRing } from "@distcache/hashring";
import { parseAddress } from "./address.js";

/** A peer client the membership can drop when its member leaves. */
export interface MemberClient extends PeerClient {
  close(): void;
}

/** This node's member list, ring and peer clients. */
export class Membership<Client extends MemberClient> {
  private readonly ring: HashRing;
  private readonly clients = new Map<string, Client>();
  private clientList: readonly Client[] = [];
  private currentVersion = 0n;
  /**
   * Per ring point, 1 + the index in `placements` of its keys' placement; 0
   * until a key on it is asked. Keys on one point share a placement, so a
   * miss reads one instead of building one (see {@link Membership.placement}).
   */
  private placementOfPoint = new Uint32Array(0);
  /** The distinct placements made since the membership last changed. */
  private placements: Placement[] = [];
  /** `placements` by their members joined with "\n", so equal placements are kept once. */
  private placementIndex = new Map<string, number>();

  /**
   * @param self this node's member address; always a member.
   * @param replicas copies kept after the owner's.
   * @param connect makes the client for a new peer (connected on first use).
   */
  constructor(
    readonly self: string,
    private readonly replicas: number,
    virtualNodes: number | undefined,
    private readonly connect: (address: string) => Client,
  ) {
    parseAddress(self);
    this.ring = new HashRing(virtualNodes === undefined ? {} : { virtualNodes });
    this.set([]);
  }

  /**
   * Replaces the member list (this node is always a member). Clients of
   * removed peers are closed; new peers get a client.
   */
  set(addresses: readonly string[]): void {
    const members = new Set([this.self]);
    for (const address of addresses) {
      parseAddress(address);
      members.add(address);
    }
    for (const [address, client] of this.clients) {
      if (!members.has(address)) {
        client.close();
        this.clients.delete(address);
      }
    }
    for (const address of members) {
      if (address !== this.self && !this.clients.has(address)) {
        this.clients.set(address, this.connect(address));
      }
    }
    this.ring.set(members);
    this.placementOfPoint = new Uint32Array(this.ring.pointCount);
    this.placements = [];
    this.placementIndex = new Map();
    this.clientList = [...this.clients.values()];
    this.currentVersion = membershipVersion([...members]);
  }

  /** Where `key` lives: its owner, then `replicas` distinct members clockwise. */
  placement(key: string): Placement {
    const point = this.ring.pointOf(key);
    const known = this.placementOfPoint[point];
    if (known !== undefined && known > 0) return this.placements[known - 1]!;
    // The ring always holds this node, so `point` is a real point.
    const successors = this.ring.successorsAt(point, 1 + this.replicas);
    const id = successors.join("\n");
    let index = this.placementIndex.get(id);
    if (index === undefined) {
      index = this.placements.push(this.makePlacement(successors)) - 1;
      this.placementIndex.set(id, index);
    }
    this.placementOfPoint[point] = index + 1;
    return this.placements[index]!;
  }

  /** The placement of keys whose successors on the ring are `successors` (the owner first). */
  private makePlacement(successors: readonly string[]): Placement {
    const [owner, ...rest] = successors;
    const replicas: PeerClient[] = [];
    let selfIsReplica = false;
    for (const address of rest) {
      if (address === this.self) selfIsReplica = true;
      else replicas.push(this.clients.get(address)!);
    }
    // Frozen: one object answers every key on its points, so no caller may change it.
    return Object.freeze({
      owner: owner === this.self || owner === undefined ? undefined : this.clients.get(owner),
      replicas: Object.freeze(replicas),
      selfIsReplica,
    });
  }

  /** Every member but this node. */
  others(): readonly Client[] {
    return this.clientList;
  }

  /** The client of member `address`, if it is a peer. */
  peer(address: string): Client | undefined {
    return this.clients.get(address);
  }

  /** The member that owns `key`. */
  ownerOf(key: string): string {
    return this.ring.ownerOf(key)!;
  }

  /** The members, this node included. */
  members(): string[] {
    return this.ring.members();
  }

  /** FNV-1a 64 of the sorted members (see {@link membershipVersion}). */
  get version(): bigint {
    return this.currentVersion;
  }

  /** Closes every peer client. */
  close(): void {
    for (const client of this.clientList) client.close();
  }
}

/** FNV-1a 64 of the sorted members joined by "\n": equal lists give equal versions everywhere. */
export function membershipVersion(members: readonly string[]): bigint {
  let hash = 0xcbf29ce484222325n;
  const bytes = new TextEncoder().encode([...members].sort().join("\n"));
  for (const byte of bytes) {
    hash ^= BigInt(byte);
    hash = (hash * 0x100000001b3n) & 0xffffffffffffffffn;
  }
  return hash;
}
