// Peer authentication against a real 3-node cluster on loopback: every
// PeerService method called by outsiders (no credentials, a wrong secret, a
// non-member with the right secret, a member's credentials with another
// sender in the body) over grpc-js (the fast path for FetchMany) and Connect,
// refused before the body is read, counted, nothing written or deleted; and a
// secret rotation under a read/write checker.
import * as http2 from "node:http2";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport, Http2SessionManager } from "@connectrpc/connect-node";
import * as grpc from "@grpc/grpc-js";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { PEER_AUTH_HEADER, PEER_HEADER, peerToken } from "./auth/peer-token.js";
import { startCluster, type TestNode, text } from "./cluster.test-util.js";
import { grpcServiceFromProto } from "./foreign-clients.test-util.js";
import { PeerService } from "./gen/distcache/peer/v1/peer_pb.js";

const SECRET = "cluster-secret-0123456789abcdef";
const WRONG = "not-the-secret-0123456789abcdef";
const OUTSIDER = "127.0.0.1:9";

type Callback = (error: grpc.ServiceError | null, response?: unknown) => void;
type UnaryMethod = (
  request: object,
  metadata: grpc.Metadata,
  options: grpc.CallOptions,
  callback: Callback,
) => grpc.ClientUnaryCall;
interface GrpcPeerClient extends grpc.Client {
  Fetch: UnaryMethod;
  Store: UnaryMethod;
  StoreMany: UnaryMethod;
  Invalidate: UnaryMethod;
  FetchMany: (request: object, metadata: grpc.Metadata) => grpc.ClientReadableStream<unknown>;
}

/** A grpc-js client of PeerService, from peer.proto parsed at run time. */
function grpcPeerClient(address: string): GrpcPeerClient {
  const PeerServiceClient = grpcServiceFromProto(
    "distcache/peer/v1/peer.proto",
    "distcache.peer.v1.PeerService",
  );
  return new PeerServiceClient(
    address,
    grpc.credentials.createInsecure(),
  ) as unknown as GrpcPeerClient;
}

/** The status code a grpc-js call ended with (0 for OK). */
function unaryStatus(
  client: GrpcPeerClient,
  method: UnaryMethod,
  request: object,
  headers: Headers,
) {
  return new Promise<number>((resolve) => {
    method.call(client, request, metadata(headers), { deadline: Date.now() + 5_000 }, (error) =>
      resolve(error === null ? 0 : error.code),
    );
  });
}

function streamStatus(client: GrpcPeerClient, request: object, headers: Headers) {
  return new Promise<number>((resolve) => {
    const call = client.FetchMany(request, metadata(headers));
    call.on("data", () => {});
    call.on("status", (status: grpc.StatusObject) => resolve(status.code));
    call.on("error", () => {});
  });
}

type Headers = Record<string, string>;

function metadata(headers: Headers): grpc.Metadata {
  const result = new grpc.Metadata();
  for (const [name, value] of Object.entries(headers)) result.set(name, value);
  return result;
}

/** The Connect-protocol status of a FetchMany (it goes to Connect, not the fast path). */
async function connectFetchManyCode(address: string, body: object, headers: Headers) {
  const sessionManager = new Http2SessionManager(`http://${address}`);
  const client = createClient(
    PeerService,
    createConnectTransport({ baseUrl: `http://${address}`, httpVersion: "2", sessionManager }),
  );
  try {
    for await (const _ of client.fetchMany(body as never, { headers, timeoutMs: 5_000 })) {
      // drain
    }
    return 0;
  } catch (error) {
    return ConnectError.from(error).code;
  } finally {
    sessionManager.abort();
  }
}

describe("peer authentication with a shared secret", () => {
  // startCluster's nodes are closed after each test: every test starts its own.
  let nodes: TestNode[];
  let target: TestNode;
  let member: string;
  let other: string;
  const clients: GrpcPeerClient[] = [];
  const grpcPeer = (address: string) => {
    const made = grpcPeerClient(address);
    clients.push(made);
    return made;
  };

  beforeEach(async () => {
    nodes = await startCluster(3, { peer: { secrets: [SECRET] } });
    target = nodes[0]!;
    member = nodes[1]!.address;
    other = nodes[2]!.address;
  });
  afterEach(() => {
    for (const made of clients.splice(0)) made.close();
  });

  /** Credentials of each kind, the body's sender address, and the code the node must answer. */
  const cases = () =>
    [
      { name: "no credentials", headers: {}, sender: member, code: Code.Unauthenticated },
      {
        name: "a wrong secret",
        headers: { [PEER_HEADER]: member, [PEER_AUTH_HEADER]: peerToken(WRONG, member) },
        sender: member,
        code: Code.Unauthenticated,
      },
      {
        name: "a member's address without a token",
        headers: { [PEER_HEADER]: member },
        sender: member,
        code: Code.Unauthenticated,
      },
      {
        name: "the right secret but not a member",
        headers: { [PEER_HEADER]: OUTSIDER, [PEER_AUTH_HEADER]: peerToken(SECRET, OUTSIDER) },
        sender: OUTSIDER,
        code: Code.PermissionDenied,
      },
      {
        name: "a member's credentials with another sender in the body",
        headers: { [PEER_HEADER]: member, [PEER_AUTH_HEADER]: peerToken(SECRET, member) },
        sender: other,
        code: Code.PermissionDenied,
      },
    ] as const;

  it("refuses every PeerService method, writes and deletes nothing, counts, keeps serving", async () => {
    const client = grpcPeer(target.address);
    // Tom is cached on every node; a forged Invalidate must not make it load again.
    for (const node of nodes)
      expect(text((await node.client.get({ group: "scores", key: "Tom" })).data)).toBe("630");
    const loadsBefore = nodes.reduce((sum, node) => sum + node.loads.length, 0);
    const before = target.pool.stats().auth;
    let unauthenticated = 0;
    let denied = 0;
    for (const c of cases()) {
      const sender = { address: c.sender, membership_version: "0" };
      const got = {
        fetch: await unaryStatus(
          client,
          client.Fetch,
          { sender, group: "scores", key: "Tom" },
          c.headers,
        ),
        fetchManyFast: await streamStatus(
          client,
          { sender, group: "scores", keys: ["Tom"] },
          c.headers,
        ),
        fetchManyConnect: await connectFetchManyCode(
          target.address,
          { sender: { address: c.sender }, group: "scores", keys: ["Tom"] },
          c.headers,
        ),
        store: await unaryStatus(
          client,
          client.Store,
          {
            sender,
            group: "scores",
            key: "Mallory",
            data: Buffer.from("forged"),
            replicate: true,
            write: true,
          },
          c.headers,
        ),
        storeMany: await unaryStatus(
          client,
          client.StoreMany,
          { sender, group: "scores", items: [{ key: "Eve", data: Buffer.from("forged") }] },
          c.headers,
        ),
        invalidate: await unaryStatus(
          client,
          client.Invalidate,
          { sender, group: "scores", key: "Tom", fan_out: true },
          c.headers,
        ),
      };
      expect(got, c.name).toEqual({
        fetch: c.code,
        fetchManyFast: c.code,
        fetchManyConnect: c.code,
        store: c.code,
        storeMany: c.code,
        invalidate: c.code,
      });
      if (c.code === Code.Unauthenticated) unauthenticated += 6;
      else denied += 6;
    }
    const after = target.pool.stats().auth;
    expect(after.peerUnauthenticated - before.peerUnauthenticated).toBe(unauthenticated);
    expect(after.peerPermissionDenied - before.peerPermissionDenied).toBe(denied);
    // Nothing stored, nothing deleted, on any node; every node still serves.
    for (const node of nodes) {
      expect((await node.client.get({ group: "scores", key: "Mallory" })).found).toBe(false);
      expect((await node.client.get({ group: "scores", key: "Eve" })).found).toBe(false);
      expect(text((await node.client.get({ group: "scores", key: "Tom" })).data)).toBe("630");
    }
    const missLoads = nodes.reduce((sum, node) => sum + node.loads.length, 0) - loadsBefore;
    // Mallory and Eve miss everywhere (each load is on its owner); Tom never loads again.
    expect(nodes.flatMap((node) => node.loads).filter((key) => key === "Tom")).toHaveLength(1);
    expect(missLoads).toBeGreaterThan(0);
  });

  it("accepts a member's valid credentials (the refusals above are not a broken port)", async () => {
    const client = grpcPeer(target.address);
    const headers = { [PEER_HEADER]: member, [PEER_AUTH_HEADER]: peerToken(SECRET, member) };
    const sender = { address: member, membership_version: "0" };
    expect(
      await unaryStatus(client, client.Fetch, { sender, group: "scores", key: "Tom" }, headers),
    ).toBe(0);
    expect(
      await streamStatus(client, { sender, group: "scores", keys: ["Tom", "Jack"] }, headers),
    ).toBe(0);
    // Two tokens (a node mid-rotation): one matching is enough.
    const rotating = {
      ...headers,
      [PEER_AUTH_HEADER]: `${peerToken(WRONG, member)},${headers[PEER_AUTH_HEADER]}`,
    };
    expect(
      await unaryStatus(client, client.Fetch, { sender, group: "scores", key: "Tom" }, rotating),
    ).toBe(0);
  });

  it("answers an unauthenticated call before its body arrives", async () => {
    const session = http2.connect(`http://${target.address}`);
    session.on("error", () => {});
    try {
      // Headers only: the body never comes, yet the status does.
      const stream = session.request({
        ":method": "POST",
        ":path": "/distcache.peer.v1.PeerService/Store",
        "content-type": "application/grpc",
        te: "trailers",
      });
      stream.on("error", () => {});
      const headers = await new Promise<http2.IncomingHttpHeaders>((resolve) =>
        stream.once("response", resolve),
      );
      expect(headers["grpc-status"]).toBe(String(Code.Unauthenticated));
      expect(decodeURIComponent(String(headers["grpc-message"]))).toContain("without credentials");
      stream.close();
    } finally {
      session.destroy();
    }
  });
});

describe("secret rotation", () => {
  it("[old] -> [new, old] -> [new], one node at a time, under reads and writes: no error", async () => {
    const OLD = "old-secret-0123456789abcdef";
    const NEW = "new-secret-0123456789abcdef";
    const nodes = await startCluster(3, { peer: { secrets: [OLD] } });
    const keys = Array.from({ length: 24 }, (_, i) => `k${i}`);
    const errors: string[] = [];
    let operations = 0;
    let running = true;
    const checker = (async () => {
      for (let round = 0; running && round < 100_000; round++) {
        const node = nodes[round % nodes.length]!;
        const key = keys[round % keys.length]!;
        try {
          if (round % 5 === 0) {
            const r = await node.client.set({
              group: "scores",
              key,
              data: new TextEncoder().encode(`s${round}`),
            });
            if (!r.success || r.err !== "") errors.push(`set ${key}: ${r.err}`);
          } else if (round % 7 === 0) {
            const r = await node.client.delete({ group: "scores", key });
            if (!r.success || r.err !== "") errors.push(`delete ${key}: ${r.err}`);
          } else {
            await node.client.get({ group: "scores", key });
          }
        } catch (error) {
          errors.push(`${key}: ${String(error)}`);
        }
        operations++;
      }
    })();
    const waitOps = async (n: number) => {
      const until = operations + n;
      for (let i = 0; i < 2_000 && operations < until; i++)
        await new Promise((r) => setTimeout(r, 10));
    };
    await waitOps(50);
    for (const node of nodes) {
      node.pool.setPeerSecrets(NEW, OLD);
      await waitOps(50);
    }
    for (const node of nodes) {
      node.pool.setPeerSecrets(NEW);
      await waitOps(50);
    }
    running = false;
    await checker;
    expect(errors).toEqual([]);
    expect(operations).toBeGreaterThan(300);
    expect(nodes.reduce((sum, n) => sum + n.pool.stats().auth.peerUnauthenticated, 0)).toBe(0);
    // Peer calls really ran (so the rotation was exercised) …
    const received = nodes.reduce(
      (sum, n) => sum + n.pool.stats().received.store + n.pool.stats().received.fetchMany,
      0,
    );
    expect(received).toBeGreaterThan(0);
    // … and a node left on [old] alone is now refused by the others.
    nodes[0]!.pool.setPeerSecrets(OLD);
    const key = keys.find((k) => nodes[0]!.pool.ownerOf(k) !== nodes[0]!.address)!;
    await nodes[0]!.client.delete({ group: "scores", key }).catch(() => {});
    expect(
      nodes.slice(1).reduce((sum, n) => sum + n.pool.stats().auth.peerUnauthenticated, 0),
    ).toBeGreaterThan(0);
  });
});
