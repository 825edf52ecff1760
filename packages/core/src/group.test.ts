import { getEventListeners } from "node:events";
import { Cancel } from "@distcache/singleflight";
import fc from "fast-check";
import { afterEach, describe, expect, it, vi } from "vitest";
import { ByteView } from "./byteview.js";
import { InvalidKeyError, NotFoundError } from "./errors.js";
import { Group } from "./group.js";
import type { Getter } from "./local-group.js";
import type { PeerClient, PeerGetOptions, PeerPicker } from "./peers.js";
import { getGroup, newGroup, removeGroup } from "./registry.js";

const scores: Record<string, string> = { Tom: "630", Jack: "589", Sam: "567" };

/** A getter over `scores` that records every key it is asked for. */
function scoreSource() {
  const calls: string[] = [];
  const getter: Getter = async (key) => {
    calls.push(key);
    const value = scores[key];
    if (value === undefined) throw new NotFoundError(key);
    return value;
  };
  return { calls, getter };
}

const tick = () => new Promise((resolve) => setTimeout(resolve, 1));

afterEach(() => {
  for (const name of ["scores", "dup"]) removeGroup(name);
});

describe("Group: scenario 1 of the reference", () => {
  it("loads on the first get, hits on the second, reloads once after a delete", async () => {
    const { calls, getter } = scoreSource();
    const group = newGroup("scores", 2 << 10, getter);
    expect((await group.get("Tom")).toString()).toBe("630");
    expect((await group.get("Tom")).toString()).toBe("630");
    await group.delete("Tom");
    expect((await group.get("Tom")).toString()).toBe("630");
    expect(calls).toEqual(["Tom", "Tom"]);
    expect(group.stats()).toMatchObject({ gets: 3, hits: 1, misses: 2, loads: 2, localLoads: 2 });
  });
});

describe("Group.get", () => {
  it("rejects an empty key with a clear error and no getter call", async () => {
    const { calls, getter } = scoreSource();
    const group = new Group("scores", 1024, getter);
    await expect(group.get("")).rejects.toThrow(new InvalidKeyError("key is required"));
    await expect(group.delete("")).rejects.toThrow("key is required");
    expect(calls).toEqual([]);
  });

  it("returns getter errors to the caller and never caches them", async () => {
    let calls = 0;
    const group = new Group("flaky", 1024, async () => {
      calls++;
      if (calls === 1) throw new Error("database down");
      return "ok";
    });
    await expect(group.get("k")).rejects.toThrow("database down");
    expect((await group.get("k")).toString()).toBe("ok");
    expect(calls).toBe(2);
    expect(group.stats()).toMatchObject({ localLoads: 2, localLoadErrors: 1, items: 1 });
  });

  it("passes NotFoundError through, uncached", async () => {
    const { calls, getter } = scoreSource();
    const group = new Group("scores", 1024, getter);
    await expect(group.get("nobody")).rejects.toBeInstanceOf(NotFoundError);
    await expect(group.get("nobody")).rejects.toThrow("key not found: nobody");
    expect(calls).toEqual(["nobody", "nobody"]);
  });

  it("1,000 concurrent gets of a cold key make one getter call", async () => {
    let calls = 0;
    const group = new Group("cold", 1 << 20, async (key) => {
      calls++;
      await tick();
      return `value of ${key}`;
    });
    const views = await Promise.all(Array.from({ length: 1_000 }, () => group.get("hot")));
    expect(calls).toBe(1);
    expect(new Set(views.map(String))).toEqual(new Set(["value of hot"]));
    expect(group.stats()).toMatchObject({
      gets: 1_000,
      misses: 1_000,
      loads: 1,
      loadsDeduped: 999,
    });
  });

  it("returns a value bigger than the budget without caching it", async () => {
    let calls = 0;
    const group = new Group("small", 256, async () => {
      calls++;
      return new Uint8Array(1_000).fill(7);
    });
    expect((await group.get("big")).length).toBe(1_000);
    expect((await group.get("big")).length).toBe(1_000);
    expect(calls).toBe(2);
    expect(group.stats()).toMatchObject({ items: 0, bytes: 0 });
  });

  it("keeps its value immune to the getter's buffer and to callers' copies", async () => {
    const source = new Uint8Array([1, 2, 3]);
    const group = new Group("immutable", 1024, async () => source);
    const first = await group.get("k");
    source[0] = 99;
    first.bytes()[1] = 99;
    const again = await group.get("k");
    expect([...again.bytes()]).toEqual([1, 2, 3]);
    expect(again.equals(new Uint8Array([1, 2, 3]))).toBe(true);
  });

  it("refuses a getter result that is not bytes or a string, uncached", async () => {
    let calls = 0;
    const group = new Group("typed", 1024, (async () => {
      calls++;
      return 42;
    }) as unknown as Getter);
    await expect(group.get("k")).rejects.toThrow(
      /returned number .* expected a Uint8Array or a string/,
    );
    await expect(group.get("k")).rejects.toThrow(TypeError);
    expect(calls).toBe(2);
    expect(group.stats().localLoadErrors).toBe(2);
  });

  it("bounds a hung getter by the load timeout, then loads again", async () => {
    let calls = 0;
    let firstSignal: AbortSignal | undefined;
    const group = new Group(
      "hung",
      1024,
      async (_key, { signal }) => {
        calls++;
        if (calls === 1) {
          firstSignal = signal;
          return new Promise<string>(() => {});
        }
        return "second";
      },
      { loadTimeout: 50 },
    );
    await expect(group.get("k")).rejects.toMatchObject({ name: "TimeoutError" });
    expect(firstSignal?.aborted).toBe(true);
    expect((await group.get("k")).toString()).toBe("second");
  });

  it("a cancelled caller leaves; the load goes on for the others and is cached", async () => {
    let release!: () => void;
    let calls = 0;
    const group = new Group("shared", 1024, async () => {
      calls++;
      await new Promise<void>((resolve) => {
        release = resolve;
      });
      return "v";
    });
    const controller = new AbortController();
    const leaving = group.get("k", { signal: controller.signal });
    const staying = group.get("k");
    await tick();
    controller.abort();
    await expect(leaving).rejects.toMatchObject({ name: "AbortError" });
    release();
    expect((await staying).toString()).toBe("v");
    expect((await group.get("k")).toString()).toBe("v");
    expect(calls).toBe(1);
  });

  it("1,000 gets sharing one request signal add one listener to it and print no warning", async () => {
    const warnings: string[] = [];
    const onWarning = (warning: Error) => warnings.push(warning.name);
    process.on("warning", onWarning);
    try {
      const group = new Group("shared-signal", 1 << 20, async (key) => {
        await new Promise((resolve) => setTimeout(resolve, 5));
        return `v:${key}`;
      });
      const request = new AbortController();
      const gets = Array.from({ length: 1_000 }, (_, i) =>
        group.get(`k${i}`, { signal: request.signal }),
      );
      expect(getEventListeners(request.signal, "abort")).toHaveLength(1);
      const views = await Promise.all(gets);
      expect(views[999]!.toString()).toBe("v:k999");
      expect(getEventListeners(request.signal, "abort")).toHaveLength(0);
      await new Promise((resolve) => setImmediate(resolve));
      expect(warnings).not.toContain("MaxListenersExceededWarning");
    } finally {
      process.off("warning", onWarning);
    }
  });

  it("a delete during a load keeps the old value out of the cache", async () => {
    let version = 1;
    const releases: (() => void)[] = [];
    const group = new Group("versioned", 1024, async () => {
      const seen = version;
      await new Promise<void>((resolve) => releases.push(resolve));
      return `v${seen}`;
    });
    const before = group.get("k");
    await tick();
    version = 2;
    await group.delete("k");
    // A caller after the delete must not join the load that started before it.
    const after = group.get("k");
    await tick();
    expect(releases.length).toBe(2);
    for (const release of releases) release();
    expect((await before).toString()).toBe("v1");
    expect((await after).toString()).toBe("v2");
    expect((await group.get("k")).toString()).toBe("v2");
  });

  it("set stores a value that get then returns without a load", async () => {
    const { calls, getter } = scoreSource();
    const group = new Group("scores", 1024, getter);
    await group.set("Tom", "700");
    expect((await group.get("Tom")).toString()).toBe("700");
    expect(calls).toEqual([]);
  });

  it("never holds more than its budget under a random workload", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 0, max: 4_096 }),
        fc.array(fc.tuple(fc.constantFrom("get", "delete"), fc.nat({ max: 50 })), {
          maxLength: 200,
        }),
        async (budget, ops) => {
          const group = new Group("budget", budget, (key) => new Uint8Array(key.length * 37));
          for (const [op, n] of ops) {
            if (op === "get") await group.get(`key-${n}`);
            else await group.delete(`key-${n}`);
            if (budget > 0) expect(group.stats().bytes).toBeLessThanOrEqual(budget);
          }
        },
      ),
      { numRuns: 100 },
    );
  });
});

describe("group registry", () => {
  it("refuses a second group with an existing name unless told to replace it", () => {
    const first = newGroup("dup", 100, () => "a");
    expect(() => newGroup("dup", 100, () => "b")).toThrow(/already exists.*replace: true/);
    expect(getGroup("dup")).toBe(first);
    const second = newGroup("dup", 100, () => "b", { replace: true });
    expect(getGroup("dup")).toBe(second);
    expect(getGroup("no such group")).toBeUndefined();
  });

  it("requires a name and a getter function", () => {
    expect(() => new Group("", 1, () => "")).toThrow("group name is required");
    expect(() => new Group("g", 1, undefined as unknown as Getter)).toThrow(
      /getter must be a function/,
    );
  });
});

describe("ByteView", () => {
  it("is a copy, compares by bytes and decodes UTF-8", () => {
    const bytes = new TextEncoder().encode("héllo");
    const view = ByteView.from(bytes);
    bytes[0] = 0;
    expect(view.toString()).toBe("héllo");
    expect(view.length).toBe(6);
    expect(view.equals("héllo")).toBe(true);
    expect(view.equals(ByteView.from("héllo"))).toBe(true);
    expect(view.equals("hello")).toBe(false);
    const copy = view.bytes();
    copy.fill(0);
    expect(view.toString()).toBe("héllo");
    const target = new Uint8Array(8);
    expect(view.copyTo(target, 2)).toBe(6);
    expect(new TextDecoder().decode(target.subarray(2))).toBe("héllo");
  });

  it("refuses what is not bytes or a string", () => {
    expect(() => ByteView.from(5 as unknown as string)).toThrow(TypeError);
  });
});

describe("Group.get with a Cancel", () => {
  /** A peer that never answers and records the options of each Get. */
  function silentPeer() {
    const asked: PeerGetOptions[] = [];
    const peer: PeerClient = {
      id: "owner",
      get: (_group, _key, options) => {
        asked.push(options);
        return new Promise(() => {});
      },
      store: () => Promise.resolve(undefined),
      remove: () => Promise.resolve({ failed: [] }),
    };
    const picker: PeerPicker = {
      placement: () => ({ owner: peer, replicas: [], selfIsReplica: false }),
      others: () => [peer],
    };
    return { asked, picker };
  }

  it("a caller's Cancel leaves its wait; the last to leave cancels the peer Get, whose signal is made on read", async () => {
    const { asked, picker } = silentPeer();
    const group = new Group("cancel-peer", 1024, () => {
      throw new Error("not loaded here: the key belongs to the peer");
    });
    group.registerPeers(picker);
    const first = new Cancel();
    const second = new Cancel();
    const a = group.get("k", { cancel: first });
    const b = group.get("k", { cancel: second });
    await tick();
    expect(asked).toHaveLength(1);
    const options = asked[0]!;
    expect(options.cacheOnly).toBe(false);
    first.cancel(new Error("client left"));
    await expect(a).rejects.toThrow("client left");
    expect(options.cancel?.cancelled).toBe(false);
    second.cancel(new Error("deadline"));
    await expect(b).rejects.toThrow("deadline");
    expect(options.cancel?.cancelled).toBe(true);
    // A transport that reads `signal` instead gets one, already aborted with the reason.
    expect(options.signal?.aborted).toBe(true);
    expect(options.signal?.reason).toMatchObject({ message: "deadline" });
    expect(group.stats().getErrors).toBe(2);
  });

  it("a local load's getter gets an AbortSignal that aborts when the only caller's Cancel fires", async () => {
    let seen: AbortSignal | undefined;
    const group = new Group("cancel-local", 1024, (_key, { signal }) => {
      seen = signal;
      return new Promise<string>(() => {});
    });
    const cancel = new Cancel();
    const get = group.get("k", { cancel });
    await tick();
    expect(seen?.aborted).toBe(false);
    cancel.cancel(new Error("gone"));
    await expect(get).rejects.toThrow("gone");
    expect(seen?.aborted).toBe(true);
  });

  it("refuses signal and cancel together", async () => {
    const group = new Group("both", 1024, () => "v");
    const get = group.get("k", { cancel: new Cancel(), signal: new AbortController().signal });
    await expect(get).rejects.toThrow("give signal or cancel, not both");
  });
});

describe("Group.clientHandler", () => {
  /** A receiver that records what it was told. */
  function recorder() {
    const told: Array<{ ok: boolean; outcome: unknown }> = [];
    return {
      told,
      resolve: (view: ByteView) => told.push({ ok: true, outcome: view.toString() }),
      reject: (error: unknown) => told.push({ ok: false, outcome: error }),
    };
  }

  it("tells a hit and an empty key at once, counted as get counts them", async () => {
    const { calls, getter } = scoreSource();
    const group = new Group("handler-hit", 1024, getter);
    await group.get("Tom");
    const hit = recorder();
    group.clientHandler.get("Tom", hit);
    expect(hit.told).toEqual([{ ok: true, outcome: "630" }]);
    const empty = recorder();
    group.clientHandler.get("", empty, new Cancel());
    expect(empty.told[0]!.outcome).toBeInstanceOf(InvalidKeyError);
    expect(calls).toEqual(["Tom"]);
    expect(group.stats()).toMatchObject({ gets: 3, hits: 1, misses: 1, getErrors: 1 });
  });

  it("shares a miss's load with get's callers, and tells each receiver once", async () => {
    const { calls, getter } = scoreSource();
    const group = new Group("handler-miss", 1024, getter);
    const receivers = [recorder(), recorder()];
    for (const receiver of receivers) group.clientHandler.get("Jack", receiver, new Cancel());
    const viaGet = group.get("Jack");
    expect(receivers[0]!.told).toEqual([]);
    expect((await viaGet).toString()).toBe("589");
    for (const receiver of receivers) expect(receiver.told).toEqual([{ ok: true, outcome: "589" }]);
    expect(calls).toEqual(["Jack"]);
    const missing = recorder();
    group.clientHandler.get("Nobody", missing);
    await vi.waitFor(() => expect(missing.told).toHaveLength(1), { timeout: 10_000 });
    expect(missing.told[0]!.outcome).toBeInstanceOf(NotFoundError);
    expect(group.stats()).toMatchObject({
      gets: 4,
      misses: 4,
      loads: 2,
      loadsDeduped: 2,
      missesLoaded: 3,
      getErrors: 1,
    });
  });

  it("a receiver's Cancel tells it the reason at once; the load goes on for the others", async () => {
    let release: (value: string) => void = () => {};
    const group = new Group(
      "handler-cancel",
      1024,
      () =>
        new Promise<string>((resolve) => {
          release = resolve;
        }),
    );
    const leaving = recorder();
    const staying = recorder();
    const cancel = new Cancel();
    group.clientHandler.get("k", leaving, cancel);
    group.clientHandler.get("k", staying, new Cancel());
    await tick();
    cancel.cancel(new Error("client left"));
    expect(leaving.told).toEqual([{ ok: false, outcome: new Error("client left") }]);
    release("v");
    await vi.waitFor(() => expect(staying.told).toEqual([{ ok: true, outcome: "v" }]), {
      timeout: 10_000,
    });
    expect(group.getCached("k")?.toString()).toBe("v");
  });
});
