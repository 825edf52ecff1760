// Membership's placements: kept per ring point, equal to what the ring says,
// and rebuilt when the members change.
import { HashRing } from "@distcache/hashring";
import { describe, expect, it } from "vitest";
import { type MemberClient, Membership } from "./membership.js";

/** A client that only knows its address and whether it was closed. */
function fakeClient(address: string): MemberClient & { closed: boolean } {
  return {
    id: address,
    closed: false,
    get: () => Promise.resolve(undefined),
    store: () => Promise.resolve(undefined),
    remove: () => Promise.resolve({ failed: [] }),
    close() {
      this.closed = true;
    },
  };
}

const SELF = "127.0.0.1:7001";
const OTHERS = ["127.0.0.1:7002", "127.0.0.1:7003", "127.0.0.1:7004"];
const KEYS = Array.from({ length: 5_000 }, (_, i) => `key-${i}`);

describe("Membership.placement", () => {
  it("answers every key as the ring places it, one shared frozen object per distinct placement", () => {
    const membership = new Membership(SELF, 2, undefined, fakeClient);
    membership.set(OTHERS);
    const ring = new HashRing();
    ring.set([SELF, ...OTHERS]);
    const distinct = new Set<object>();
    for (const key of KEYS) {
      const placement = membership.placement(key);
      const [owner, ...replicas] = ring.successors(key, 3);
      expect(placement.owner?.id).toBe(owner === SELF ? undefined : owner);
      expect(placement.selfIsReplica).toBe(replicas.includes(SELF));
      expect(placement.replicas.map((peer) => peer.id)).toEqual(
        replicas.filter((address) => address !== SELF),
      );
      expect(Object.isFrozen(placement) && Object.isFrozen(placement.replicas)).toBe(true);
      // Asked again: the same object.
      expect(membership.placement(key)).toBe(placement);
      distinct.add(placement);
    }
    // 4 members, 3 successors: at most 4 × 3 × 2 orders, far fewer than the keys.
    expect(distinct.size).toBeLessThanOrEqual(24);
  });

  it("places keys anew when the members change, with the new members' clients", () => {
    const membership = new Membership(SELF, 1, undefined, fakeClient);
    membership.set(OTHERS);
    const before = KEYS.map((key) => membership.placement(key));
    const gone = OTHERS[0]!;
    const goneClient = membership.peer(gone);
    membership.set(OTHERS.slice(1));
    expect((goneClient as ReturnType<typeof fakeClient>).closed).toBe(true);
    const ring = new HashRing();
    ring.set([SELF, ...OTHERS.slice(1)]);
    let moved = 0;
    KEYS.forEach((key, i) => {
      const placement = membership.placement(key);
      const ids = [placement.owner?.id, ...placement.replicas.map((peer) => peer.id)];
      expect(ids).not.toContain(gone);
      const owner = ring.ownerOf(key);
      expect(placement.owner?.id).toBe(owner === SELF ? undefined : owner);
      if (placement !== before[i]) moved++;
    });
    // Every placement object is new: none may hold the closed client.
    expect(moved).toBe(KEYS.length);
  });
});
