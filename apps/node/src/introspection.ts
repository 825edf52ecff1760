/**
 * Answers `{type: "stats"}` messages on the IPC channel a parent process
 * opened (spawn with `stdio: [..., "ipc"]`) with the node's memory, file
 * descriptors, active handles, sockets and counters. `scripts/chaos.mjs` uses
 * it to look for leaks; nothing else in the node depends on it.
 */
import dc from "node:diagnostics_channel";
import { readdirSync } from "node:fs";
import type { Socket } from "node:net";
import type { GroupStats } from "@distcache/core";
import type { PoolStats } from "@distcache/transport-connect";

/** Open TCP sockets of this process, by direction. An h2c session is one socket. */
export interface SocketCounts {
  /** Sockets accepted by a server of this process (client and peer sessions). */
  readonly inbound: number;
  /** Sockets this process opened, by remote `host:port` (peer sessions, the data source). */
  readonly outbound: Readonly<Record<string, number>>;
}

/** What a node answers to `{type: "stats"}`. */
export interface NodeStats {
  /** Resident set size in bytes. */
  readonly rss: number;
  /** V8 heap in use, bytes. */
  readonly heapUsed: number;
  /** Memory of C++ objects bound to JS objects (buffers included), bytes. */
  readonly external: number;
  /** Open file descriptors (`/proc/self/fd` entries); `null` where there is no `/proc`. */
  readonly fds: number | null;
  /** `process.getActiveResourcesInfo()` counted by type (`TCPSocketWrap`, `Timeout`, ...). */
  readonly activeResources: Readonly<Record<string, number>>;
  /** Open sockets; `undefined` when no {@link SocketTracker} was given. */
  readonly sockets: SocketCounts | undefined;
  readonly pool: PoolStats;
  readonly group: GroupStats;
}

/** The parts of a node that {@link collectStats} reads. */
export interface StatsSources {
  readonly pool: { stats(): PoolStats };
  readonly group: { stats(): GroupStats };
  readonly sockets?: SocketTracker;
}

/**
 * Counts the TCP sockets this process opens and accepts from the moment it is
 * started, via the `net.client.socket` and `net.server.socket` diagnostics
 * channels. Start it before the server listens and before the first peer call.
 */
export class SocketTracker {
  private readonly inbound = new Set<Socket>();
  private readonly outbound = new Set<Socket>();
  private readonly onClient = (message: unknown) => this.track(this.outbound, message);
  private readonly onServer = (message: unknown) => this.track(this.inbound, message);

  start(): this {
    dc.subscribe("net.client.socket", this.onClient);
    dc.subscribe("net.server.socket", this.onServer);
    return this;
  }

  stop(): void {
    dc.unsubscribe("net.client.socket", this.onClient);
    dc.unsubscribe("net.server.socket", this.onServer);
  }

  counts(): SocketCounts {
    const outbound: Record<string, number> = {};
    for (const socket of this.outbound) {
      // Read now, not when the socket was created: a connecting socket has no remote yet.
      const remote =
        socket.remoteAddress === undefined
          ? "connecting"
          : `${socket.remoteAddress}:${socket.remotePort}`;
      outbound[remote] = (outbound[remote] ?? 0) + 1;
    }
    return { inbound: this.inbound.size, outbound };
  }

  private track(set: Set<Socket>, message: unknown): void {
    const socket = (message as { socket?: Socket }).socket;
    if (socket === undefined || socket.destroyed) return;
    set.add(socket);
    socket.once("close", () => set.delete(socket));
  }
}

/** A snapshot of this process and node, JSON-safe. */
export function collectStats(sources: StatsSources): NodeStats {
  const memory = process.memoryUsage();
  const activeResources: Record<string, number> = {};
  for (const type of process.getActiveResourcesInfo()) {
    activeResources[type] = (activeResources[type] ?? 0) + 1;
  }
  const pool = sources.pool.stats();
  return {
    rss: memory.rss,
    heapUsed: memory.heapUsed,
    external: memory.external,
    fds: countFds(),
    activeResources,
    sockets: sources.sockets?.counts(),
    pool,
    group: sources.group.stats(),
  };
}

function countFds(): number | null {
  try {
    // readdirSync opens the directory itself while listing it; don't count that one.
    return readdirSync("/proc/self/fd").length - 1;
  } catch {
    return null;
  }
}

/** The IPC side of a process: `process` itself when it was spawned with an IPC channel. */
export interface IpcEndpoint {
  send?(
    message: unknown,
    sendHandle: undefined,
    options: undefined,
    callback: (error: Error | null) => void,
  ): boolean;
  on(event: "message", listener: (message: unknown) => void): unknown;
  off(event: "message", listener: (message: unknown) => void): unknown;
  readonly connected?: boolean;
  readonly channel?: { unref(): void } | undefined;
}

/**
 * Answers `{type: "stats", id?}` messages on `endpoint` with
 * `{type: "stats", id, ...NodeStats}`; other messages are ignored. Does
 * nothing and returns a no-op when `endpoint` has no IPC channel. The channel
 * does not keep the process alive. Returns a function that stops answering.
 */
export function installIntrospection(endpoint: IpcEndpoint, sources: StatsSources): () => void {
  const send = endpoint.send?.bind(endpoint);
  if (send === undefined) return () => {};
  const onMessage = (message: unknown) => {
    if (typeof message !== "object" || message === null) return;
    const { type, id } = message as { type?: unknown; id?: unknown };
    if (type !== "stats" || endpoint.connected === false) return;
    // With a callback, a channel closed meanwhile is an ignored error, not an 'error' event.
    send({ type: "stats", id, ...collectStats(sources) }, undefined, undefined, () => {});
  };
  endpoint.on("message", onMessage);
  // Listening refs the channel; an open channel alone must not keep a node running.
  endpoint.channel?.unref();
  return () => endpoint.off("message", onMessage);
}
