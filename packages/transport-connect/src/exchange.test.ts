// The Exchange stream between real nodes: forwarded Gets and replication
// pushes ride one long-lived stream per peer, a client this project did not
// write (grpc-js, the .proto loaded at run time) gets the same answers on it
// as from FetchMany, a peer without Exchange is served by FetchMany, and a
// secret rotation ends a stream its new secrets no longer accept.
import type * as grpc from "@grpc/grpc-js";
import { afterEach, describe, expect, it } from "vitest";
import { startCluster, type TestNode, text } from "./cluster.test-util.js";
import { grpcServiceFromProto } from "./foreign-clients.test-util.js";

const PEER_PROTO = "distcache/peer/v1/peer.proto";
const SECRET = "exchange-secret-0123456789abcdef";

/** A key of `count` distinct ones owned by `owner` as `entry` sees the ring. */
function keysOwnedBy(entry: TestNode, owner: TestNode, count: number, prefix = "k"): string[] {
  const keys: string[] = [];
  for (let i = 0; keys.length < count && i < 100_000; i++) {
    const key = `${prefix}${i}`;
    if (entry.pool.ownerOf(key) === owner.address) keys.push(key);
  }
  return keys;
}

describe("Exchange between nodes", () => {
  it("carries a node's forwarded Gets to one peer on one stream", async () => {
    const [entry, owner] = await startCluster(2);
    const keys = keysOwnedBy(entry!, owner!, 60);
    // Three rounds of 20 concurrent Gets: many batches, one stream.
    for (let round = 0; round < 3; round++) {
      const answers = await Promise.all(
        keys
          .slice(round * 20, round * 20 + 20)
          .map((key) => entry!.client.get({ group: "scores", key })),
      );
      for (const [i, answer] of answers.entries()) {
        expect(text(answer.data)).toBe(`v${keys[round * 20 + i]!.slice(1)}`);
      }
    }
    const received = owner!.pool.stats().received;
    expect(received.exchanges).toBe(1);
    expect(received.fetchManyKeys).toBe(60);
    expect(received.fetchMany).toBeGreaterThanOrEqual(3);
    // Every key loaded once, on its owner.
    expect(owner!.loads.sort()).toEqual([...keys].sort());
    expect(entry!.loads).toEqual([]);
    expect(owner!.pool.stats().guard.inFlight).toBe(0);
  });

  it("carries the owner's replication pushes", async () => {
    const nodes = await startCluster(3, { replicas: 2 });
    const owner = nodes[0]!;
    const keys = keysOwnedBy(owner, owner, 10);
    await Promise.all(keys.map((key) => owner.client.get({ group: "scores", key })));
    // The owner answers before its pushes land (docs/architecture.md): wait for them.
    for (let i = 0; i < 500; i++) {
      const pushed = nodes.slice(1).map((n) => n.pool.stats().received.storeManyItems);
      if (pushed.every((items) => items >= 10)) break;
      await new Promise((r) => setTimeout(r, 10));
    }
    for (const replica of nodes.slice(1)) {
      const { received } = replica.pool.stats();
      // The pushes of 10 loads, as StoreMany calls on the owner's stream.
      expect(received.storeManyItems).toBe(10);
      expect(received.exchanges).toBe(1);
      for (const key of keys) {
        expect(replica.group.getCached(key)).toBeDefined();
      }
    }
  });

  it("falls back to FetchMany and StoreMany for a peer that lacks Exchange", async () => {
    // The owner serves through Connect alone, which has no Exchange handler.
    const nodes = await startCluster(2, {}, undefined, undefined);
    const [entry] = nodes;
    const [legacy] = await startCluster(1, { server: { fastPaths: false } }, (_i, all) => [
      entry!.address,
      ...all,
    ]);
    entry!.pool.setPeers(entry!.address, nodes[1]!.address, legacy!.address);
    const keys = keysOwnedBy(entry!, legacy!, 12);
    legacy!.pool.setPeers(entry!.address, nodes[1]!.address, legacy!.address);
    for (const key of keys) {
      const answer = await entry!.client.get({ group: "scores", key });
      expect(text(answer.data)).toBe(`v${key.slice(1)}`);
    }
    const received = legacy!.pool.stats().received;
    expect(received.exchanges).toBe(0);
    expect(received.fetchManyKeys).toBe(12);
    expect(legacy!.loads.sort()).toEqual([...keys].sort());
  });

  it("a secret rotation ends a stream the new secrets do not accept", async () => {
    const [entry, owner] = await startCluster(2, { peer: { secrets: [SECRET] } });
    const [first, ...later] = keysOwnedBy(entry!, owner!, 4);
    await entry!.client.get({ group: "scores", key: first! });
    expect(owner!.pool.stats().received.exchanges).toBe(1);
    const before = owner!.pool.stats().received.fetchManyKeys;
    // The owner moves on to a secret the entry node lacks: the entry node's
    // open stream (authenticated with the old one) must carry nothing more.
    owner!.pool.setPeerSecrets("another-secret-0123456789abcdef");
    for (const key of later) {
      const answer = await entry!.client.get({ group: "scores", key });
      // Served all the same: loaded by the entry node when the owner refuses it.
      expect(text(answer.data)).toBe(`v${key.slice(1)}`);
    }
    expect(owner!.pool.stats().received.fetchManyKeys).toBe(before);
    expect(owner!.pool.stats().auth.peerUnauthenticated).toBeGreaterThan(0);
  });
});

describe("Exchange and a secret rotation done in order", () => {
  it("a rotation rolled through in order refuses nothing: the caller's next call opens a stream with its new credentials", async () => {
    const NEXT = "next-secret-0123456789abcdefgh";
    const [entry, owner] = await startCluster(2, { peer: { secrets: [SECRET] } });
    const [first, second] = keysOwnedBy(entry!, owner!, 2);
    await entry!.client.get({ group: "scores", key: first! });
    // [old] -> [new, old] on both, then the owner to [new]; no call in between.
    owner!.pool.setPeerSecrets(NEXT, SECRET);
    entry!.pool.setPeerSecrets(NEXT, SECRET);
    owner!.pool.setPeerSecrets(NEXT);
    const answer = await entry!.client.get({ group: "scores", key: second! });
    expect(text(answer.data)).toBe(`v${second!.slice(1)}`);
    const { received, auth } = owner!.pool.stats();
    expect(auth.peerUnauthenticated).toBe(0);
    // Served by the owner, on a second stream (the first, authenticated with
    // the old secret only, was ended by the owner without counting a refusal).
    expect(received.fetchManyKeys).toBe(2);
    expect(received.exchanges).toBe(2);
    expect(entry!.loads).toEqual([]);
  });
});

describe("Exchange with grpc-js (the .proto loaded at run time)", () => {
  let closeClient: (() => void) | undefined;
  afterEach(() => closeClient?.());

  it("answers each call by id, as FetchMany and StoreMany answer them", async () => {
    const [node] = await startCluster(1);
    const Peer = grpcServiceFromProto(PEER_PROTO, "distcache.peer.v1.PeerService");
    const { credentials, Metadata } = await import("@grpc/grpc-js");
    const client = new Peer(node!.address, credentials.createInsecure());
    closeClient = () => client.close();
    const sender = { address: node!.address, membership_version: "0" };
    const fetchMany = {
      sender,
      group: "scores",
      keys: ["Tom", "nobody", "Jack", "Tom"],
      cache_only: false,
    };

    // The reference: the same request as a FetchMany call.
    const reference = await new Promise<ResultRow[]>((resolve, reject) => {
      const rows: ResultRow[] = [];
      const call = client.FetchMany!(fetchMany) as grpc.ClientReadableStream<FetchManyAnswer>;
      call.on("data", (answer: FetchManyAnswer) => rows.push(...answer.results.map(row)));
      call.on("error", reject);
      call.on("end", () => resolve(rows));
    });

    const answers = new Map<number, { rows: ResultRow[]; end?: EndAnswer; store?: unknown }>();
    // A member names itself; without peer authentication that is all it takes.
    const metadata = new Metadata();
    metadata.set("distcache-peer", node!.address);
    const stream = client.Exchange!(metadata) as grpc.ClientDuplexStream<unknown, ExchangeAnswer>;
    const ended = new Promise<void>((resolve, reject) => {
      stream.on("data", (answer: ExchangeAnswer) => {
        const entry = answers.get(answer.id) ?? { rows: [] };
        if (answer.fetch_many) entry.rows.push(...answer.fetch_many.results.map(row));
        if (answer.store_many) entry.store = answer.store_many;
        if (answer.end) entry.end = answer.end;
        answers.set(answer.id, entry);
      });
      stream.on("error", reject);
      stream.on("end", () => resolve());
    });
    stream.write({ id: 7, fetch_many: fetchMany });
    stream.write({ id: 8, fetch_many: { ...fetchMany, group: "nope" } });
    stream.write({
      id: 9,
      store_many: {
        sender,
        group: "scores",
        items: [{ key: "pushed", data: Buffer.from("copy"), stamp: { epoch: "1", seq: "1" } }],
      },
    });
    // Written after the push's answer: the copy is there.
    for (let i = 0; i < 200 && answers.get(9)?.end === undefined; i++) {
      await new Promise((r) => setTimeout(r, 10));
    }
    stream.write({
      id: 10,
      fetch_many: { sender, group: "scores", keys: ["pushed"], cache_only: true },
    });
    for (let i = 0; i < 300 && answers.get(10)?.end === undefined; i++) {
      await new Promise((r) => setTimeout(r, 10));
    }
    stream.end();
    await ended;

    const sorted = (rows: ResultRow[]) => [...rows].sort((a, b) => a.index - b.index);
    expect(sorted(answers.get(7)!.rows)).toEqual(sorted(reference));
    expect(sorted(reference).map((r) => [r.index, r.outcome, r.data])).toEqual([
      [0, "FETCH_OUTCOME_FOUND", "630"],
      [1, "FETCH_OUTCOME_NOT_FOUND", ""],
      [2, "FETCH_OUTCOME_FOUND", "589"],
    ]);
    expect(answers.get(7)!.end).toMatchObject({ code: 0 });
    expect(answers.get(8)!.rows).toEqual([]);
    expect(answers.get(8)!.end).toEqual({ code: 9, message: "no such group: nope" });
    expect(answers.get(9)!.store).toBeDefined();
    expect(answers.get(9)!.end).toMatchObject({ code: 0 });
    expect(answers.get(10)!.rows.map((r) => [r.outcome, r.data])).toEqual([
      ["FETCH_OUTCOME_FOUND", "copy"],
    ]);
    expect(node!.pool.stats().received.exchanges).toBe(1);
  });
});

interface FetchResultAnswer {
  index: number;
  outcome: string;
  data: Buffer;
  error: string;
}
interface FetchManyAnswer {
  results: FetchResultAnswer[];
}
interface EndAnswer {
  code: number;
  message: string;
}
interface ExchangeAnswer {
  id: number;
  fetch_many?: FetchManyAnswer | null;
  store_many?: unknown;
  end?: EndAnswer | null;
}
interface ResultRow {
  index: number;
  outcome: string;
  data: string;
  error: string;
}
function row(result: FetchResultAnswer): ResultRow {
  return {
    index: result.index,
    outcome: result.outcome,
    data: result.data.toString(),
    error: result.error,
  };
}
