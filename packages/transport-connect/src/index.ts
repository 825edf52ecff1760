export { baseUrl, type HostPort, membershipVersion, parseAddress } from "./address.js";
export {
  type BreakerState,
  CircuitBreaker,
  type CircuitBreakerOptions,
} from "./circuit-breaker.js";
export { CacheService } from "./gen/distcache/cache_pb.js";
export { ConnectPeerClient } from "./peer-client.js";
export { ConnectPool, type ConnectPoolOptions, type PeerHealth, type PoolStats } from "./pool.js";
export type { PeerRequestCounts, ServiceLimits } from "./services.js";
