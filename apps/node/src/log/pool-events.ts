// One log line per state change of the pool (its typed events): listening,
// the member list, a peer's breaker, shedding (rate-limited: overload can
// flap it many times a second), draining, stopped.
import type { ConnectPool } from "@distcache/transport-connect";

/** What is read of the pool: its events. */
export type PoolEventSource = Pick<ConnectPool, "on">;

import { type Logger, RateLimiter } from "./logger.js";

/** Shedding start/stop lines are logged at most once per reason per this many ms. */
const SHEDDING_LOG_INTERVAL_MS = 10_000;

/** Logs `pool`'s events on `log` from now on. */
export function logPoolEvents(pool: PoolEventSource, log: Logger): void {
  const shedding = new RateLimiter(SHEDDING_LOG_INTERVAL_MS);
  pool.on("listening", ({ address }) => log.info({ address }, `listening on ${address}`));
  pool.on("members", ({ members, version }) =>
    log.info({ members, version }, `members (${members.length}): ${members.join(", ")}`),
  );
  pool.on("breaker", ({ peer, state }) => {
    if (state === "open")
      log.warn({ peer, state }, `peer ${peer} breaker open: calls to it skipped`);
    else if (state === "closed")
      log.info({ peer, state }, `peer ${peer} breaker closed: answering again`);
    else log.debug({ peer, state }, `peer ${peer} breaker half-open: probing`);
  });
  pool.on("shedding", ({ reason, active }) => {
    const held = shedding.take(`${reason}:${active}`);
    if (held === undefined) return;
    if (active) log.warn({ reason, held }, `shedding requests (${reason})`);
    else log.info({ reason, held }, `stopped shedding requests (${reason})`);
  });
  pool.on("draining", () => log.info("draining"));
  pool.on("stopped", () => log.info("stopped"));
}
