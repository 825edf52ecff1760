// NodeServer on its own (a stub host, no pool): listen/close, what fastPaths
// switches, and the stream interception it relies on.
import * as http2 from "node:http2";
import { Group } from "@distcache/core";
import { afterEach, describe, expect, it } from "vitest";
import { SERVER_DEFAULTS } from "../options.js";
import { envelope, getRequestBytes, rawCall } from "../raw-h2.test-util.js";
import type { ServiceHost } from "./host.js";
import { interceptStreams, NodeServer } from "./server.js";

let release: () => void = () => {};
const gate = new Promise<void>((resolve) => {
  release = resolve;
});
const group = new Group("server-test", 1 << 20, async (key) => {
  if (key === "slow") await gate;
  return `v:${key}`;
});
const host: ServiceHost = {
  membershipVersion: () => 0n,
  group: (name) => (name === group.name ? group : undefined),
  heardFrom: () => {},
  epochSeen: () => 0,
};
const servers: NodeServer[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((server) => server.close()));
});

function server(options: Partial<typeof SERVER_DEFAULTS> = {}): NodeServer {
  const s = new NodeServer(host, { ...SERVER_DEFAULTS, drainTimeoutMs: 100, ...options });
  servers.push(s);
  return s;
}

async function get(
  port: number,
  key = "Tom",
): Promise<{ contentType: unknown; status: number | undefined }> {
  const session = http2.connect(`http://127.0.0.1:${port}`);
  session.on("error", () => {});
  try {
    const answer = await rawCall(session, { body: envelope(getRequestBytes(group.name, key)) });
    return { contentType: answer.headers["content-type"], status: answer.grpcStatus };
  } finally {
    session.close();
  }
}

describe("NodeServer", () => {
  it("listens, refuses a second listen while serving, and may listen again after close", async () => {
    const s = server();
    expect(s.address).toBeUndefined();
    await s.listen("127.0.0.1", 0);
    const first = s.address!;
    expect(first.host).toBe("127.0.0.1");
    expect(first.port).toBeGreaterThan(0);
    await expect(s.listen("127.0.0.1", 0)).rejects.toThrow("already serving");
    await s.close();
    expect(s.address).toBeUndefined();
    await s.close(); // closing twice is a no-op
    await s.listen("127.0.0.1", 0);
    expect((await get(s.address!.port)).status).toBe(0);
  });

  it("fastPaths: a plain gRPC Get is answered by the fast path, or with fastPaths false by Connect", async () => {
    const fast = server();
    const pure = server({ fastPaths: false });
    await fast.listen("127.0.0.1", 0);
    await pure.listen("127.0.0.1", 0);
    expect(await get(fast.address!.port)).toEqual({ contentType: "application/grpc", status: 0 });
    expect(await get(pure.address!.port)).toEqual({
      contentType: "application/grpc+proto",
      status: 0,
    });
  });

  it("with fastPaths false, admission still runs in front of Connect", async () => {
    const pure = server({ fastPaths: false, maxRequestsInFlight: 1 });
    await pure.listen("127.0.0.1", 0);
    const port = pure.address!.port;
    const slow = get(port, "slow");
    while (pure.stats().inFlight < 1) await new Promise((r) => setTimeout(r, 5));
    // Shed by the guard (RESOURCE_EXHAUSTED, in the content type asked), not by Connect.
    expect(await get(port)).toEqual({ contentType: "application/grpc", status: 8 });
    expect(pure.stats().shedInFlight).toBe(1);
    release();
    expect(await slow).toEqual({ contentType: "application/grpc+proto", status: 0 });
  });

  it("a second listen while the first is pending is refused; a close while it is pending closes it", async () => {
    const s = server();
    const first = s.listen("127.0.0.1", 0);
    await expect(s.listen("127.0.0.1", 0)).rejects.toThrow("already serving");
    await first;
    expect(s.address?.port).toBeGreaterThan(0);
    await s.close();

    const t = server();
    const pending = t.listen("127.0.0.1", 0);
    const closed = t.close();
    await pending;
    await closed;
    expect(t.address).toBeUndefined();
    // And it may listen again after the close.
    await t.listen("127.0.0.1", 0);
    expect(t.address?.port).toBeGreaterThan(0);
  });

  it("a guard limit out of range is refused at construction", () => {
    expect(() => server({ maxConcurrentStreams: 0 })).toThrow(RangeError);
  });

  it("owns the peer request counters, starting at zero", () => {
    expect(server().received).toEqual({
      fetch: 0,
      fetchMany: 0,
      fetchManyKeys: 0,
      introduce: 0,
      exchanges: 0,
      store: 0,
      storeMany: 0,
      storeManyItems: 0,
      invalidate: 0,
      membershipMismatches: 0,
    });
  });
});

describe("pieces", () => {
  it("interceptStreams refuses a server without a request listener", () => {
    const bare = http2.createServer();
    expect(() => interceptStreams(bare, () => false)).toThrow(/no request listener/);
  });
});
