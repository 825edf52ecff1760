// Client bearer tokens on a real node: Set and Delete need a write token,
// Get needs one only when a read token is configured; missing or unknown →
// UNAUTHENTICATED, read token on a write → PERMISSION_DENIED, all counted,
// over gRPC (the Get fast path), gRPC-Web and Connect.
import {
  Code,
  ConnectError,
  createClient,
  type Interceptor,
  type Transport,
} from "@connectrpc/connect";
import {
  createConnectTransport,
  createGrpcTransport,
  createGrpcWebTransport,
} from "@connectrpc/connect-node";
import { afterEach, describe, expect, it } from "vitest";
import { CacheService } from "./gen/distcache/cache_pb.js";
import { type Node, startNode } from "./raw-h2.test-util.js";

const WRITE = "w-token-0123456789";
const READ = "r-token-0123456789";
const bytes = (s: string) => new TextEncoder().encode(s);

const started: Node[] = [];
afterEach(async () => {
  await Promise.all(started.splice(0).map((node) => node.close()));
});

async function node(tokens: { write?: string[]; read?: string[] }): Promise<Node> {
  const made = await startNode({ server: { clientTokens: tokens } });
  started.push(made);
  return made;
}

/** A CacheService client of `url` over `protocol`, sending `token` if given. */
function clientOf(url: string, protocol: "grpc" | "grpc-web" | "connect", token?: string) {
  const interceptors: Interceptor[] =
    token === undefined
      ? []
      : [
          (next) => (request) => {
            request.header.set("authorization", `Bearer ${token}`);
            return next(request);
          },
        ];
  const transport: Transport =
    protocol === "grpc"
      ? createGrpcTransport({ baseUrl: url, interceptors })
      : protocol === "grpc-web"
        ? createGrpcWebTransport({ baseUrl: url, httpVersion: "2", interceptors })
        : createConnectTransport({ baseUrl: url, httpVersion: "2", interceptors });
  return createClient(CacheService, transport);
}

async function codeOf(call: Promise<unknown>): Promise<Code | 0> {
  try {
    await call;
    return 0;
  } catch (error) {
    return ConnectError.from(error).code;
  }
}

describe("client tokens", () => {
  it("Set and Delete need a write token; Get stays open without read tokens", async () => {
    const n = await node({ write: [WRITE] });
    for (const protocol of ["grpc", "grpc-web", "connect"] as const) {
      const anonymous = clientOf(n.url, protocol);
      const wrong = clientOf(n.url, protocol, "not-a-token");
      const writer = clientOf(n.url, protocol, WRITE);
      const set = (c: typeof anonymous) => c.set({ group: "scores", key: "Tom", data: bytes("1") });
      expect(await codeOf(set(anonymous)), protocol).toBe(Code.Unauthenticated);
      expect(await codeOf(set(wrong)), protocol).toBe(Code.Unauthenticated);
      expect(await codeOf(anonymous.delete({ group: "scores", key: "Tom" })), protocol).toBe(
        Code.Unauthenticated,
      );
      // Nothing was written: Tom is still the source's 630 (Get needs no token here).
      const read = await anonymous.get({ group: "scores", key: "Tom" });
      expect(new TextDecoder().decode(read.data)).toBe("630");
      expect((await writer.set({ group: "scores", key: "Tom", data: bytes("7") })).success).toBe(
        true,
      );
      expect(
        new TextDecoder().decode((await anonymous.get({ group: "scores", key: "Tom" })).data),
      ).toBe("7");
      expect((await writer.delete({ group: "scores", key: "Tom" })).success).toBe(true);
    }
    expect(n.pool.stats().auth.clientUnauthenticated).toBe(9);
  });

  it("with a read token configured, Get needs one; a read token cannot write", async () => {
    const n = await node({ write: [WRITE], read: [READ] });
    for (const protocol of ["grpc", "grpc-web", "connect"] as const) {
      const anonymous = clientOf(n.url, protocol);
      const reader = clientOf(n.url, protocol, READ);
      const writer = clientOf(n.url, protocol, WRITE);
      expect(await codeOf(anonymous.get({ group: "scores", key: "Jack" })), protocol).toBe(
        Code.Unauthenticated,
      );
      expect(
        new TextDecoder().decode((await reader.get({ group: "scores", key: "Jack" })).data),
      ).toBe("589");
      // A write token reads too.
      expect((await writer.get({ group: "scores", key: "Jack" })).found).toBe(true);
      expect(
        await codeOf(reader.set({ group: "scores", key: "Jack", data: bytes("0") })),
        protocol,
      ).toBe(Code.PermissionDenied);
      expect(await codeOf(reader.delete({ group: "scores", key: "Jack" })), protocol).toBe(
        Code.PermissionDenied,
      );
      expect(
        new TextDecoder().decode((await reader.get({ group: "scores", key: "Jack" })).data),
      ).toBe("589");
    }
    const auth = n.pool.stats().auth;
    expect(auth.clientUnauthenticated).toBe(3);
    expect(auth.clientPermissionDenied).toBe(6);
    // Jack loaded once: the refused Delete removed nothing.
    expect(n.calls.get("Jack")).toBe(1);
  });
});
