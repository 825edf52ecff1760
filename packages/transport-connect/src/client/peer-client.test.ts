// ConnectPeerClient against real nodes over HTTP/2: batched fetches and
// pushes, deadlines, cancellation, the breaker and the fallback to per-key
// calls, and the server side of FetchMany/StoreMany they rely on.
import * as http2 from "node:http2";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import {
  connectNodeAdapter,
  createConnectTransport,
  createGrpcTransport,
  createGrpcWebTransport,
} from "@connectrpc/connect-node";
import { NotFoundError, type PeerValue, RemoteLoadError } from "@distcache/core";
import { describe, expect, it } from "vitest";
import { freePort } from "../../../../scripts/lib/ports.mjs";
import { peerCallHeaders } from "../auth/peer-token.js";
import { startCluster, text } from "../cluster.test-util.js";
import {
  FetchManyRequestSchema,
  FetchManyResponseSchema,
  FetchOutcome,
  PeerService,
} from "../gen/distcache/peer/v1/peer_pb.js";
import { makeSender } from "../peer-wire.js";
import { envelope, rawCall } from "../raw-h2.test-util.js";
import { FETCH_MANY_MAX_KEYS, STORE_MANY_MAX_ITEMS } from "../server/validation.js";
import { ConnectPeerClient } from "./peer-client.js";

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const bytes = (s: string) => new TextEncoder().encode(s);

/**
 * A peer client as a node would have, asking `address` in the name of a
 * member: `address` itself (a node serves peer requests from members only).
 */
function peerClientFor(address: string, timeoutMs = 2_000) {
  return new ConnectPeerClient(address, {
    sender: () => makeSender(address, 0n),
    advance: () => {},
    timeoutMs,
    // A node's credentials without secrets: the member it speaks for.
    headers: peerCallHeaders(address, []),
  });
}

describe("batched fetches over HTTP/2", () => {
  it("concurrent gets of distinct keys through a non-owner become a few peer calls", async () => {
    const nodes = await startCluster(3, { replicas: 0 });
    const [entry] = nodes as [(typeof nodes)[0]];
    const keys = Array.from({ length: 1_000 }, (_, i) => `k${i}`)
      .filter((key) => entry.pool.ownerOf(key) !== entry.address)
      .slice(0, 300);
    const answers = await Promise.all(
      keys.map((key) => entry.client.get({ group: "scores", key })),
    );
    expect(answers.map((a) => text(a.data))).toEqual(keys.map((key) => `v${key.slice(1)}`));
    const received = nodes.map((node) => node.pool.stats().received);
    const calls = received.reduce((sum, r) => sum + r.fetch + r.fetchMany, 0);
    const keysAsked = received.reduce((sum, r) => sum + r.fetch + r.fetchManyKeys, 0);
    expect(keysAsked).toBe(keys.length);
    expect(calls).toBeLessThan(keys.length / 5);
    // Each key loaded once, on its owner; the entry node kept no copy.
    expect(nodes.flatMap((node) => node.loads).sort()).toEqual([...keys].sort());
    expect(entry.group.stats().items).toBe(0);
  });

  it("maps found / not found / load failed / not cached per key inside one batch", async () => {
    const [node] = await startCluster(1, {}, undefined, {
      getter: (key) => {
        if (key === "missing") throw new NotFoundError(key);
        if (key === "broken") throw new Error(`source down for ${key}`);
        return `value of ${key}`;
      },
    });
    const peer = peerClientFor(node!.address);
    try {
      const asked = ["a", "missing", "broken", "b", "a"];
      const results = await Promise.allSettled(
        asked.map((key) => peer.get("scores", key, { cacheOnly: false })),
      );
      // "a" twice in one batch is asked once, and both callers get its answer.
      expect(node!.pool.stats().received).toMatchObject({
        fetch: 0,
        fetchMany: 1,
        fetchManyKeys: 4,
      });
      const [a, missing, broken, b, again] = results;
      expect(a).toMatchObject({ status: "fulfilled" });
      expect(text((a as PromiseFulfilledResult<PeerValue>).value.value)).toBe("value of a");
      expect((a as PromiseFulfilledResult<PeerValue>).value.stamp).toBeDefined();
      expect(again).toEqual(a);
      expect(text((b as PromiseFulfilledResult<PeerValue>).value.value)).toBe("value of b");
      expect(missing).toMatchObject({ status: "rejected" });
      expect((missing as PromiseRejectedResult).reason).toBeInstanceOf(NotFoundError);
      expect((broken as PromiseRejectedResult).reason).toBeInstanceOf(RemoteLoadError);
      expect(String((broken as PromiseRejectedResult).reason.message)).toBe(
        "source down for broken",
      );
      expect(node!.loads.sort()).toEqual(["a", "b", "broken", "missing"]);

      // Cache-only in one batch: the cached keys come back, the others NOT_CACHED.
      const cached = await Promise.all(
        ["a", "zzz", "b"].map((key) => peer.get("scores", key, { cacheOnly: true })),
      );
      expect(cached.map((v) => (v === undefined ? undefined : text(v.value)))).toEqual([
        "value of a",
        undefined,
        "value of b",
      ]);
      expect(node!.pool.stats().received).toMatchObject({ fetchMany: 2, fetchManyKeys: 7 });
      expect(node!.loads).toHaveLength(4);
    } finally {
      peer.close();
    }
  });

  it("a slow key does not hold back the others in its batch", async () => {
    const [node] = await startCluster(1, {}, undefined, {
      getter: async (key) => {
        if (key.startsWith("slow")) await sleep(600);
        return `value of ${key}`;
      },
    });
    const peer = peerClientFor(node!.address);
    try {
      const started = performance.now();
      const times = await Promise.all(
        ["slow", "a", "b", "c"].map(async (key) => {
          const got = await peer.get("scores", key, { cacheOnly: false });
          expect(text(got!.value)).toBe(`value of ${key}`);
          return performance.now() - started;
        }),
      );
      expect(node!.pool.stats().received).toMatchObject({ fetchMany: 1, fetchManyKeys: 4 });
      expect(times[0]).toBeGreaterThanOrEqual(590);
      expect(Math.max(...times.slice(1))).toBeLessThan(300);
    } finally {
      peer.close();
    }
  });

  it("a caller that leaves does not fail the others; the server's load goes on for them", async () => {
    const [node] = await startCluster(1, {}, undefined, {
      getter: async (key) => {
        await sleep(300);
        return `value of ${key}`;
      },
    });
    const peer = peerClientFor(node!.address);
    try {
      const impatient = new AbortController();
      const asks = ["x", "y", "z"].map((key, i) =>
        peer.get("scores", key, {
          cacheOnly: false,
          signal: i === 1 ? impatient.signal : new AbortController().signal,
        }),
      );
      setTimeout(() => impatient.abort(new Error("y's deadline")), 50);
      const [x, y, z] = await Promise.allSettled(asks);
      expect(y).toEqual({ status: "rejected", reason: new Error("y's deadline") });
      expect(text((x as PromiseFulfilledResult<PeerValue>).value.value)).toBe("value of x");
      expect(text((z as PromiseFulfilledResult<PeerValue>).value.value)).toBe("value of z");
      expect(node!.pool.stats().received.fetchMany).toBe(1);
      expect(peer.breaker.state).toBe("closed");
    } finally {
      peer.close();
    }
  });

  it("refuses an oversized batch, an empty one, and one with a bad key, serving none of its keys", async () => {
    const [node] = await startCluster(1, { server: { maxKeyBytes: 16 } });
    const client = createClient(
      PeerService,
      createGrpcTransport({ baseUrl: `http://${node!.address}` }),
    );
    const sender = makeSender(node!.address, 0n); // a member: the node itself
    const drain = async (keys: string[]) => {
      const results = [];
      for await (const message of client.fetchMany({ sender, group: "scores", keys })) {
        results.push(...message.results);
      }
      return results;
    };
    const tooMany = Array.from({ length: FETCH_MANY_MAX_KEYS + 1 }, (_, i) => `k${i}`);
    await expect(drain(tooMany)).rejects.toThrow(
      `[invalid_argument] FetchMany of ${FETCH_MANY_MAX_KEYS + 1} keys; at most ${FETCH_MANY_MAX_KEYS}`,
    );
    await expect(drain([])).rejects.toThrow("[invalid_argument] FetchMany without keys");
    await expect(drain(["Tom", ""])).rejects.toThrow("[invalid_argument] key is required");
    await expect(drain(["Tom", "x".repeat(17)])).rejects.toThrow(
      "[invalid_argument] key is longer than 16 bytes",
    );
    await expect(
      (async () => {
        for await (const _ of client.fetchMany({ sender, group: "nope", keys: ["Tom"] }));
      })(),
    ).rejects.toThrow("[failed_precondition] no such group: nope");
    expect(node!.loads).toEqual([]);
    // The largest batch allowed is served, every index once.
    const full = tooMany.slice(0, FETCH_MANY_MAX_KEYS);
    const results = await drain(full);
    expect(results.map((r) => r.index).sort((a, b) => a - b)).toEqual(full.map((_, i) => i));
    expect(results.every((r) => r.outcome === FetchOutcome.FOUND)).toBe(true);
    expect(text(results.find((r) => r.index === 7)!.data)).toBe("v7");
  });

  it("a batch counts as one call for the breaker", async () => {
    const dead = `127.0.0.1:${await freePort()}`;
    const peer = peerClientFor(dead, 300);
    try {
      const results = await Promise.allSettled(
        Array.from({ length: 10 }, (_, i) => peer.get("scores", `k${i}`, { cacheOnly: false })),
      );
      expect(results.every((r) => r.status === "rejected")).toBe(true);
      // Ten keys, one failed call: the breaker (threshold 3) stays closed.
      expect(peer.breaker.state).toBe("closed");
      expect(peer.batcher.stats()).toMatchObject({ batches: 1, keys: 10, inFlight: 0 });
    } finally {
      peer.close();
    }
  });

  it("falls back to one Fetch / Store per key for a peer without FetchMany and StoreMany", async () => {
    // A node of an older version: PeerService without the batched methods.
    const port = await freePort();
    let fetches = 0;
    const stored: string[] = [];
    const server = http2.createServer(
      connectNodeAdapter({
        routes: (router) =>
          router.service(PeerService, {
            fetch(request) {
              fetches++;
              return { outcome: FetchOutcome.FOUND, data: bytes(`old ${request.key}`) };
            },
            store(request) {
              stored.push(`${request.key}=${text(request.data)}`);
              return {};
            },
          }),
      }),
    );
    await new Promise<void>((resolve) => server.listen(port, "127.0.0.1", resolve));
    const peer = peerClientFor(`127.0.0.1:${port}`);
    try {
      const ask = () =>
        Promise.all(["a", "b", "c"].map((key) => peer.get("scores", key, { cacheOnly: false })));
      expect((await ask()).map((v) => text(v!.value))).toEqual(["old a", "old b", "old c"]);
      expect(fetches).toBe(3);
      // Later batches go straight to Fetch (no refused FetchMany first).
      expect((await ask()).map((v) => text(v!.value))).toEqual(["old a", "old b", "old c"]);
      expect(fetches).toBe(6);
      const push = (key: string) =>
        peer.store("scores", key, bytes(`v-${key}`), { replicate: false });
      await Promise.all(["x", "y", "z"].map(push));
      expect(stored.sort()).toEqual(["x=v-x", "y=v-y", "z=v-z"]);
      expect(peer.breaker.state).toBe("closed");
    } finally {
      peer.close();
      await new Promise((resolve) => server.close(resolve));
    }
  });

  it("a burst of loads pushes its copies to each replica in a few StoreMany calls", async () => {
    const nodes = await startCluster(3); // replicas 2: every node holds every key
    const [entry] = nodes as [(typeof nodes)[0]];
    const keys = Array.from({ length: 1_000 }, (_, i) => `k${i}`)
      .filter((key) => entry.pool.ownerOf(key) === entry.address)
      .slice(0, 120);
    const answers = await Promise.all(
      keys.map((key) => entry.client.get({ group: "scores", key })),
    );
    expect(answers.every((a) => a.found)).toBe(true);
    const counts = () => {
      const received = nodes.map((node) => node.pool.stats().received);
      return {
        pushes: received.reduce((sum, r) => sum + r.store + r.storeManyItems, 0),
        calls: received.reduce((sum, r) => sum + r.store + r.storeMany, 0),
      };
    };
    // The owner answers before its pushes land (awaitReplicas is off): wait for them, bounded.
    for (let i = 0; i < 500 && counts().pushes < keys.length * 2; i++) {
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    const { pushes, calls } = counts();
    expect(pushes).toBe(keys.length * 2);
    expect(calls).toBeLessThan(pushes / 4);
    // The copies arrived: the other nodes answer every key from their caches.
    for (const node of nodes.slice(1)) {
      expect(node.group.stats().items).toBe(keys.length);
    }
    expect(nodes.flatMap((node) => node.loads).sort()).toEqual([...keys].sort());
  });

  it("refuses a StoreMany with too many items, an oversized value or an empty key, keeping nothing", async () => {
    // The read limit (value limit + 2 KiB) lets 1,025 small items through to the checks.
    const [node] = await startCluster(1, { server: { maxValueBytes: 16_384 } });
    const client = createClient(
      PeerService,
      createGrpcTransport({ baseUrl: `http://${node!.address}` }),
    );
    const sender = makeSender(node!.address, 0n); // a member: the node itself
    const item = (key: string, data = "v") => ({ key, data: bytes(data) });
    const tooMany = Array.from({ length: STORE_MANY_MAX_ITEMS + 1 }, (_, i) => item(`k${i}`));
    await expect(client.storeMany({ sender, group: "scores", items: tooMany })).rejects.toThrow(
      `[invalid_argument] StoreMany of ${STORE_MANY_MAX_ITEMS + 1} items; at most ${STORE_MANY_MAX_ITEMS}`,
    );
    await expect(
      client.storeMany({
        sender,
        group: "scores",
        items: [item("a"), item("b", "x".repeat(16_385))],
      }),
    ).rejects.toThrow("[invalid_argument] value of 16385 bytes is over the 16384-byte limit");
    await expect(
      client.storeMany({ sender, group: "scores", items: [item("a"), item("")] }),
    ).rejects.toThrow("[invalid_argument] key is required");
    await expect(client.storeMany({ sender, group: "scores", items: [] })).rejects.toThrow(
      "[invalid_argument] StoreMany without items",
    );
    expect(node!.group.stats().items).toBe(0);
    await client.storeMany({ sender, group: "scores", items: [item("a", "1"), item("b", "2")] });
    expect(node!.group.stats().items).toBe(2);
    expect(node!.pool.stats().received).toMatchObject({ storeMany: 5, storeManyItems: 2 });
  });

  it("serves FetchMany alike on the gRPC fast path and through Connect (Connect and gRPC-Web)", async () => {
    const [node] = await startCluster(1, {}, undefined, {
      getter: (key) => {
        if (key === "missing") throw new NotFoundError(key);
        return `value of ${key}`;
      },
    });
    const url = `http://${node!.address}`;
    const sender = makeSender(node!.address, 0n); // a member: the node itself
    const keys = ["a", "missing", "b", "a"];
    const ask = async (transport: Parameters<typeof createClient>[1]) => {
      const results = [];
      const client = createClient(PeerService, transport);
      for await (const m of client.fetchMany({ sender, group: "scores", keys })) {
        results.push(...m.results);
      }
      return results
        .sort((x, y) => x.index - y.index)
        .map((r) => [r.index, r.outcome, text(r.data), r.error, r.stamp !== undefined]);
    };
    const viaFastPath = await ask(createGrpcTransport({ baseUrl: url }));
    expect(viaFastPath).toEqual([
      [0, FetchOutcome.FOUND, "value of a", "", true],
      [1, FetchOutcome.NOT_FOUND, "", "key not found: missing", false],
      [2, FetchOutcome.FOUND, "value of b", "", true],
      // Index 3 repeats "a": served once, answered at its first index only.
    ]);
    expect(await ask(createConnectTransport({ baseUrl: url, httpVersion: "2" }))).toEqual(
      viaFastPath,
    );
    expect(await ask(createGrpcWebTransport({ baseUrl: url, httpVersion: "2" }))).toEqual(
      viaFastPath,
    );
    expect(node!.pool.stats().received).toMatchObject({ fetchMany: 3, fetchManyKeys: 12 });
    // Each distinct key held one in-flight slot until it settled, the repeated one too.
    await expect.poll(() => node!.pool.stats().guard.inFlight, { timeout: 5_000 }).toBe(0);
  });

  it("ends a FetchMany past its deadline after the results that were ready, and releases its loads", async () => {
    let released = 0;
    const [node] = await startCluster(1, {}, undefined, {
      getter: (key, { signal }) =>
        key === "slow"
          ? new Promise((_resolve, reject) => {
              signal.addEventListener(
                "abort",
                () => {
                  released++;
                  reject(signal.reason);
                },
                { once: true },
              );
            })
          : `value of ${key}`,
    });
    const client = createClient(
      PeerService,
      createGrpcTransport({ baseUrl: `http://${node!.address}` }),
    );
    const sender = makeSender(node!.address, 0n); // a member: the node itself
    const seen: number[] = [];
    const call = (async () => {
      for await (const m of client.fetchMany(
        { sender, group: "scores", keys: ["a", "slow", "b"] },
        { timeoutMs: 300 },
      )) {
        seen.push(...m.results.map((r) => r.index));
      }
    })();
    await expect(call).rejects.toThrow("[deadline_exceeded]");
    expect(seen.sort()).toEqual([0, 2]);
    await sleep(50);
    expect(released).toBe(1); // the only caller of "slow" left: its load was aborted
    expect(node!.group.stats().loadsInFlight).toBe(0);
  });

  it("a peer client that gives up on a batch cancels it, and the owner releases its loads", async () => {
    let released = 0;
    const [node] = await startCluster(1, {}, undefined, {
      getter: (_key, { signal }) =>
        new Promise((_resolve, reject) => {
          signal.addEventListener(
            "abort",
            () => {
              released++;
              reject(signal.reason);
            },
            { once: true },
          );
        }),
    });
    const peer = peerClientFor(node!.address);
    try {
      const callers = [new AbortController(), new AbortController()];
      const asks = ["p", "q"].map((key, i) =>
        peer.get("scores", key, { cacheOnly: false, signal: callers[i]!.signal }),
      );
      await sleep(100);
      for (const caller of callers) caller.abort(new Error("gone"));
      const results = await Promise.allSettled(asks);
      expect(results.map((r) => r.status)).toEqual(["rejected", "rejected"]);
      const deadline = performance.now() + 2_000;
      while (released < 2 && performance.now() < deadline) await sleep(20);
      expect(released).toBe(2);
      expect(node!.group.stats().loadsInFlight).toBe(0);
      expect(peer.breaker.state).toBe("closed"); // abandoned, not failed
    } finally {
      peer.close();
    }
  });

  it("the peer client maps a batch's deadline and the peer's status to its keys", async () => {
    const [node] = await startCluster(1, {}, undefined, {
      getter: async (key) => {
        if (key === "slow") await sleep(2_000);
        return `value of ${key}`;
      },
    });
    const peer = peerClientFor(node!.address, 300);
    try {
      const [fast, slow] = await Promise.allSettled(
        ["fast", "slow"].map((key) => peer.get("scores", key, { cacheOnly: false })),
      );
      expect(text((fast as PromiseFulfilledResult<PeerValue>).value.value)).toBe("value of fast");
      const late = (slow as PromiseRejectedResult).reason;
      expect(late).toBeInstanceOf(ConnectError);
      expect((late as ConnectError).code).toBe(Code.DeadlineExceeded);
      // The peer answered part of the batch: it is up.
      expect(peer.breaker.state).toBe("closed");
      const unknown = await Promise.allSettled(
        ["a", "b"].map((key) => peer.get("nope", key, { cacheOnly: false })),
      );
      for (const result of unknown) {
        const error = (result as PromiseRejectedResult).reason as ConnectError;
        expect(error.code).toBe(Code.FailedPrecondition);
        expect(error.rawMessage).toBe("no such group: nope");
      }
      expect(peer.breaker.state).toBe("closed");
    } finally {
      peer.close();
    }
  });

  it("a batch waits past the peer timeout while the owner keeps answering, not when it goes quiet", async () => {
    let order = 0;
    const [node] = await startCluster(1, {}, undefined, {
      // One key after another, 150 ms apart: the last one comes after 750 ms.
      getter: async (key) => {
        const turn = ++order;
        await sleep(150 * turn);
        if (key === "quiet") await sleep(10_000);
        return `value of ${key}`;
      },
    });
    const peer = peerClientFor(node!.address, 400);
    try {
      const started = performance.now();
      const values = await Promise.all(
        ["a", "b", "c", "d", "e"].map((key) => peer.get("scores", key, { cacheOnly: false })),
      );
      expect(values.map((v) => text(v!.value))).toEqual(
        ["a", "b", "c", "d", "e"].map((k) => `value of ${k}`),
      );
      expect(performance.now() - started).toBeGreaterThan(700);
      // A key that takes long after the last answer: given up one peer timeout later.
      order = 0;
      const t = performance.now();
      const [ok, quiet] = await Promise.allSettled(
        ["f", "quiet"].map((key) => peer.get("scores", key, { cacheOnly: false })),
      );
      expect(ok!.status).toBe("fulfilled");
      expect(((quiet as PromiseRejectedResult).reason as ConnectError).code).toBe(
        Code.DeadlineExceeded,
      );
      const waited = performance.now() - t;
      expect(waited).toBeGreaterThanOrEqual(150 + 390);
      expect(waited).toBeLessThan(150 + 400 + 300);
    } finally {
      peer.close();
    }
  });

  it("the FetchMany fast path refuses malformed requests with gRPC statuses and keeps serving", async () => {
    const [node] = await startCluster(1);
    const session = http2.connect(`http://${node!.address}`);
    try {
      const path = "/distcache.peer.v1.PeerService/FetchMany";
      const request = toBinary(
        FetchManyRequestSchema,
        create(FetchManyRequestSchema, {
          sender: makeSender(node!.address, 0n),
          group: "scores",
          keys: ["Tom", "Jack"],
        }),
      );
      const call = (body: Uint8Array | undefined, headers: http2.OutgoingHttpHeaders = {}) =>
        rawCall(session, { path, body, headers });
      const cases: [Uint8Array | undefined, http2.OutgoingHttpHeaders, Code][] = [
        [undefined, {}, Code.Unimplemented], // no message
        [envelope(request).subarray(0, 8), {}, Code.InvalidArgument], // cut short
        [Buffer.concat([envelope(request), envelope(request)]), {}, Code.Unimplemented], // two
        [envelope(request, 1), {}, Code.Internal], // compressed without grpc-encoding
        [envelope(new Uint8Array([0xff, 0xff])), {}, Code.Internal], // not protobuf
        [envelope(request), { "grpc-timeout": "soon" }, Code.InvalidArgument],
      ];
      for (const [body, headers, code] of cases) {
        const answer = await call(body, headers);
        expect([answer.status, answer.grpcStatus], answer.grpcMessage).toEqual([200, code]);
      }
      const huge = Buffer.alloc(5);
      huge.writeUInt32BE(64 << 20, 1);
      expect((await call(huge)).grpcStatus).toBe(Code.ResourceExhausted);
      const ok = await call(envelope(request));
      expect(ok.grpcStatus).toBe(0);
      const results = [];
      for (let at = 0; at < ok.body.byteLength; at += 5 + ok.body.readUInt32BE(at + 1)) {
        const message = ok.body.subarray(at + 5, at + 5 + ok.body.readUInt32BE(at + 1));
        results.push(...fromBinary(FetchManyResponseSchema, message).results);
      }
      results.sort((a, b) => a.index - b.index);
      expect(results.map((r) => [r.index, text(r.data)])).toEqual([
        [0, "630"],
        [1, "589"],
      ]);
    } finally {
      session.close();
    }
  });
});
