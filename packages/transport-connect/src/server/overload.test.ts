// Overload and connection limits on real nodes: past the in-flight limit or while
// the event loop lags a node answers RESOURCE_EXHAUSTED / UNAVAILABLE at once;
// connections, idle sessions and streams nobody reads are bounded.
import * as http2 from "node:http2";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-node";
import type { Getter } from "@distcache/core";
import * as grpc from "@grpc/grpc-js";
import { afterEach, describe, expect, it } from "vitest";
import { CacheService } from "../gen/distcache/cache_pb.js";
import { ConnectPool } from "../pool.js";
import {
  connect,
  demo,
  envelope,
  eventually,
  expectServing,
  GROUP,
  getRequestBytes,
  getResponse,
  type Node,
  type RawAnswer,
  rawCall,
  startNode,
} from "../raw-h2.test-util.js";

/** "At once", with room for a loaded 2-core CI machine. */
const PROMPT_MS = 1_000;

const started: Node[] = [];
const sessions: http2.ClientHttp2Session[] = [];
afterEach(async () => {
  for (const session of sessions.splice(0)) session.destroy();
  await Promise.all(started.splice(0).map((node) => node.close()));
});

async function node(options: Parameters<typeof startNode>[0], getter?: Getter): Promise<Node> {
  const n = await startNode(options, getter);
  started.push(n);
  return n;
}

async function session(n: Node): Promise<http2.ClientHttp2Session> {
  const s = await connect(n);
  sessions.push(s);
  return s;
}

/** A getter whose `block:` keys wait for `release()`; other keys are the demo rows. */
function blockingGetter() {
  let open!: () => void;
  const gate = new Promise<void>((resolve) => {
    open = resolve;
  });
  const getter: Getter = async (key, context) => {
    if (!key.startsWith("block:")) return demo(key, context);
    await gate;
    return `value of ${key}`;
  };
  return { getter, release: () => open() };
}

const get = (s: http2.ClientHttp2Session, key: string, timeoutMs = 10_000): Promise<RawAnswer> =>
  rawCall(s, { body: envelope(getRequestBytes(GROUP, key)), timeoutMs });

/**
 * Keeps this thread busy — the node's event loop included — for `ms` of CPU
 * time (not wall time, so a loaded machine cannot make it a shorter burst of
 * work than the test means).
 */
function busy(ms: number): void {
  const cpu = () => {
    const { user, system } = process.cpuUsage();
    return (user + system) / 1_000;
  };
  const until = cpu() + ms;
  while (cpu() < until) {
    // spin
  }
}

/** A full GC, for heap comparisons. */
function collect(): void {
  setFlagsFromString("--expose-gc");
  (runInNewContext("gc") as () => void)();
}

describe("options", () => {
  it("a limit that is not a whole number >= 0 (>= 1 where 0 would refuse everything) is refused at construction", () => {
    for (const options of [
      { maxRequestsInFlight: -1 },
      { maxEventLoopDelayMs: 0.5 },
      { maxConnections: Number.POSITIVE_INFINITY },
      { maxConcurrentStreams: 0 },
      { maxHeaderListBytes: 0 },
    ]) {
      expect(() => new ConnectPool("127.0.0.1:1", { server: options })).toThrow(RangeError);
    }
    expect(
      () => new ConnectPool("127.0.0.1:1", { server: { maxRequestsInFlight: 0 } }),
    ).not.toThrow();
  });
});

describe("maxRequestsInFlight", () => {
  it("sheds past the limit with RESOURCE_EXHAUSTED at once; after release everything completes and the count returns to 0", async () => {
    const { getter, release } = blockingGetter();
    const n = await node({ server: { maxRequestsInFlight: 8 } }, getter);
    const s = await session(n);
    const held = Array.from({ length: 8 }, (_, i) => get(s, `block:${i}`));
    await eventually(() => n.pool.stats().guard.inFlight === 8);

    const before = performance.now();
    const shed = await Promise.all(Array.from({ length: 20 }, () => get(s, "Tom")));
    expect(performance.now() - before).toBeLessThan(PROMPT_MS);
    for (const answer of shed) {
      expect(answer.grpcStatus).toBe(Code.ResourceExhausted);
      expect(answer.grpcMessage).toBe("overloaded: 8 requests in flight, the limit is 8");
    }
    // Every protocol and client maps the answer to the same code.
    const connectError = await n.connect.get({ group: GROUP, key: "Tom" }).catch(ConnectError.from);
    expect(connectError).toMatchObject({ code: Code.ResourceExhausted });
    const web = createClient(
      CacheService,
      createGrpcWebTransport({ baseUrl: n.url, httpVersion: "2" }),
    );
    const webError = await web.get({ group: GROUP, key: "Tom" }).catch(ConnectError.from);
    expect(webError).toMatchObject({ code: Code.ResourceExhausted });
    const grpcJs = new grpc.Client(`127.0.0.1:${n.port}`, grpc.credentials.createInsecure());
    try {
      const code = await new Promise<grpc.status | undefined>((resolve) => {
        grpcJs.makeUnaryRequest(
          "/distcache.CacheService/Get",
          (request: Buffer) => request,
          (response: Buffer) => response,
          getRequestBytes(GROUP, "Tom"),
          (error) => resolve(error?.code),
        );
      });
      expect(code).toBe(grpc.status.RESOURCE_EXHAUSTED);
    } finally {
      grpcJs.close();
    }
    const stats = n.pool.stats().guard;
    expect(stats.shedInFlight).toBe(23);
    expect(stats.inFlight).toBe(8);
    expect(n.calls.has("Tom")).toBe(false); // no shed request reached the getter

    release();
    for (const [i, answer] of (await Promise.all(held)).entries()) {
      expect(answer.grpcStatus).toBe(0);
      expect(getResponse(answer)).toMatchObject({ found: true });
      expect(Buffer.from(getResponse(answer).data).toString()).toBe(`value of block:${i}`);
    }
    await eventually(() => n.pool.stats().guard.inFlight === 0);
    await expectServing(n);
  });

  it("a Connect streaming call shed while full ends as a Connect stream ends, and the node still closes promptly", async () => {
    const { Health } = await import("../gen/grpc/health/v1/health_pb.js");
    const { createConnectTransport } = await import("@connectrpc/connect-node");
    const { getter, release } = blockingGetter();
    const n = await node({ server: { maxRequestsInFlight: 1 } }, getter);
    const s = await session(n);
    const held = get(s, "block:1");
    await eventually(() => n.pool.stats().guard.inFlight === 1);
    const health = createClient(
      Health,
      createConnectTransport({ baseUrl: n.url, httpVersion: "2" }),
    );
    const watched = (async () => {
      for await (const _ of health.watch({ service: "" })) break;
    })();
    const error = await watched.then(() => undefined, ConnectError.from);
    expect(error).toMatchObject({
      code: Code.ResourceExhausted,
      rawMessage: "overloaded: 1 requests in flight, the limit is 1",
    });
    release();
    expect((await held).grpcStatus).toBe(0);
    // The refused stream leaves nothing open: close finishes within the drain time, not at a client's timeout.
    const closing = performance.now();
    await n.close();
    expect(performance.now() - closing).toBeLessThan(5_000);
  });

  it("a burst of 2 000 requests against a full node leaves no memory behind", async () => {
    const { getter, release } = blockingGetter();
    const n = await node({ server: { maxRequestsInFlight: 16 } }, getter);
    const s = await session(n);
    const held = Array.from({ length: 16 }, (_, i) => get(s, `block:${i}`));
    await eventually(() => n.pool.stats().guard.inFlight === 16);
    // Warm up the shed path, then measure.
    await Promise.all(Array.from({ length: 200 }, () => get(s, "Tom")));
    collect();
    const heapBefore = process.memoryUsage().heapUsed;
    for (let batch = 0; batch < 4; batch++) {
      const answers = await Promise.all(Array.from({ length: 500 }, () => get(s, `k${batch}`)));
      for (const answer of answers) expect(answer.grpcStatus).toBe(Code.ResourceExhausted);
      expect(n.pool.stats().guard.inFlight).toBe(16);
    }
    collect();
    const grown = process.memoryUsage().heapUsed - heapBefore;
    // A stuck request costs ~40 KiB: 2 000 kept would be ~80 MiB.
    expect(grown).toBeLessThan(4 << 20);
    expect(n.pool.stats().guard.shedInFlight).toBe(2_200);
    release();
    await Promise.all(held);
    await eventually(() => n.pool.stats().guard.inFlight === 0);
  });
});

describe("maxEventLoopDelayMs", () => {
  it("sheds with UNAVAILABLE right after the loop was blocked, and serves again once it catches up", async () => {
    const n = await node({ server: { maxEventLoopDelayMs: 100 } });
    const s = await session(n);
    expect(getResponse(await get(s, "Tom")).found).toBe(true);

    busy(300);
    // Sent the moment the loop is free again: read while the lag is fresh.
    const keys = ["Tom", "Jack", "Sam"];
    const after = await Promise.all(keys.map((key) => get(s, key)));
    const shed = after.filter((answer) => answer.grpcStatus === Code.Unavailable);
    expect(shed.length).toBeGreaterThanOrEqual(1);
    expect(after[0]!.grpcStatus).toBe(Code.Unavailable);
    for (const answer of shed) {
      expect(answer.grpcMessage).toMatch(/^overloaded: event loop delay \d+ ms is over 100 ms$/);
      expect(answer.answeredMs).toBeLessThan(PROMPT_MS);
    }
    expect(n.pool.stats().guard.shedEventLoopDelay).toBe(shed.length);
    for (const [i, answer] of after.entries()) {
      // A shed request never reached the getter; one admitted after recovery was served.
      if (answer.grpcStatus === Code.Unavailable) expect(n.calls.has(keys[i]!)).toBe(i === 0);
      else expect(answer.grpcStatus).toBe(0);
    }

    // Recovers within a probe interval or two.
    const blockEnded = performance.now();
    let answer = await get(s, "Tom");
    while (answer.grpcStatus !== 0 && performance.now() - blockEnded < PROMPT_MS) {
      await new Promise((r) => setTimeout(r, 10));
      answer = await get(s, "Tom");
    }
    expect(answer.grpcStatus).toBe(0);
    expect(n.pool.stats().guard.eventLoopDelayMs).toBeLessThan(100);

    // A Connect client reads the shed as Code.Unavailable.
    busy(300);
    const error = await n.connect.get({ group: GROUP, key: "Tom" }).catch(ConnectError.from);
    expect(error).toMatchObject({ code: Code.Unavailable });
    await eventually(() => n.pool.stats().guard.eventLoopDelayMs < 100);
    await expectServing(n);
  });

  it("a loop held up without using the CPU (the OS not running the process) sheds nothing", async () => {
    const n = await node({ server: { maxEventLoopDelayMs: 100 } });
    const s = await session(n);
    await get(s, "Tom");
    // Blocks this thread for 300 ms asleep, as a descheduled process would be.
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 300);
    const answers = await Promise.all(["Tom", "Jack", "Sam"].map((key) => get(s, key)));
    for (const answer of answers) expect(answer.grpcStatus).toBe(0);
    expect(n.pool.stats().guard.shedEventLoopDelay).toBe(0);
  });

  it("0 turns the probe off: a blocked loop sheds nothing", async () => {
    const n = await node({ server: { maxEventLoopDelayMs: 0 } });
    const s = await session(n);
    await get(s, "Tom");
    busy(300);
    const answer = await get(s, "Tom");
    expect(answer.grpcStatus).toBe(0);
    expect(n.pool.stats().guard).toMatchObject({ shedEventLoopDelay: 0, eventLoopDelayMs: 0 });
  });
});

describe("connections", () => {
  it("past maxConnections a connection is closed on accept; idle sessions get GOAWAY; the node keeps serving", async () => {
    const n = await node({ server: { maxConnections: 4, idleSessionTimeoutMs: 300 } });
    const open = await Promise.all(Array.from({ length: 4 }, () => session(n)));
    await eventually(() => n.pool.stats().guard.sessions === 4);

    // Three more: each closed at once, none becomes a session.
    for (let i = 0; i < 3; i++) {
      const before = performance.now();
      const extra = http2.connect(n.url);
      extra.on("error", () => {});
      sessions.push(extra);
      await new Promise<void>((resolve) => extra.once("close", () => resolve()));
      expect(performance.now() - before).toBeLessThan(PROMPT_MS);
    }
    expect(n.pool.stats().guard).toMatchObject({ refusedConnections: 3, sessions: 4 });

    // The four sessions have no stream: GOAWAY after ~300 ms, and the slots are free.
    const idleSince = performance.now();
    await Promise.all(
      open.map((s) => new Promise<void>((resolve) => s.once("close", () => resolve()))),
    );
    const idleFor = performance.now() - idleSince;
    expect(idleFor).toBeGreaterThanOrEqual(150);
    expect(idleFor).toBeLessThan(300 + PROMPT_MS);
    // The server counts a session gone on its own "close", which can follow the client's.
    await eventually(() => n.pool.stats().guard.sessions === 0);
    expect(n.pool.stats().guard).toMatchObject({ closedIdleSessions: 4, sessions: 0 });
    await expectServing(n);
  });

  it("a session with a stream in flight is not idle, however long the stream takes", async () => {
    const { getter, release } = blockingGetter();
    const n = await node({ server: { idleSessionTimeoutMs: 150 } }, getter);
    const s = await session(n);
    let closedAt = 0;
    s.once("close", () => {
      closedAt = performance.now();
    });
    const call = get(s, "block:idle");
    await new Promise((r) => setTimeout(r, 500));
    expect(s.closed || s.destroyed).toBe(false);
    release();
    const answer = await call;
    const answeredAt = performance.now();
    expect(getResponse(answer)).toMatchObject({ found: true });
    await eventually(() => closedAt > 0);
    expect(closedAt - answeredAt).toBeGreaterThanOrEqual(100);
    expect(n.pool.stats().guard.closedIdleSessions).toBe(1);
  });
});

describe("streams nobody reads", () => {
  const big = (key: string) => `${key}:`.padEnd(64 << 10, "x");

  it("are bounded by maxConcurrentStreams per session; the node keeps serving other clients", async () => {
    const n = await node({ server: { maxConcurrentStreams: 20 } }, (key, context) =>
      key.startsWith("big") ? big(key) : demo(key, context),
    );
    const s = await session(n);
    await eventually(() => s.remoteSettings.maxConcurrentStreams === 20);
    const heapBefore = process.memoryUsage().heapUsed;
    // 60 calls whose 64 KiB answers are never read: flow control stops the
    // server after the first window; the client queues past 20 streams.
    for (let i = 0; i < 60; i++) {
      const stream = s.request({
        ":method": "POST",
        ":path": "/distcache.CacheService/Get",
        "content-type": "application/grpc",
        te: "trailers",
      });
      stream.on("error", () => {});
      stream.end(envelope(getRequestBytes(GROUP, `big${i}`)));
    }
    await eventually(() => n.pool.stats().guard.inFlight === 20);
    await new Promise((r) => setTimeout(r, 200));
    expect(n.pool.stats().guard.inFlight).toBe(20);
    expect([...n.calls.keys()].filter((k) => k.startsWith("big"))).toHaveLength(20); // the other 40 wait at the client
    expect(process.memoryUsage().heapUsed - heapBefore).toBeLessThan(32 << 20);

    await expectServing(n);
    s.destroy();
    await eventually(() => n.pool.stats().guard.inFlight === 0);
  });

  it("streams a client opens past the limit before it has heard it are refused (REFUSED_STREAM)", async () => {
    const n = await node({ server: { maxConcurrentStreams: 20 } }, (key, context) =>
      key.startsWith("big") ? big(key) : demo(key, context),
    );
    // Requests sent in the first flight, before the server's SETTINGS arrive:
    // the client still assumes 100 streams.
    const s = http2.connect(n.url);
    s.on("error", () => {});
    sessions.push(s);
    let refused = 0;
    for (let i = 0; i < 40; i++) {
      const stream = s.request({
        ":method": "POST",
        ":path": "/distcache.CacheService/Get",
        "content-type": "application/grpc",
        te: "trailers",
      });
      stream.on("error", () => {});
      // Unread answers hold the accepted streams open; a refused one closes at once.
      stream.once("close", () => {
        if (stream.rstCode === http2.constants.NGHTTP2_REFUSED_STREAM) refused++;
      });
      stream.end(envelope(getRequestBytes(GROUP, `big${i}`)));
    }
    await eventually(() => refused === 20 && n.pool.stats().guard.inFlight === 20);
    await new Promise((r) => setTimeout(r, 100));
    expect(refused).toBe(20);
    expect(n.pool.stats().guard.inFlight).toBe(20);
    await expectServing(n);
  });

  it("large answers count against maxBufferedBytes: fast-path ones before they are made, Connect's as written (reset ENHANCE_YOUR_CALM past the budget)", async () => {
    // A quarter of 4 MiB per address: two 400 KiB answers fit, not many more.
    const n = await node({ server: { maxBufferedBytes: 4 << 20 } }, (key, context) =>
      key.startsWith("large") ? `${key}:`.padEnd(400 << 10, "x") : demo(key, context),
    );
    const s = http2.connect(n.url, { settings: { initialWindowSize: 0 } });
    s.on("error", () => {});
    sessions.push(s);
    const answers = (contentType: string, body: Buffer, from: number) =>
      Array.from({ length: 6 }, (_, i) =>
        rawCall(s, {
          contentType,
          body:
            contentType === "application/grpc+json"
              ? envelope(Buffer.from(JSON.stringify({ group: GROUP, key: `large${from + i}` })))
              : body,
          timeoutMs: 20_000,
        }),
      );
    // gRPC JSON goes to Connect: each answer is a copy, counted as Connect writes it.
    const json = answers("application/grpc+json", Buffer.alloc(0), 0);
    await eventually(() => n.pool.stats().guard.shedResponses > 0, 10_000);
    const resets = (await Promise.race([
      Promise.all(json),
      new Promise<undefined>((r) => setTimeout(() => r(undefined), 2_000)),
    ])) as RawAnswer[] | undefined;
    // The refused ones are reset at once; the ones that fit wait for a window that never opens.
    expect(resets).toBeUndefined();
    expect(n.pool.stats().guard.bufferedBytes).toBeLessThanOrEqual(1 << 20);
    // The fast path counts a large answer before making it: on the same
    // unread session, what would pass the address's quarter is refused in-band.
    const fast = Array.from({ length: 3 }, (_, i) =>
      rawCall(s, { body: envelope(getRequestBytes(GROUP, `large-fast${i}`)), timeoutMs: 20_000 }),
    );
    const refusedFast = await Promise.race([
      Promise.all(fast.slice(1)),
      new Promise<undefined>((r) => setTimeout(() => r(undefined), 10_000)),
    ]);
    expect(refusedFast?.map((a) => a.grpcStatus)).toEqual([
      Code.ResourceExhausted,
      Code.ResourceExhausted,
    ]);
    expect(refusedFast![0]!.grpcMessage).toMatch(/^overloaded: \d+ response bytes unread by /);
    await expectServing(n);
    s.destroy();
    const settled = await Promise.all(json);
    expect(settled.some((a) => a.rstCode === http2.constants.NGHTTP2_ENHANCE_YOUR_CALM)).toBe(true);
    await eventually(
      () => n.pool.stats().guard.bufferedBytes === 0 && n.pool.stats().guard.inFlight === 0,
    );
  });

  it("a default node advertises 1 000 concurrent streams", async () => {
    const n = await node({});
    const s = await session(n);
    await eventually(() => s.remoteSettings.maxConcurrentStreams === 1_000);
  });
});
