// The getter-call bound: slots, the FIFO queue, leaving it on abort, refusal
// when full, and a group's getter calls bounded under a burst of keys.
import { describe, expect, it } from "vitest";
import { Group } from "./group.js";
import { LoadLimiter, LoadsOverloadedError } from "./load-limiter.js";

describe("LoadLimiter", () => {
  it("grants free slots at once, queues in order past them, refuses past the queue", async () => {
    const limiter = new LoadLimiter(2, 2, "test");
    expect(limiter.acquire()).toBeUndefined();
    expect(limiter.acquire()).toBeUndefined();
    const order: string[] = [];
    const a = limiter.acquire()!.then(() => order.push("a"));
    const b = limiter.acquire()!.then(() => order.push("b"));
    await expect(limiter.acquire()).rejects.toBeInstanceOf(LoadsOverloadedError);
    expect(limiter.refusal()).toBeInstanceOf(LoadsOverloadedError);
    expect(limiter.stats()).toEqual({ inFlight: 2, queued: 2, rejected: 2 });
    limiter.release();
    limiter.release();
    await Promise.all([a, b]);
    expect(order).toEqual(["a", "b"]);
    expect(limiter.stats()).toMatchObject({ inFlight: 2, queued: 0 });
    limiter.release();
    limiter.release();
    expect(limiter.stats()).toMatchObject({ inFlight: 0, queued: 0 });
  });

  it("a waiter whose signal aborts leaves the queue; its turn passes to the next", async () => {
    const limiter = new LoadLimiter(1, 4, "test");
    limiter.acquire();
    const controller = new AbortController();
    const left = limiter.acquire(controller.signal)!;
    const next = limiter.acquire()!;
    controller.abort(new Error("caller left"));
    await expect(left).rejects.toThrow("caller left");
    expect(limiter.stats().queued).toBe(1);
    limiter.release();
    await next;
    expect(limiter.stats()).toMatchObject({ inFlight: 1, queued: 0 });
  });

  it("0 means no bound; bounds that are not integers >= 0 are refused", () => {
    const free = new LoadLimiter(0, 0, "test");
    for (let i = 0; i < 1_000; i++) expect(free.acquire()).toBeUndefined();
    expect(() => new LoadLimiter(-1, 0, "test")).toThrow(RangeError);
    expect(() => new LoadLimiter(1, 0.5, "test")).toThrow(RangeError);
  });
});

describe("a group's getter calls", () => {
  it("never run more than maxLoadsInFlight at once; past the queue loads fail at once; one flight per key", async () => {
    let running = 0;
    let most = 0;
    let calls = 0;
    const release: (() => void)[] = [];
    const group = new Group(
      "limited",
      1 << 20,
      async (key) => {
        calls++;
        running++;
        most = Math.max(most, running);
        await new Promise<void>((resolve) => release.push(resolve));
        running--;
        return `v:${key}`;
      },
      { maxLoadsInFlight: 4, maxLoadsQueued: 8 },
    );
    // 20 distinct keys, each asked twice: 4 run, 8 wait, 8 are refused.
    const gets = Array.from({ length: 40 }, (_, i) =>
      group.get(`k${i % 20}`).then(
        (view) => view.toString(),
        (error: unknown) => error,
      ),
    );
    await new Promise((r) => setTimeout(r, 10));
    expect(running).toBe(4);
    expect(group.stats()).toMatchObject({ getterCallsInFlight: 4, loadsQueued: 8 });
    while (calls < 12 || running > 0) {
      for (const resolve of release.splice(0)) resolve();
      await new Promise((r) => setTimeout(r, 1));
    }
    const answers = await Promise.all(gets);
    expect(most).toBe(4);
    expect(calls).toBe(12);
    const refused = answers.filter((a) => a instanceof LoadsOverloadedError);
    expect(refused).toHaveLength(16); // 8 keys, both callers of each
    expect(answers.filter((a) => typeof a === "string")).toHaveLength(24);
    expect(group.stats().loadsRejected).toBe(8);
  });
});
