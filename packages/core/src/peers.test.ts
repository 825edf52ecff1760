import { type Receiver, reportTo } from "@distcache/singleflight";
import { beforeEach, describe, expect, it } from "vitest";
import { NotFoundError, RemoteLoadError } from "./errors.js";
import { Group } from "./group.js";
import type { GroupOptions } from "./local-group.js";
import type {
  PeerClient,
  PeerGetOptions,
  PeerPicker,
  PeerRemoveOptions,
  PeerStoreOptions,
  PeerValue,
  Placement,
} from "./peers.js";
import { errorMessage, PropagationError } from "./propagation.js";

/**
 * An in-memory cluster: each node is a Group; peers call each other's `*Local`
 * methods directly, the way a transport's server handlers would. Placement is
 * a fixed rotation over the node list (a stand-in for the hash ring).
 */
class MemoryPeer implements PeerClient {
  down = false;
  /** When set, a store waits for this promise first: a push delayed in the network. */
  holdStores: Promise<void> | undefined;
  received = { get: 0, store: 0, remove: 0 };
  constructor(
    readonly id: string,
    private readonly target: () => Group,
    /** The node that holds this client: the sender of its calls. */
    private readonly sender: string,
  ) {}
  private check() {
    if (this.down) return Promise.reject(new Error(`${this.id} unavailable`));
    return undefined;
  }
  async get(_group: string, key: string, options: PeerGetOptions) {
    await this.check();
    this.received.get++;
    try {
      const answer = await this.target().peerHandler.get(key, options);
      // A copy, as the wire makes one.
      return answer === undefined ? undefined : { ...answer, value: answer.value.slice() };
    } catch (error) {
      // What a transport does with an answer carrying an in-band error.
      if (error instanceof NotFoundError) throw error;
      throw new RemoteLoadError(errorMessage(error));
    }
  }
  async store(_g: string, key: string, value: Uint8Array, options: PeerStoreOptions) {
    await this.check();
    if (this.holdStores !== undefined) await this.holdStores;
    this.received.store++;
    return this.target().peerHandler.store(key, value, { ...options, from: this.sender });
  }
  async remove(_g: string, key: string, options: PeerRemoveOptions = {}) {
    await this.check();
    this.received.remove++;
    return this.target().peerHandler.remove(key, { ...options, from: this.sender });
  }
}

/**
 * A MemoryPeer that also takes receivers (`getTo`), as a transport's client
 * does: a group's miss then reaches it without a promise of the group's own.
 */
class ReceivingMemoryPeer extends MemoryPeer {
  /** Gets asked through `getTo`. */
  receivedTo = 0;
  getTo(
    group: string,
    key: string,
    options: PeerGetOptions,
    receiver: Receiver<PeerValue | undefined>,
  ): void {
    this.receivedTo++;
    reportTo(this.get(group, key, options), receiver);
  }
}

/** Whether `cluster` makes peers with `getTo` (each suite below runs both ways). */
let receivingPeers = false;

/** The text of a peer handler's answer; `undefined` when it had no copy. */
function text(answer: PeerValue | undefined): string | undefined {
  return answer === undefined ? undefined : new TextDecoder().decode(answer.value);
}

function cluster(
  size: number,
  source: (key: string) => string | undefined,
  replicas = 2,
  options: GroupOptions = {},
) {
  const ids = Array.from({ length: size }, (_, i) => `node${i}`);
  const loads: string[][] = ids.map(() => []);
  const groups: Group[] = ids.map(
    (_, i) =>
      new Group(
        "scores",
        1 << 20,
        async (key) => {
          loads[i]!.push(key);
          await new Promise((resolve) => setTimeout(resolve, 1));
          const value = source(key);
          if (value === undefined) throw new NotFoundError(key);
          return value;
        },
        options,
      ),
  );
  // peers[i][j]: node i's client for node j.
  const peers = ids.map((sender) =>
    ids.map((id, j) =>
      receivingPeers
        ? new ReceivingMemoryPeer(id, () => groups[j]!, sender)
        : new MemoryPeer(id, () => groups[j]!, sender),
    ),
  );
  const ownerIndex = (key: string) => [...key].reduce((sum, c) => sum + c.charCodeAt(0), 0) % size;
  ids.forEach((_, self) => {
    const picker: PeerPicker = {
      placement(key): Placement {
        const order = Array.from(
          { length: Math.min(size, replicas + 1) },
          (_, r) => (ownerIndex(key) + r) % size,
        );
        const [owner, ...rest] = order;
        return {
          owner: owner === self ? undefined : peers[self]![owner!],
          replicas: rest.filter((j) => j !== self).map((j) => peers[self]![j]!),
          selfIsReplica: rest.includes(self),
        };
      },
      others: () => peers[self]!.filter((_, j) => j !== self),
    };
    groups[self]!.registerPeers(picker);
  });
  const setDown = (node: number, down: boolean) => {
    for (const row of peers) row[node]!.down = down;
  };
  const received = (node: number) =>
    peers.reduce((sum, row) => sum + row[node]!.received.remove, 0);
  return { groups, loads, peers, ownerIndex, setDown, received };
}

const values = (key: string) => (key.startsWith("missing") ? undefined : `value:${key}`);

describe.each([
  ["promises", false],
  ["receivers", true],
])("a group with peers (peer clients with %s)", (_, receiving) => {
  beforeEach(() => {
    receivingPeers = receiving;
  });

  it("asks peers through getTo when the client has it", async () => {
    const c = cluster(3, values);
    const key = "Ann";
    const entry = (c.ownerIndex(key) + 2) % 3;
    expect(await c.groups[entry]!.get(key).then((v) => v.toString())).toBe("value:Ann");
    const asked = c.peers[entry]!.map((peer) =>
      peer instanceof ReceivingMemoryPeer ? peer.receivedTo : 0,
    );
    expect(asked.reduce((a, b) => a + b, 0)).toBe(receiving ? 1 : 0);
  });

  it("loads every key once, on its owner, however many nodes ask at once", async () => {
    const c = cluster(3, values);
    const keys = Array.from({ length: 40 }, (_, i) => `k${i}`);
    const requests = Array.from({ length: 200 }, (_, i) => {
      const key = keys[i % keys.length]!;
      return c.groups[i % 3]!.get(key).then((view) => [key, view.toString()]);
    });
    for (const [key, value] of await Promise.all(requests)) expect(value).toBe(`value:${key}`);
    for (const key of keys) {
      const loadedOn = c.loads.flatMap((keysLoaded, node) =>
        keysLoaded.filter((k) => k === key).map(() => node),
      );
      expect(loadedOn).toEqual([c.ownerIndex(key)]);
    }
  });

  it("copies a loaded value to the replicas, which then answer with the owner down", async () => {
    const c = cluster(3, values);
    const key = "Tom";
    const owner = c.ownerIndex(key);
    const asker = (owner + 1) % 3;
    await c.groups[asker]!.get(key);
    expect(c.groups.map((g) => g.stats().items)).toEqual([1, 1, 1]);
    c.setDown(owner, true);
    // A node that is not a replica (with 4 nodes) or the replica itself: no getter call anywhere.
    await c.groups[asker]!.peerHandler.remove(key, { from: "test" }); // forget its own copy so it must ask
    expect((await c.groups[asker]!.get(key)).toString()).toBe("value:Tom");
    expect(c.loads.flat()).toEqual([key]);
  });

  it("falls back to replicas' caches, then to a local load, when the owner is down", async () => {
    const c = cluster(4, values, 1);
    const key = "Sam";
    const owner = c.ownerIndex(key);
    const replica = (owner + 1) % 4;
    const asker = (owner + 2) % 4;
    c.setDown(owner, true);
    c.setDown(replica, true);
    expect((await c.groups[asker]!.get(key)).toString()).toBe("value:Sam");
    expect(c.loads[asker]).toEqual([key]);
    expect(c.groups[asker]!.stats().peerErrors).toBe(2);
  });

  it("does not fall back when the owner answered that the key does not exist", async () => {
    const c = cluster(3, values);
    const key = "missing-1";
    const asker = (c.ownerIndex(key) + 1) % 3;
    await expect(c.groups[asker]!.get(key)).rejects.toBeInstanceOf(NotFoundError);
    expect(c.loads.flat()).toEqual([key]);
    expect(c.loads[c.ownerIndex(key)]).toEqual([key]);
  });

  it("a delete through any node reaches every other node once and the next get reloads once", async () => {
    const c = cluster(3, values);
    const key = "Jack";
    await c.groups[0]!.get(key);
    const result = await c.groups[1]!.delete(key);
    expect(result.failed).toEqual([]);
    expect(c.groups.map((g) => g.stats().items)).toEqual([0, 0, 0]);
    expect([0, 1, 2].map((n) => c.received(n))).toEqual([1, 0, 1]);
    await c.groups[2]!.get(key);
    expect(c.loads.flat()).toEqual([key, key]);
  });

  it("a delete the owner cannot acknowledge fails and names the peer", async () => {
    const c = cluster(3, values);
    const key = "Jack";
    const owner = c.ownerIndex(key);
    c.setDown(owner, true);
    const entry = (owner + 1) % 3;
    await expect(c.groups[entry]!.delete(key)).rejects.toThrow(PropagationError);
    await expect(c.groups[entry]!.delete(key)).rejects.toThrow(`node${owner} unavailable`);
  });

  it("a delete with a non-owner down succeeds and reports it", async () => {
    const c = cluster(3, values);
    const key = "Jack";
    const owner = c.ownerIndex(key);
    const other = (owner + 1) % 3;
    c.setDown(other, true);
    const result = await c.groups[owner]!.delete(key);
    expect(result.failed).toEqual([{ peer: `node${other}`, reason: `node${other} unavailable` }]);
  });

  it("a set through a non-owner writes through the owner to its replicas and drops other copies", async () => {
    const c = cluster(4, values, 1);
    const key = "Tom";
    const owner = c.ownerIndex(key);
    const replica = (owner + 1) % 4;
    const bystander = (owner + 2) % 4;
    await c.groups[bystander]!.get(key); // not a replica: keeps no copy
    await c.groups[owner]!.peerHandler.store(key, new TextEncoder().encode("stale"), {
      from: "test",
      replicate: false,
    });
    c.groups[(owner + 3) % 4]!.peerHandler.store(key, new TextEncoder().encode("stale"), {
      from: "test",
      replicate: false,
    });
    const result = await c.groups[bystander]!.set(key, "999");
    expect(result.failed).toEqual([]);
    for (const node of [0, 1, 2, 3]) {
      const expected = node === owner || node === replica ? "999" : undefined;
      expect(text(await c.groups[node]!.peerHandler.get(key, { cacheOnly: true }))).toBe(expected);
    }
    for (const node of [0, 1, 2, 3])
      expect((await c.groups[node]!.get(key)).toString()).toBe("999");
    expect(c.loads.flat()).toEqual([key]);
  });

  it("a set over the group's budget through a non-owner drops every copy and says it was not cached", async () => {
    const c = cluster(4, values, 1);
    const key = "Tom";
    const owner = c.ownerIndex(key);
    const bystander = (owner + 2) % 4;
    for (const node of [0, 1, 2, 3]) await c.groups[node]!.get(key);
    const big = "x".repeat(1 << 20); // the test groups' budget is 1 MiB: key and overhead do not fit
    const result = await c.groups[bystander]!.set(key, big);
    expect(result.failed).toEqual([]);
    expect(result.notCached).toMatchObject({ valueBytes: 1 << 20, budget: 1 << 20 });
    expect(result.notCached!.message).toMatch(
      /^value of 1048576 bytes not cached: over the group's 1048576-byte budget/,
    );
    for (const node of [0, 1, 2, 3]) {
      expect(await c.groups[node]!.peerHandler.get(key, { cacheOnly: true })).toBeUndefined();
    }
    // Nobody serves the old value; the next get loads it from the source on the owner.
    expect((await c.groups[bystander]!.get(key)).toString()).toBe("value:Tom");
    expect(c.loads[owner]!.filter((k) => k === key).length).toBe(2);
  });

  it("never forwards a peer request: the peer handler loads with the local getter", async () => {
    const c = cluster(3, values);
    const key = "Tom";
    const notOwner = (c.ownerIndex(key) + 1) % 3;
    const view = await c.groups[notOwner]!.peerHandler.get(key, { cacheOnly: false });
    expect(text(view)).toBe("value:Tom");
    expect(c.loads[notOwner]).toEqual([key]);
    expect(c.peers.flat().reduce((sum, p) => sum + p.received.get, 0)).toBe(0);
  });

  it("answers a cached key synchronously as get answers it, and nothing for a key it would load", async () => {
    const c = cluster(3, values);
    const key = "Tom";
    const owner = c.groups[c.ownerIndex(key)]!;
    expect(owner.peerHandler.getCached!(key)).toBeUndefined();
    expect(owner.peerHandler.getCached!("")).toBeUndefined();
    await owner.get(key);
    const loads = c.loads.flat().length;
    const cached = owner.peerHandler.getCached!(key);
    const asked = await owner.peerHandler.get(key, { cacheOnly: true });
    expect(text(cached)).toBe("value:Tom");
    expect(text(asked)).toBe("value:Tom");
    // The same stamp: no write was applied between the two reads.
    expect(cached!.stamp).toBeDefined();
    expect(asked!.stamp).toEqual(cached!.stamp);
    expect(c.loads.flat().length).toBe(loads);
  });

  it("refuses a replication push that arrives after a delete it predates", async () => {
    const c = cluster(3, values);
    const key = "Tom";
    const owner = c.ownerIndex(key);
    const replica = (owner + 1) % 3;
    const entry = (owner + 2) % 3;
    let release!: () => void;
    c.peers[owner]![replica]!.holdStores = new Promise((resolve) => {
      release = resolve;
    });
    const read = c.groups[entry]!.get(key); // the owner loads, then pushes (held) to the replica
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(c.loads[owner]).toEqual([key]);
    const deleted = await c.groups[entry]!.delete(key);
    expect(deleted.failed).toEqual([]);
    release();
    expect((await read).toString()).toBe("value:Tom");
    expect(c.groups[replica]!.stats().staleCopiesRefused).toBe(1);
    expect(await c.groups[replica]!.peerHandler.get(key, { cacheOnly: true })).toBeUndefined();
  });

  it("keeps a push that read the value after the delete", async () => {
    const c = cluster(3, values);
    const key = "Tom";
    const owner = c.ownerIndex(key);
    const replica = (owner + 1) % 3;
    await c.groups[(owner + 2) % 3]!.delete(key);
    await c.groups[(owner + 2) % 3]!.get(key);
    expect(text(await c.groups[replica]!.peerHandler.get(key, { cacheOnly: true }))).toBe(
      "value:Tom",
    );
    expect(c.groups[replica]!.stats().staleCopiesRefused).toBe(0);
  });

  it("answers a load before its replication pushes land, unless awaitReplicas", async () => {
    for (const awaitReplicas of [false, true]) {
      const c = cluster(3, values, 2, { awaitReplicas });
      const key = "Tom";
      const owner = c.ownerIndex(key);
      const replica = (owner + 1) % 3;
      let release!: () => void;
      c.peers[owner]![replica]!.holdStores = new Promise((resolve) => {
        release = resolve;
      });
      let answered = false;
      const read = c.groups[owner]!.get(key).then((view) => {
        answered = true;
        return view.toString();
      });
      // Bounded: the load takes ~1 ms; 200 ms is room for a busy machine.
      for (let i = 0; i < 20 && !answered; i++) await new Promise((r) => setTimeout(r, 10));
      expect(answered, `awaitReplicas: ${awaitReplicas}`).toBe(!awaitReplicas);
      expect(c.groups[replica]!.stats().items).toBe(0);
      release();
      expect(await read).toBe("value:Tom");
      // The push lands either way.
      for (let i = 0; i < 100 && c.groups[replica]!.stats().items === 0; i++) {
        await new Promise((r) => setTimeout(r, 10));
      }
      expect(text(await c.groups[replica]!.peerHandler.get(key, { cacheOnly: true }))).toBe(
        "value:Tom",
      );
    }
  });

  it("counts replication pushes a replica did not take", async () => {
    const c = cluster(3, values);
    const key = "Sam";
    const owner = c.ownerIndex(key);
    c.setDown((owner + 1) % 3, true);
    await c.groups[owner]!.get(key);
    expect(c.groups[owner]!.stats().replicationFailures).toBe(1);
  });
});
