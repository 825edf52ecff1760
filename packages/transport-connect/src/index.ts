// @distcache/transport-connect's public surface: ConnectPool, its options,
// events and stats, and the client-facing service for building clients.
export type { LookupAnswer } from "./admin/admin-server.js";
export type { GroupStatus, MemberStatus, StatusReport } from "./admin/status.js";
export { InsecurePeerPlaneError } from "./auth/secure-default.js";
export type { BreakerState, CircuitBreakerOptions } from "./client/circuit-breaker.js";
export type { PeerMethod } from "./client/peer-calls.js";
export type { PoolEvents, PoolListener, ShedReason } from "./events.js";
export { CacheService } from "./gen/distcache/cache_pb.js";
export type { AdminOptions, ConnectPoolOptions, PeerOptions, ServerOptions } from "./options.js";
export { ConnectPool } from "./pool.js";
export type { PeerHealth, PoolStats } from "./pool-stats.js";
export type { ServerGuardStats } from "./server/guard.js";
export type { HealthPhase } from "./server/health.js";
export type { PeerRequestCounts } from "./server/host.js";
