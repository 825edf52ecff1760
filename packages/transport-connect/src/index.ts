export { baseUrl, type HostPort, membershipVersion, parseAddress } from "./address.js";
export { CacheService } from "./gen/distcache/cache_pb.js";
export { ConnectPeerClient } from "./peer-client.js";
export { ConnectPool, type ConnectPoolOptions, type PoolStats } from "./pool.js";
export type { PeerRequestCounts, ServiceLimits } from "./services.js";
