import { type Client, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { type Getter, Group, type GroupOptions, NotFoundError } from "@distcache/core";
import { afterEach } from "vitest";
import { freePorts } from "../../../scripts/lib/ports.mjs";
import { CacheService } from "./gen/distcache/cache_pb.js";
import type { ConnectPoolOptions } from "./options.js";
import { ConnectPool } from "./pool.js";
import type { PeerRequestCounts } from "./server/host.js";

export interface TestNode {
  address: string;
  group: Group;
  pool: ConnectPool;
  loads: string[];
  client: Client<typeof CacheService>;
}

export const source = (key: string) =>
  ({ Tom: "630", Jack: "589", Sam: "567" })[key] ??
  (key.startsWith("k") ? `v${key.slice(1)}` : undefined);

const running: TestNode[] = [];

const demoGetter: Getter = async (key) => {
  // 5 ms by performance.now(), the clock loads are timed with: a timer alone
  // can fire early by it (libuv counts from the loop turn's start, which on a
  // busy machine is well before this call).
  const until = performance.now() + 5;
  for (let left = 5; left > 0; left = until - performance.now()) {
    await new Promise((resolve) => setTimeout(resolve, Math.ceil(left)));
  }
  const value = source(key);
  if (value === undefined) throw new NotFoundError(key);
  return value;
};

/** How each node's group is made, for {@link startCluster}. */
export interface GroupSetup {
  /** The getter every node uses (default: the demo rows after 5 ms). */
  getter?: Getter;
  groupOptions?: GroupOptions;
}

/** Starts `size` real nodes on loopback; `peersOf(i, all)` gives node i its member list. */
export async function startCluster(
  size: number,
  options: ConnectPoolOptions = {},
  peersOf: (i: number, all: string[]) => string[] = (_i, all) => all,
  setup: GroupSetup = {},
): Promise<TestNode[]> {
  const getter = setup.getter ?? demoGetter;
  const addresses = (await freePorts(size)).map((port) => `127.0.0.1:${port}`);
  const nodes: TestNode[] = [];
  for (const [i, address] of addresses.entries()) {
    const loads: string[] = [];
    const group = new Group(
      "scores",
      1 << 20,
      (key, context) => {
        loads.push(key);
        return getter(key, context);
      },
      setup.groupOptions,
    );
    const pool = new ConnectPool(address, {
      ...options,
      server: { drainTimeoutMs: 200, ...options.server },
    });
    pool.setPeers(...peersOf(i, addresses));
    group.registerPeers(pool);
    await pool.serve();
    const client = createClient(
      CacheService,
      createGrpcTransport({ baseUrl: `http://${address}` }),
    );
    const node = { address, group, pool, loads, client };
    nodes.push(node);
    running.push(node);
  }
  return nodes;
}

afterEach(async () => {
  await Promise.all(running.splice(0).map((node) => node.pool.close()));
});

export const text = (data: Uint8Array) => new TextDecoder().decode(data);
export const totalReceived = (nodes: TestNode[], method: keyof PeerRequestCounts) =>
  nodes.reduce((sum, node) => sum + node.pool.stats().received[method], 0);
