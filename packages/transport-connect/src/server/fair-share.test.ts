// The admission arithmetic alone: the per-address share, the peer reserve,
// the byte budget and FetchMany keys, each refusal naming its limit.
import { describe, expect, it } from "vitest";
import { FairShare, type Ticket } from "./fair-share.js";

const MiB = 1 << 20;
const get = { ":path": "/distcache.CacheService/Get" };
const set = { ":path": "/distcache.CacheService/Set" };
const peerFetch = { ":path": "/distcache.peer.v1.PeerService/Fetch" };

function share(limits: Partial<ConstructorParameters<typeof FairShare>[0]> = {}): FairShare {
  return new FairShare({
    maxRequestsInFlight: 10,
    maxRequestsPerAddress: 4,
    peerReservedRequests: 3,
    maxBufferedBytes: 1.5 * MiB,
    readMaxBytes: MiB,
    ...limits,
  });
}

describe("FairShare", () => {
  it("one address gets at most its share; clients stop at the peer reserve; peers use the rest", () => {
    const fair = share({ maxBufferedBytes: 0 });
    const a = fair.join("10.0.0.1");
    const b = fair.join("10.0.0.2");
    const c = fair.join("10.0.0.3");
    const tickets: Ticket[] = [];
    for (let i = 0; i < 4; i++) tickets.push(fair.admit(get, a) as Ticket);
    expect(fair.admit(get, a)).toBe(
      "overloaded: 4 requests in flight from 10.0.0.1, the limit per address is 4",
    );
    for (let i = 0; i < 3; i++) tickets.push(fair.admit(get, b) as Ticket);
    expect(fair.admit(get, c)).toBe(
      "overloaded: 7 requests in flight, the limit for clients is 7 (3 are kept for peers)",
    );
    for (let i = 0; i < 3; i++) tickets.push(fair.admit(peerFetch, undefined) as Ticket);
    expect(fair.admit(peerFetch, undefined)).toBe(
      "overloaded: 10 requests in flight, the limit is 10",
    );
    expect(fair.stats()).toMatchObject({
      inFlight: 10,
      shedPerAddress: 1,
      shedClientShare: 1,
      shedInFlight: 1,
    });
    for (const ticket of tickets) fair.release(ticket);
    expect(fair.stats().inFlight).toBe(0);
    expect(typeof fair.admit(get, a)).toBe("object");
  });

  it("a reserve over half the limit is ignored (a small limit has no room to split)", () => {
    const fair = share({
      maxRequestsInFlight: 4,
      peerReservedRequests: 3,
      maxRequestsPerAddress: 0,
    });
    for (let i = 0; i < 4; i++) expect(typeof fair.admit(get, undefined)).toBe("object");
    expect(fair.admit(get, undefined)).toBe("overloaded: 4 requests in flight, the limit is 4");
  });

  it("past the byte budget a large request is refused and a Get still admitted; release frees the bytes", () => {
    const fair = share({ maxRequestsPerAddress: 0 });
    const first = fair.admit(set, undefined) as Ticket; // no content-length: the largest message
    expect(first.bytes).toBe(MiB);
    expect(fair.admit({ ...set, "content-length": String(MiB) }, undefined)).toBe(
      `overloaded: ${MiB} bytes buffered, a request of up to ${MiB} bytes would pass the limit of ${1.5 * MiB}`,
    );
    expect(typeof fair.admit({ ...set, "content-length": "1000" }, undefined)).toBe("object");
    expect(typeof fair.admit(get, undefined)).toBe("object");
    fair.release(first);
    expect(typeof fair.admit({ ...set, "content-length": String(MiB) }, undefined)).toBe("object");
    expect(fair.stats().shedBufferedBytes).toBe(1);
  });

  it("FetchMany keys count in flight until released; a batch that would pass the limit is refused", () => {
    const fair = share();
    expect(fair.chargeKeys(8)).toBeUndefined();
    expect(fair.chargeKeys(3)).toBe(
      "overloaded: a FetchMany of 3 keys with 8 requests in flight would pass the limit of 10",
    );
    fair.releaseKeys(8);
    expect(fair.stats()).toMatchObject({ inFlight: 0, shedFetchManyKeys: 1 });
  });
});
