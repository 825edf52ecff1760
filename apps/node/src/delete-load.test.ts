// Deletes through a non-owner under concurrency, with real `distcache-node`
// processes: the owner's fan-out has a budget of its own inside the caller's
// deadline, so a slow or stopped non-owner is named in `err` instead of the
// owner looking as if it had not acknowledged.
import { type Client, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { CacheService, ConnectPool } from "@distcache/transport-connect";
import { describe, expect, it } from "vitest";
import { freePorts } from "../../../scripts/lib/ports.mjs";
import { startNode } from "./node-process.test-util.js";

const CONCURRENCY = 64;
/** How long the load runs; DISTCACHE_DELETE_SECONDS=20 gives the figure. */
const SECONDS = Number(process.env.DISTCACHE_DELETE_SECONDS ?? 4);

async function threeNodes() {
  const ports = await freePorts(3);
  const addresses = ports.map((port) => `127.0.0.1:${port}`);
  const nodes = await Promise.all(
    ports.map((port) => startNode(port, addresses, ["--group", "scores:1048576"])),
  );
  const clients = addresses.map((address) =>
    createClient(CacheService, createGrpcTransport({ baseUrl: `http://${address}` })),
  );
  const ring = new ConnectPool(addresses[0]!);
  ring.setPeers(...addresses);
  // Keys owned by node 0, deleted through node 1; node 2 is the third member.
  const keys: string[] = [];
  for (let i = 0; i < 1_000 && keys.length < CONCURRENCY; i++) {
    if (ring.ownerOf(`k${i}`) === addresses[0]) keys.push(`k${i}`);
  }
  await ring.close();
  return { nodes, addresses, clients, keys };
}

/** Rounds of `keys.length` concurrent Deletes through `via` for `ms`; every answer. */
async function deleteRounds(via: Client<typeof CacheService>, keys: string[], ms: number) {
  const answers: { success: boolean; err: string }[] = [];
  const deadline = performance.now() + ms;
  while (performance.now() < deadline) {
    answers.push(
      ...(await Promise.all(
        keys.map((key) => via.delete({ group: "scores", key }, { timeoutMs: 10_000 })),
      )),
    );
  }
  return answers;
}

describe("Deletes through a non-owner", () => {
  it(
    `${CONCURRENCY} at a time for ${SECONDS} s: every one acknowledged`,
    async () => {
      const { clients, keys } = await threeNodes();
      const answers = await deleteRounds(clients[1]!, keys, SECONDS * 1_000);
      const failed = answers.filter((a) => !a.success || a.err !== "");
      console.log(`deletes: ${answers.length}, failed or partial: ${failed.length}`, failed[0]);
      expect(answers.length).toBeGreaterThanOrEqual(CONCURRENCY);
      expect(failed).toEqual([]);
    },
    60_000 + SECONDS * 1_000,
  );

  it("with a stopped non-owner: acknowledged by the owner, the stopped member named in err", async () => {
    const { nodes, addresses, clients, keys } = await threeNodes();
    nodes[2]!.child.kill("SIGSTOP");
    try {
      const answers = await Promise.all(
        keys
          .slice(0, 16)
          .map((key) => clients[1]!.delete({ group: "scores", key }, { timeoutMs: 10_000 })),
      );
      for (const answer of answers) {
        expect(answer.success, answer.err).toBe(true);
        expect(answer.err).toContain(`not acknowledged by ${addresses[2]}`);
      }
    } finally {
      nodes[2]!.child.kill("SIGCONT");
    }
  }, 60_000);
});
