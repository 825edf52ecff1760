// Write stamps with real `distcache-node` processes whose wall clocks step
// (Debian's libfaketime, preloaded): an owner restarted an hour back, and an
// owner that ran an hour ahead and is restarted on the right time. A
// read-your-writes checker across all nodes must never read a value older
// than the last acknowledged Set or Delete of its key.
import { existsSync } from "node:fs";
import { type Client, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { CacheService, ConnectPool } from "@distcache/transport-connect";
import { describe, expect, it } from "vitest";
import { freePorts } from "../../../scripts/lib/ports.mjs";
import { type NodeProcess, startNode } from "./node-process.test-util.js";

const FAKETIME_LIB = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";
const available = existsSync(FAKETIME_LIB);
if (!available && process.env.CI) {
  throw new Error(`${FAKETIME_LIB} is missing: .ci/run installs Debian's faketime`);
}
const NODE_ARGS = ["--group", "scores:1048576"];
const text = (data: Uint8Array) => new TextDecoder().decode(data);

/** The environment of a node whose wall clock is shifted by `offset` (e.g. "-1h"); monotonic time is left alone. */
function clockShifted(offset: string | undefined): NodeJS.ProcessEnv | undefined {
  if (offset === undefined) return undefined;
  return {
    ...process.env,
    LD_PRELOAD: FAKETIME_LIB,
    FAKETIME: offset,
    FAKETIME_DONT_FAKE_MONOTONIC: "1",
  };
}

interface Checked {
  acknowledged: number;
  reportedPartial: number;
  stale: string[];
}

/**
 * Sequential Sets (70%) and Deletes through random nodes; after each
 * acknowledged one, the key is read through every node and must be the value
 * just written (or, after a Delete, the demo source's `vN`). Bounded by
 * `count` operations and `ms` of time.
 */
async function check(
  clients: Client<typeof CacheService>[],
  keys: string[],
  count: number,
  ms: number,
  into: Checked,
): Promise<void> {
  const deadline = performance.now() + ms;
  for (let op = 0; op < count && performance.now() < deadline; op++) {
    const key = keys[op % keys.length]!;
    const via = clients[Math.floor(Math.random() * clients.length)]!;
    const value = `${key}:${op}:${Math.random().toString(36).slice(2, 8)}`;
    const isSet = Math.random() < 0.7;
    const answer = isSet
      ? await via.set({ group: "scores", key, data: Buffer.from(value) })
      : await via.delete({ group: "scores", key });
    if (!answer.success) continue;
    into.acknowledged++;
    if (answer.err !== "") into.reportedPartial++;
    const expected = isSet ? value : `v${key.slice(1)}`;
    const reads = await Promise.all(clients.map((c) => c.get({ group: "scores", key })));
    reads.forEach((read, i) => {
      const got = read.found ? text(read.data) : `(not found: ${read.err})`;
      if (got !== expected) into.stale.push(`node ${i} ${key}: ${got}, expected ${expected}`);
    });
  }
}

async function scenario(firstOffset: string | undefined, restartOffset: string | undefined) {
  const ports = await freePorts(3);
  const addresses = ports.map((port) => `127.0.0.1:${port}`);
  const nodes: NodeProcess[] = await Promise.all(
    ports.map((port, i) =>
      startNode(port, addresses, NODE_ARGS, false, i === 0 ? clockShifted(firstOffset) : undefined),
    ),
  );
  const clients = addresses.map((address) =>
    createClient(CacheService, createGrpcTransport({ baseUrl: `http://${address}` })),
  );
  // Keys the restarted node owns (its stamps are the ones that step), and a few others.
  const ring = new ConnectPool(addresses[0]!);
  ring.setPeers(...addresses);
  const owned: string[] = [];
  const others: string[] = [];
  for (let i = 0; i < 1_000 && (owned.length < 20 || others.length < 10); i++) {
    (ring.ownerOf(`k${i}`) === addresses[0] ? owned : others).push(`k${i}`);
  }
  await ring.close();
  const keys = [...owned.slice(0, 20), ...others.slice(0, 10)];
  const checked: Checked = { acknowledged: 0, reportedPartial: 0, stale: [] };
  // Every key written (and so announced to the peers) by the first process.
  await check(clients, keys, 60, 15_000, checked);
  nodes[0]!.child.kill("SIGKILL");
  await nodes[0]!.exited;
  await startNode(ports[0]!, addresses, NODE_ARGS, false, clockShifted(restartOffset));
  await check(clients, keys, 120, 20_000, checked);
  return checked;
}

describe.skipIf(!available)("write stamps when a node's clock steps (libfaketime)", () => {
  it("an owner restarted an hour back: no acknowledged write is read back older", async () => {
    const checked = await scenario(undefined, "-1h");
    console.log("clock step -1h:", JSON.stringify({ ...checked, stale: checked.stale.length }));
    expect(checked.stale).toEqual([]);
    expect(checked.acknowledged).toBeGreaterThan(50);
  }, 90_000);

  it("an owner that ran an hour ahead, restarted on the right time: no acknowledged write is read back older", async () => {
    const checked = await scenario("+1h", undefined);
    console.log(
      "clock step +1h then right:",
      JSON.stringify({ ...checked, stale: checked.stale.length }),
    );
    expect(checked.stale).toEqual([]);
    expect(checked.acknowledged).toBeGreaterThan(50);
  }, 90_000);
});
