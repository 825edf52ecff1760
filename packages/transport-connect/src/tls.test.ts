// TLS and mutual TLS on real nodes over loopback, certificates made by
// openssl for the test: a cluster whose peers authenticate by certificate,
// clients that share no code with it (grpc-js, buf curl) over TLS, gRPC-Web
// over HTTP/1.1 on the same port, and the peers mTLS must refuse.
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import {
  createConnectTransport,
  createGrpcTransport,
  createGrpcWebTransport,
  Http2SessionManager,
} from "@connectrpc/connect-node";
import { Group, NotFoundError } from "@distcache/core";
import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { freePorts } from "../../../scripts/lib/ports.mjs";
import { makeTestCertificates, type TestCertificates } from "../../../scripts/lib/test-certs.mjs";
import { PEER_HEADER } from "./auth/peer-token.js";
import { bufCurl, grpcServiceFromProto, protoDir } from "./foreign-clients.test-util.js";
import { CacheService } from "./gen/distcache/cache_pb.js";
import { PeerService } from "./gen/distcache/peer/v1/peer_pb.js";
import { ConnectPool } from "./pool.js";

const ROWS: Record<string, string> = { Tom: "630", Jack: "589", Sam: "567" };

let certs: TestCertificates;
const pools: ConnectPool[] = [];
const loads: string[][] = [];
let addresses: string[];

beforeAll(async () => {
  certs = makeTestCertificates({
    node: "IP:127.0.0.1,DNS:localhost",
    elsewhere: "DNS:elsewhere.example,IP:10.9.9.9",
  });
  const node = certs.leaves.node!;
  addresses = (await freePorts(3)).map((port) => `127.0.0.1:${port}`);
  for (const address of addresses) {
    const loaded: string[] = [];
    loads.push(loaded);
    const pool = new ConnectPool(address, {
      tls: { cert: node.cert, key: node.key, ca: certs.ca },
      server: { drainTimeoutMs: 100 },
    });
    pool.setPeers(...addresses);
    // Each node serves group "scores-tls" through its own Group instance.
    const scores = new Group("scores-tls", 1 << 20, (key) => {
      loaded.push(key);
      const value = ROWS[key];
      if (value === undefined) throw new NotFoundError(key);
      return value;
    });
    scores.registerPeers(pool);
    await pool.serve();
    pools.push(pool);
  }
});
afterAll(async () => {
  await Promise.all(pools.map((pool) => pool.close()));
  certs?.remove();
});

/** A grpc-js client of `service` over TLS trusting the test CA, with an optional client certificate. */
function grpcClient(
  proto: string,
  service: string,
  address: string,
  clientCert?: { cert: string; key: string },
): grpc.Client {
  const ctor = grpcServiceFromProto(proto, service);
  const credentials = grpc.credentials.createSsl(
    Buffer.from(certs.ca),
    clientCert === undefined ? null : Buffer.from(clientCert.key),
    clientCert === undefined ? null : Buffer.from(clientCert.cert),
  );
  return new ctor(address, credentials);
}

function unary(
  client: grpc.Client,
  method: string,
  request: object,
  headers: Record<string, string> = {},
) {
  const metadata = new grpc.Metadata();
  for (const [name, value] of Object.entries(headers)) metadata.set(name, value);
  return new Promise<{ code: number; response: Record<string, unknown> | undefined }>((resolve) => {
    (client as unknown as Record<string, (...args: unknown[]) => void>)[method]!.call(
      client,
      request,
      metadata,
      { deadline: Date.now() + 5_000 },
      (error: grpc.ServiceError | null, response?: Record<string, unknown>) =>
        resolve({ code: error === null ? 0 : error.code, response }),
    );
  });
}

describe("a cluster over mutual TLS", () => {
  it("forwards between peers authenticated by certificate; grpc-js clients need only the CA", async () => {
    // Each Get enters at a node that does not own its key, so each is forwarded.
    const owners = Object.keys(ROWS).map((key) => addresses.indexOf(pools[0]!.ownerOf(key)));
    const clients = addresses.map((address) =>
      grpcClient("distcache/cache.proto", "distcache.CacheService", address),
    );
    try {
      for (const [i, key] of Object.keys(ROWS).entries()) {
        const entry = clients[(owners[i]! + 1) % clients.length]!;
        const { code, response } = await unary(entry, "Get", { group: "scores-tls", key });
        expect(code).toBe(0);
        expect(String(response?.data)).toBe(ROWS[key]);
      }
      // Each key loaded once, on its owner: peer calls went through over TLS.
      for (const [i, key] of Object.keys(ROWS).entries()) expect(loads[owners[i]!]).toContain(key);
      expect(loads.flat()).toHaveLength(3);
      const received = pools.reduce((sum, pool) => sum + pool.stats().received.fetchMany, 0);
      expect(received).toBeGreaterThanOrEqual(3);
    } finally {
      for (const client of clients) client.close();
    }
  });

  it("refuses a peer call without a client certificate (UNAUTHENTICATED)", async () => {
    const before = pools[1]!.stats().auth.peerUnauthenticated;
    const peer = grpcClient(
      "distcache/peer/v1/peer.proto",
      "distcache.peer.v1.PeerService",
      addresses[1]!,
    );
    try {
      const { code } = await unary(
        peer,
        "Store",
        {
          sender: { address: addresses[0], membership_version: "0" },
          group: "scores-tls",
          key: "Mallory",
          data: Buffer.from("forged"),
          replicate: true,
        },
        { [PEER_HEADER]: addresses[0]! },
      );
      expect(code).toBe(grpc.status.UNAUTHENTICATED);
      expect(pools[1]!.stats().auth.peerUnauthenticated).toBe(before + 1);
    } finally {
      peer.close();
    }
  });

  it("refuses a peer whose CA-signed certificate names another host (PERMISSION_DENIED)", async () => {
    const before = pools[1]!.stats().auth.peerPermissionDenied;
    const peer = grpcClient(
      "distcache/peer/v1/peer.proto",
      "distcache.peer.v1.PeerService",
      addresses[1]!,
      certs.leaves.elsewhere,
    );
    try {
      const { code } = await unary(
        peer,
        "Invalidate",
        {
          sender: { address: addresses[0], membership_version: "0" },
          group: "scores-tls",
          key: "Tom",
          fan_out: true,
        },
        { [PEER_HEADER]: addresses[0]! },
      );
      expect(code).toBe(grpc.status.PERMISSION_DENIED);
      expect(pools[1]!.stats().auth.peerPermissionDenied).toBe(before + 1);
      // A certificate that does name the host is a peer (the refusal was about the name).
      const good = grpcClient(
        "distcache/peer/v1/peer.proto",
        "distcache.peer.v1.PeerService",
        addresses[1]!,
        certs.leaves.node,
      );
      const ok = await unary(
        good,
        "Fetch",
        {
          sender: { address: addresses[0], membership_version: "0" },
          group: "scores-tls",
          key: "Tom",
          cache_only: true,
        },
        { [PEER_HEADER]: addresses[0]! },
      );
      good.close();
      expect(ok.code).toBe(0);
    } finally {
      peer.close();
    }
  });

  it("serves gRPC-Web over HTTP/1.1 on the TLS port, and refuses a peer call there", async () => {
    const transport = createGrpcWebTransport({
      baseUrl: `https://${addresses[2]}`,
      httpVersion: "1.1",
      nodeOptions: { ca: certs.ca },
    });
    const cache = createClient(CacheService, transport);
    const answer = await cache.get({ group: "scores-tls", key: "Jack" });
    expect(new TextDecoder().decode(answer.data)).toBe("589");
    const peer = createClient(PeerService, transport);
    const refused = await peer
      .store(
        {
          sender: { address: addresses[0]! },
          group: "scores-tls",
          key: "Mallory",
          data: new Uint8Array([1]),
          replicate: true,
        },
        { headers: { [PEER_HEADER]: addresses[0]! } },
      )
      .then(
        () => undefined,
        (error: unknown) => ConnectError.from(error).code,
      );
    expect(refused).toBe(Code.Unauthenticated);
    expect((await cache.get({ group: "scores-tls", key: "Mallory" })).found).toBe(false);
    // Connect streaming over HTTP/1.1 gets its refusal as an end-of-stream message.
    const connectPeer = createClient(
      PeerService,
      createConnectTransport({
        baseUrl: `https://${addresses[2]}`,
        httpVersion: "1.1",
        nodeOptions: { ca: certs.ca },
      }),
    );
    const streamed = await (async () => {
      try {
        for await (const _ of connectPeer.fetchMany({
          sender: { address: addresses[0]! },
          group: "scores-tls",
          keys: ["Tom"],
        })) {
          // nothing is expected
        }
        return undefined;
      } catch (error) {
        return ConnectError.from(error);
      }
    })();
    expect(streamed?.code).toBe(Code.Unauthenticated);
    expect(streamed?.rawMessage).toContain("without credentials");
  });

  it("answers buf curl over TLS (ALPN h2) with --cacert", async () => {
    const { stdout } = await bufCurl([
      "--protocol",
      "grpc",
      "--cacert",
      certs.caPath,
      "--schema",
      protoDir,
      "-d",
      JSON.stringify({ group: "scores-tls", key: "Sam" }),
      `https://${addresses[1]}/distcache.CacheService/Get`,
    ]);
    expect(JSON.parse(stdout)).toEqual({ data: "NTY3", found: true });
  });

  it("a Connect client over HTTP/2 with the CA reaches the node; without it the handshake fails", async () => {
    const session = new Http2SessionManager(`https://${addresses[0]}`, undefined, { ca: certs.ca });
    const trusted = createClient(
      CacheService,
      createGrpcTransport({ baseUrl: `https://${addresses[0]}`, sessionManager: session }),
    );
    expect((await trusted.get({ group: "scores-tls", key: "Tom" })).found).toBe(true);
    session.abort();
    const untrusted = createClient(
      CacheService,
      createGrpcTransport({ baseUrl: `https://${addresses[0]}` }),
    );
    await expect(
      untrusted.get({ group: "scores-tls", key: "Tom" }, { timeoutMs: 3_000 }),
    ).rejects.toThrow();
  });
});
