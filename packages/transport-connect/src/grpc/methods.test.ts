// The method paths the hand-written gRPC paths match on or call, against the
// generated descriptors and the paths the protocol fixes.
import { describe, expect, it } from "vitest";
import { CacheService } from "../gen/distcache/cache_pb.js";
import { PeerService } from "../gen/distcache/peer/v1/peer_pb.js";
import {
  CACHE_GET_PATH,
  methodPath,
  PEER_FETCH_MANY_PATH,
  PEER_STORE_MANY_PATH,
} from "./methods.js";

describe("method paths", () => {
  it("are /package.Service/Method, as every gRPC client sends them", () => {
    expect(CACHE_GET_PATH).toBe("/distcache.CacheService/Get");
    expect(PEER_FETCH_MANY_PATH).toBe("/distcache.peer.v1.PeerService/FetchMany");
    expect(PEER_STORE_MANY_PATH).toBe("/distcache.peer.v1.PeerService/StoreMany");
  });

  it("methodPath names every method of both services", () => {
    expect(CacheService.methods.map(methodPath)).toEqual([
      "/distcache.CacheService/Get",
      "/distcache.CacheService/Set",
      "/distcache.CacheService/Delete",
    ]);
    expect(PeerService.methods.map(methodPath)).toEqual(
      PeerService.methods.map((m) => `/distcache.peer.v1.PeerService/${m.name}`),
    );
    expect(PeerService.methods.map((m) => m.name)).toContain("FetchMany");
  });
});
