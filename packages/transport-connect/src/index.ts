// @distcache/transport-connect's public surface: ConnectPool, its options and
// stats, and the client-facing service for building clients.
export type { BreakerState, CircuitBreakerOptions } from "./client/circuit-breaker.js";
export { CacheService } from "./gen/distcache/cache_pb.js";
export type { ConnectPoolOptions, PeerOptions, ServerOptions } from "./options.js";
export { ConnectPool, type PeerHealth, type PoolStats } from "./pool.js";
export type { ServerGuardStats } from "./server/guard.js";
export type { PeerRequestCounts } from "./server/host.js";
