// FetchBatcher (and the generic Batcher under it): batch boundaries, room in
// flight, callers leaving, and how a batch's end settles what it left open.
import { Cancel, NotFoundError, type PeerValue } from "@distcache/core";
import { describe, expect, it } from "vitest";
import { text } from "../cluster.test-util.js";
import { type FetchBatch, FetchBatcher } from "./fetch-batcher.js";

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const bytes = (s: string) => new TextEncoder().encode(s);
const value = (s: string): PeerValue => ({ value: bytes(s) });

/** A batcher whose flushes run when the test says, and whose batches the test answers. */
function harness(
  options: { maxKeys?: number; maxKeysInFlight?: number; maxKeyChars?: number } = {},
) {
  const flushes: (() => void)[] = [];
  const batches: { batch: FetchBatch; done: (error?: unknown) => void }[] = [];
  const batcher = new FetchBatcher(
    (batch) =>
      new Promise<void>((resolve, reject) => {
        batches.push({ batch, done: (error) => (error === undefined ? resolve() : reject(error)) });
      }),
    { ...options, schedule: (flush) => flushes.push(flush) },
  );
  const flush = () => {
    for (const f of flushes.splice(0)) f();
  };
  return { batcher, batches, flush, flushes };
}

/** Settles a promise's outcome into a plain value, so tests can inspect it without awaiting each. */
function outcome<T>(promise: Promise<T>) {
  const state: { value?: T; error?: unknown; settled: boolean } = { settled: false };
  promise.then(
    (v) => Object.assign(state, { value: v, settled: true }),
    (e: unknown) => Object.assign(state, { error: e, settled: true }),
  );
  return state;
}

describe("FetchBatcher", () => {
  it("fetchTo tells each receiver its key's result synchronously as it is reported", async () => {
    const { batcher, batches, flush } = harness();
    const told: string[] = [];
    const receiver = (name: string) => ({
      resolve: (found: PeerValue | undefined) =>
        told.push(`${name}: ${found === undefined ? "not cached" : text(found.value)}`),
      reject: (error: unknown) => told.push(`${name}: ${(error as Error).message}`),
    });
    const leave = new Cancel();
    batcher.fetchTo("g", "a", false, receiver("a"));
    batcher.fetchTo("g", "b", false, receiver("b"), leave);
    batcher.fetchTo("g", "c", false, receiver("c"));
    const viaPromise = batcher.fetch("g", "d", false);
    flush();
    const [{ batch, done }] = batches as [(typeof batches)[0]];
    expect(batch.keys).toEqual(["a", "b", "c", "d"]);
    batch.resolve(0, value("A"));
    expect(told).toEqual(["a: A"]);
    leave.cancel(new Error("b left"));
    expect(told).toEqual(["a: A", "b: b left"]);
    batch.resolve(1, value("ignored: b left"));
    batch.resolve(3, value("D"));
    done();
    expect(text((await viaPromise)!.value)).toBe("D");
    // The batch ended without c's result: c is told so, once.
    expect(told).toEqual([
      "a: A",
      "b: b left",
      "c: the peer's batch ended without this item's result",
    ]);
    const gone = new Cancel();
    gone.cancel(new Error("already gone"));
    batcher.fetchTo("g", "e", false, receiver("e"), gone);
    expect(told.at(-1)).toBe("e: already gone");
    expect(batcher.stats()).toEqual({ batches: 1, keys: 4, queued: 0, inFlight: 0 });
  });

  it("sends the keys asked in one turn as one batch and answers each caller by index", async () => {
    const { batcher, batches, flush } = harness();
    const a = batcher.fetch("g", "a", false);
    const b = batcher.fetch("g", "b", false);
    const c = batcher.fetch("g", "c", false);
    expect(batches).toHaveLength(0); // nothing leaves before the turn ends
    flush();
    expect(batches).toHaveLength(1);
    const [{ batch, done }] = batches as [(typeof batches)[0]];
    expect(batch).toMatchObject({ group: "g", cacheOnly: false, keys: ["a", "b", "c"] });
    batch.resolve(2, value("C"));
    batch.reject(0, new NotFoundError("a"));
    batch.resolve(1, undefined);
    batch.resolve(1, value("ignored: index 1 is settled"));
    done();
    await expect(a).rejects.toBeInstanceOf(NotFoundError);
    await expect(b).resolves.toBeUndefined();
    expect(text((await c)!.value)).toBe("C");
    expect(batcher.stats()).toEqual({ batches: 1, keys: 3, queued: 0, inFlight: 0 });
  });

  it("keeps groups and cache-only asks in separate batches", () => {
    const { batcher, batches, flush } = harness();
    void batcher.fetch("g", "a", false);
    void batcher.fetch("g", "b", true);
    void batcher.fetch("h", "c", false);
    void batcher.fetch("g", "d", false);
    flush();
    expect(batches.map(({ batch }) => [batch.group, batch.cacheOnly, batch.keys])).toEqual([
      ["g", false, ["a", "d"]],
      ["g", true, ["b"]],
      ["h", false, ["c"]],
    ]);
  });

  it("sends a full batch at once and starts the next", () => {
    const { batcher, batches, flush } = harness({ maxKeys: 3 });
    for (const key of ["a", "b", "c", "d"]) void batcher.fetch("g", key, false);
    expect(batches.map(({ batch }) => batch.keys)).toEqual([["a", "b", "c"]]);
    flush();
    expect(batches.map(({ batch }) => batch.keys)).toEqual([["a", "b", "c"], ["d"]]);
  });

  it("cuts a batch at maxKeyChars", () => {
    const { batcher, batches, flush } = harness({ maxKeyChars: 10 });
    for (const key of ["aaaa", "bbbb", "cccc", "dd"]) void batcher.fetch("g", key, false);
    flush();
    expect(batches.map(({ batch }) => batch.keys)).toEqual([
      ["aaaa", "bbbb"],
      ["cccc", "dd"],
    ]);
  });

  it("holds keys past maxKeysInFlight until answers free room, then sends them together", async () => {
    const { batcher, batches, flush } = harness({ maxKeysInFlight: 2 });
    const waits = ["a", "b", "c", "d", "e"].map((key) => outcome(batcher.fetch("g", key, false)));
    flush();
    expect(batches.map(({ batch }) => batch.keys)).toEqual([["a", "b"]]);
    expect(batcher.stats()).toMatchObject({ queued: 3, inFlight: 2 });
    batches[0]!.batch.resolve(0, value("A")); // one answer: room for one key
    flush();
    expect(batches.map(({ batch }) => batch.keys)).toEqual([["a", "b"], ["c"]]);
    // Both batches end; b and c had no answer, and their room is freed.
    batches[0]!.done();
    batches[1]!.done(new Error("peer down"));
    await sleep(0);
    expect(batcher.stats()).toMatchObject({ queued: 2, inFlight: 0 });
    flush();
    expect(batches.map(({ batch }) => batch.keys)).toEqual([["a", "b"], ["c"], ["d", "e"]]);
    expect(waits[0]!.value).toEqual(value("A"));
    expect(String(waits[1]!.error)).toMatch(/ended without this item's result/);
    expect(String(waits[2]!.error)).toBe("Error: peer down");
    expect(waits[3]!.settled).toBe(false);
  });

  it("a caller that leaves is rejected at once; the batch goes on for the others", async () => {
    const { batcher, batches, flush } = harness();
    const leaving = new AbortController();
    const a = outcome(batcher.fetch("g", "a", false, leaving.signal));
    const b = batcher.fetch("g", "b", false, new AbortController().signal);
    flush();
    leaving.abort(new Error("deadline of a"));
    await sleep(0);
    expect(String(a.error)).toBe("Error: deadline of a");
    const { batch, done } = batches[0]!;
    expect(batch.signal.aborted).toBe(false);
    batch.resolve(0, value("late for a")); // ignored: a left
    batch.resolve(1, value("B"));
    done();
    expect(text((await b)!.value)).toBe("B");
    expect(batcher.stats().inFlight).toBe(0);
  });

  it("aborts the batch when every caller still waiting on it has left", async () => {
    const { batcher, batches, flush } = harness();
    const callers = [new AbortController(), new AbortController(), new AbortController()];
    const waits = ["a", "b", "c"].map((key, i) =>
      outcome(batcher.fetch("g", key, false, callers[i]!.signal)),
    );
    flush();
    const { batch } = batches[0]!;
    batch.resolve(1, value("B"));
    callers[0]!.abort(new Error("a left"));
    expect(batch.signal.aborted).toBe(false);
    callers[2]!.abort(new Error("c left"));
    expect(batch.signal.aborted).toBe(true);
    await sleep(0);
    expect(waits.map((w) => w.settled)).toEqual([true, true, true]);
    expect(waits[1]!.value).toEqual(value("B"));
  });

  it("takes a Cancel as a caller's leave, as a signal: alone it leaves, with the last it aborts the batch", async () => {
    const { batcher, batches, flush } = harness();
    const first = new Cancel();
    const second = new AbortController();
    const answered = new Cancel();
    const waits = [
      outcome(batcher.fetch("g", "a", false, first)),
      outcome(batcher.fetch("g", "b", false, second.signal)),
      outcome(batcher.fetch("g", "c", false, answered)),
    ];
    flush();
    const { batch } = batches[0]!;
    batch.resolve(2, value("C"));
    // An answered caller keeps no callback on its Cancel (a private field: no other way to see it).
    expect((answered as unknown as { callbacks: unknown }).callbacks).toBeUndefined();
    first.cancel(new Error("a left"));
    expect(batch.signal.aborted).toBe(false);
    second.abort(new Error("b left"));
    expect(batch.signal.aborted).toBe(true);
    await sleep(0);
    expect(String(waits[0]!.error)).toBe("Error: a left");
    expect(String(waits[1]!.error)).toBe("Error: b left");
    expect(waits[2]!.value).toEqual(value("C"));
    const gone = new Cancel();
    gone.cancel(new Error("already"));
    await expect(batcher.fetch("g", "x", false, gone)).rejects.toThrow("already");
  });

  it("does not send a key whose caller left before the flush, nor an empty batch", async () => {
    const { batcher, batches, flush } = harness();
    const gone = new AbortController();
    const a = outcome(batcher.fetch("g", "a", false, gone.signal));
    void batcher.fetch("g", "b", false);
    const alone = new AbortController();
    void batcher.fetch("h", "c", false, alone.signal).catch(() => {});
    gone.abort(new Error("left"));
    alone.abort(new Error("left"));
    flush();
    expect(batches.map(({ batch }) => batch.keys)).toEqual([["b"]]);
    expect(batcher.stats()).toMatchObject({ queued: 0, keys: 1 });
    await sleep(0);
    expect(String(a.error)).toBe("Error: left");
    await expect(
      batcher.fetch("g", "x", false, AbortSignal.abort(new Error("already"))),
    ).rejects.toThrow("already");
  });

  it("a send function that throws fails the whole batch", async () => {
    const batcher = new FetchBatcher(
      () => {
        throw new Error("cannot send");
      },
      { schedule: (flush) => queueMicrotask(flush) },
    );
    const results = await Promise.allSettled([
      batcher.fetch("g", "a", false),
      batcher.fetch("g", "b", false),
    ]);
    expect(results.map((r) => r.status === "rejected" && String(r.reason))).toEqual([
      "Error: cannot send",
      "Error: cannot send",
    ]);
    expect(batcher.stats()).toMatchObject({ batches: 1, inFlight: 0 });
  });
});
