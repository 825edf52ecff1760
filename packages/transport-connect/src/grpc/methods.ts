// The HTTP/2 paths of the methods the hand-written gRPC paths serve or call,
// derived from the generated service descriptors so a rename in proto/ cannot
// leave a stale string behind.
import type { DescMethod } from "@bufbuild/protobuf";
import { CacheService } from "../gen/distcache/cache_pb.js";
import { PeerService } from "../gen/distcache/peer/v1/peer_pb.js";

/** `/package.Service/Method` of a generated method descriptor. */
export function methodPath(method: DescMethod): string {
  return `/${method.parent.typeName}/${method.name}`;
}

/** `/distcache.CacheService/Get`. */
export const CACHE_GET_PATH = methodPath(CacheService.method.get);
/** `/distcache.peer.v1.PeerService/FetchMany`. */
export const PEER_FETCH_MANY_PATH = methodPath(PeerService.method.fetchMany);
/** `/distcache.peer.v1.PeerService/StoreMany`. */
export const PEER_STORE_MANY_PATH = methodPath(PeerService.method.storeMany);
/** `/distcache.peer.v1.PeerService/Exchange`. */
export const PEER_EXCHANGE_PATH = methodPath(PeerService.method.exchange);
