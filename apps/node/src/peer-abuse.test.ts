// Oversized and repeated peer fields against a real `distcache-node`, its
// memory read from /proc: a 1 MiB Sender.address once kept per key by the
// stale guard (300 requests: +314 MiB of heap), and one small FetchMany naming
// a 1 MB key 1,024 times to a peer that never reads (RSS 71 MiB -> 1.1 GiB).
import { readFileSync } from "node:fs";
import * as http2 from "node:http2";
import { create, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { CacheService } from "@distcache/transport-connect";
import { describe, expect, it } from "vitest";
import {
  FetchManyRequestSchema,
  PeerService,
} from "../../../packages/transport-connect/src/gen/distcache/peer/v1/peer_pb.js";
import { freePorts } from "../../../scripts/lib/ports.mjs";
import { type NodeProcess, startNode } from "./node-process.test-util.js";

const MiB = 1 << 20;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** The node's resident set size in bytes. */
function rss(node: NodeProcess): number {
  const status = readFileSync(`/proc/${node.child.pid}/status`, "utf8");
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)![1]) * 1024;
}

async function bigValueNode() {
  const [port] = await freePorts(1);
  const address = `127.0.0.1:${port}`;
  const node = await startNode(
    port!,
    [address],
    ["--group", `scores:${16 * MiB}`, "--max-value-bytes", String(2 * MiB)],
  );
  const client = createClient(CacheService, createGrpcTransport({ baseUrl: `http://${address}` }));
  const set = await client.set({ group: "scores", key: "big", data: new Uint8Array(MiB).fill(7) });
  expect(set).toMatchObject({ success: true, err: "" });
  return { node, address, client };
}

describe("peer fields a hostile sender inflates", () => {
  it("a 1 MiB sender address is refused before anything keeps it: memory stays flat", async () => {
    const { node, address, client } = await bigValueNode();
    const peer = createClient(PeerService, createGrpcTransport({ baseUrl: `http://${address}` }));
    const before = rss(node);
    const huge = "h".repeat(MiB - 4_096);
    // 20 rounds of 10 at once: 200 MiB of hostile requests.
    let refused = 0;
    for (let round = 0; round < 20; round++) {
      await Promise.all(
        Array.from({ length: 10 }, async (_, i) => {
          try {
            await peer.invalidate({
              sender: { address: `${huge}${round}-${i}`, membershipVersion: 0n },
              group: "scores",
              key: `k${round}-${i}`,
              stamp: { epoch: 1n, seq: BigInt(round) },
            });
          } catch (error) {
            if (ConnectError.from(error).code === Code.InvalidArgument) refused++;
          }
        }),
      );
    }
    const grown = rss(node) - before;
    console.log(
      `200 requests with a 1 MiB sender: ${refused} refused, RSS +${(grown / MiB).toFixed(1)} MiB`,
    );
    expect(refused).toBe(200);
    // Before the bound the guard kept every address: over 200 MiB of heap for
    // these 200 (314 MiB for 300). Only transient request buffers remain now
    // (28-77 MiB of RSS seen for 100 or 200, Node 22 and 24).
    expect(grown).toBeLessThan(128 * MiB);
    expect((await client.get({ group: "scores", key: "big" })).found).toBe(true);
  }, 120_000);

  it("a FetchMany naming one 1 MB key 1,024 times, never read: one answer, memory stays flat", async () => {
    const { node, address, client } = await bigValueNode();
    const before = rss(node);
    const body = toBinary(
      FetchManyRequestSchema,
      create(FetchManyRequestSchema, {
        sender: { address, membershipVersion: 0n },
        group: "scores",
        keys: Array(1_024).fill("big"),
      }),
    );
    const frame = Buffer.alloc(5 + body.byteLength);
    frame.writeUInt32BE(body.byteLength, 1);
    frame.set(body, 5);
    // A peer that advertises a receive window of 0 and never reads.
    const session = http2.connect(`http://${address}`, { settings: { initialWindowSize: 0 } });
    session.on("error", () => {});
    try {
      for (let i = 0; i < 8; i++) {
        const stream = session.request({
          ":method": "POST",
          ":path": "/distcache.peer.v1.PeerService/FetchMany",
          "content-type": "application/grpc",
          te: "trailers",
        });
        stream.on("error", () => {});
        stream.end(frame);
      }
      await sleep(2_000);
      const grown = rss(node) - before;
      console.log(
        `8 x FetchMany of one 1 MB key x 1,024, unread: RSS +${(grown / MiB).toFixed(1)} MiB`,
      );
      // Before: ~1 GiB per such request. Now one 1 MB answer each, waiting on flow control.
      expect(grown).toBeLessThan(96 * MiB);
      expect((await client.get({ group: "scores", key: "big" })).found).toBe(true);
    } finally {
      session.destroy();
    }
  }, 60_000);
});
