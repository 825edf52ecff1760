import { describe, expect, it, vi } from "vitest";
import { Cancel } from "./cancel.js";
import { reportTo } from "./receiver.js";
import { SingleFlight, TimeoutError } from "./singleflight.js";

/** A promise settled from outside, to hold a call in flight as long as a test needs. */
function deferred<T>() {
  let resolve!: (value: T) => void;
  let reject!: (error: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/**
 * Work that stays in flight until `resolve` (or never, if the test does not
 * call it), keeping the Cancel the call gave it in `shared`.
 */
function heldWork<T>() {
  const gate = deferred<T>();
  const held = {
    shared: undefined as Cancel | undefined,
    resolve: gate.resolve,
    work: (cancel: Cancel) => {
      held.shared = cancel;
      return gate.promise;
    },
  };
  return held;
}

describe("SingleFlight", () => {
  it("shares one call and its result among concurrent callers", async () => {
    const flight = new SingleFlight<string>();
    const gate = deferred<string>();
    let calls = 0;
    const work = () => {
      calls++;
      return gate.promise;
    };
    const waiters = Array.from({ length: 1_000 }, () => flight.do("k", work));
    expect(flight.has("k")).toBe(true);
    gate.resolve("v");
    expect(await Promise.all(waiters)).toEqual(Array(1_000).fill("v"));
    expect(calls).toBe(1);
  });

  it("shares the error, and forgets the key once the call settles", async () => {
    const flight = new SingleFlight<string>();
    const gate = deferred<string>();
    const a = flight.do("k", () => gate.promise);
    const b = flight.do("k", () => Promise.resolve("never called"));
    gate.reject(new Error("boom"));
    await expect(a).rejects.toThrow("boom");
    await expect(b).rejects.toThrow("boom");
    expect(flight.has("k")).toBe(false);
    expect(await flight.do("k", () => "fresh")).toBe("fresh");
  });

  it("turns a synchronous throw into a rejection", async () => {
    const flight = new SingleFlight<string>();
    await expect(
      flight.do("k", () => {
        throw new Error("sync");
      }),
    ).rejects.toThrow("sync");
    expect(flight.size).toBe(0);
  });

  it("keeps different keys apart", async () => {
    const flight = new SingleFlight<string>();
    const [a, b] = await Promise.all([flight.do("a", () => "A"), flight.do("b", () => "B")]);
    expect([a, b]).toEqual(["A", "B"]);
  });

  it("an aborting caller rejects at once while the shared call goes on for the others", async () => {
    const flight = new SingleFlight<string>();
    const gate = deferred<string>();
    let workSignal: AbortSignal | undefined;
    const leaving = new AbortController();
    const staying = new AbortController();
    const a = flight.do(
      "k",
      (signal) => {
        workSignal = signal;
        return gate.promise;
      },
      { signal: leaving.signal },
    );
    const b = flight.do("k", () => gate.promise, { signal: staying.signal });
    const c = flight.do("k", () => gate.promise); // no signal: can never leave
    leaving.abort();
    await expect(a).rejects.toMatchObject({ name: "AbortError" });
    expect(workSignal?.aborted).toBe(false);
    gate.resolve("v");
    expect(await b).toBe("v");
    expect(await c).toBe("v");
  });

  it("aborts the shared call only when every waiter has gone", async () => {
    const flight = new SingleFlight<string>();
    let workSignal: AbortSignal | undefined;
    const first = new AbortController();
    const second = new AbortController();
    const work = (signal: AbortSignal) => {
      workSignal = signal;
      return new Promise<string>(() => {}); // never settles on its own
    };
    const a = flight.do("k", work, { signal: first.signal });
    const b = flight.do("k", work, { signal: second.signal });
    first.abort();
    await expect(a).rejects.toMatchObject({ name: "AbortError" });
    expect(workSignal?.aborted).toBe(false);
    second.abort(new Error("deadline"));
    await expect(b).rejects.toThrow("deadline");
    expect(workSignal?.aborted).toBe(true);
    // The abandoned call no longer holds the key.
    expect(flight.has("k")).toBe(false);
    expect(await flight.do("k", () => "next")).toBe("next");
  });

  it("rejects at once for a signal that is already aborted, without starting work", async () => {
    const flight = new SingleFlight<string>();
    let calls = 0;
    await expect(
      flight.do(
        "k",
        () => {
          calls++;
          return "v";
        },
        { signal: AbortSignal.abort() },
      ),
    ).rejects.toMatchObject({ name: "AbortError" });
    expect(calls).toBe(0);
  });

  it("a call that never settles is abandoned after the timeout and frees its key", async () => {
    const flight = new SingleFlight<string>({ timeout: 30 });
    let workSignal: AbortSignal | undefined;
    const hung = flight.do("k", (signal) => {
      workSignal = signal;
      return new Promise<string>(() => {});
    });
    const joined = flight.do("k", () => "never called");
    await expect(hung).rejects.toBeInstanceOf(TimeoutError);
    await expect(joined).rejects.toBeInstanceOf(TimeoutError);
    expect(workSignal?.reason).toBeInstanceOf(TimeoutError);
    expect(flight.has("k")).toBe(false);
    expect(await flight.do("k", () => "recovered")).toBe("recovered");
  });

  it("forget lets the next caller start a new call while the old waiters keep theirs", async () => {
    const flight = new SingleFlight<string>();
    const old = deferred<string>();
    const a = flight.do("k", () => old.promise);
    flight.forget("k");
    const b = flight.do("k", () => "new");
    old.resolve("old");
    expect(await a).toBe("old");
    expect(await b).toBe("new");
    // The old call settling must not evict the newer one from the map.
    const c = deferred<string>();
    const d = flight.do("k", () => c.promise);
    expect(flight.has("k")).toBe(true);
    c.resolve("d");
    expect(await d).toBe("d");
  });

  it("removes abort listeners once the call settles", async () => {
    const flight = new SingleFlight<string>();
    const controller = new AbortController();
    for (let i = 0; i < 100; i++) {
      await flight.do("k", () => "v", { signal: controller.signal });
    }
    // Aborting after settlement is harmless and nothing rejects late.
    controller.abort();
    expect(flight.size).toBe(0);
  });

  it("validates the timeout", () => {
    expect(() => new SingleFlight({ timeout: -1 })).toThrow(RangeError);
  });
});

describe("SingleFlight.join", () => {
  it("gives the work a Cancel, whose signal is made only if read", async () => {
    const flight = new SingleFlight<string>();
    let shared: Cancel | undefined;
    const value = await flight.join("k", (cancel) => {
      shared = cancel;
      return "v";
    });
    expect(value).toBe("v");
    expect(shared).toBeInstanceOf(Cancel);
    expect(shared?.cancelled).toBe(false);
  });

  it("a caller's Cancel leaves only its wait; the last to leave cancels the work and frees the key", async () => {
    const flight = new SingleFlight<string>();
    const held = heldWork<string>(); // never settles on its own
    const first = new Cancel();
    const second = new AbortController();
    const a = flight.join("k", held.work, first);
    const b = flight.join("k", held.work, second.signal); // a signal and a Cancel can share a call
    first.cancel(new Error("client left"));
    await expect(a).rejects.toThrow("client left");
    expect(held.shared?.cancelled).toBe(false);
    second.abort(new Error("deadline"));
    await expect(b).rejects.toThrow("deadline");
    expect(held.shared?.cancelled).toBe(true);
    expect(held.shared?.reason).toMatchObject({ message: "deadline" });
    expect(flight.has("k")).toBe(false);
    expect(await flight.join("k", () => "next")).toBe("next");
  });

  it("a caller that cannot leave keeps the work running when the others leave", async () => {
    const flight = new SingleFlight<string>();
    const held = heldWork<string>();
    const leaving = new Cancel();
    const a = flight.join("k", held.work, leaving);
    const b = flight.join("k", () => "unused"); // no leave
    leaving.cancel();
    await expect(a).rejects.toMatchObject({ name: "AbortError" });
    expect(held.shared?.cancelled).toBe(false);
    held.resolve("v");
    expect(await b).toBe("v");
  });

  it("rejects at once for a Cancel already fired, without starting work", async () => {
    const flight = new SingleFlight<string>();
    const gone = new Cancel();
    gone.cancel(new Error("gone"));
    let calls = 0;
    await expect(
      flight.join(
        "k",
        () => {
          calls++;
          return "v";
        },
        gone,
      ),
    ).rejects.toThrow("gone");
    expect(calls).toBe(0);
    expect(flight.has("k")).toBe(false);
  });

  it("takes the caller's callback off its Cancel once the call settles", async () => {
    const flight = new SingleFlight<string>();
    const caller = new Cancel();
    expect(await flight.join("k", () => "v", caller)).toBe("v");
    // Nothing of the settled call is left on the caller (a private field: no other way to see it).
    expect((caller as unknown as { callbacks: unknown }).callbacks).toBeUndefined();
  });

  it("on timeout cancels the work's Cancel with the TimeoutError", async () => {
    const flight = new SingleFlight<string>({ timeout: 20 });
    const held = heldWork<string>();
    const call = flight.join("k", held.work);
    await expect(call).rejects.toBeInstanceOf(TimeoutError);
    expect(held.shared?.reason).toBeInstanceOf(TimeoutError);
  });

  it("takes a Cancel from another copy of the package as a caller's leave", async () => {
    const OtherCopy = new Function(`return ${Cancel.toString()}`)() as typeof Cancel;
    const flight = new SingleFlight<string>();
    const held = heldWork<string>();
    const foreign = new OtherCopy();
    const call = flight.join("k", held.work, foreign);
    foreign.cancel(new Error("left"));
    await expect(call).rejects.toThrow("left");
    expect(held.shared?.cancelled).toBe(true);
  });
});

/** A receiver that records what it was told, in order. */
function recorder<T>() {
  const told: Array<{ ok: boolean; outcome: unknown }> = [];
  return {
    told,
    resolve: (value: T) => told.push({ ok: true, outcome: value }),
    reject: (error: unknown) => told.push({ ok: false, outcome: error }),
  };
}

describe("SingleFlight.joinTo", () => {
  it("shares one call among receivers and promise callers, each told once", async () => {
    const flight = new SingleFlight<string>();
    let calls = 0;
    let done: { resolve(value: string): void } | undefined;
    const work = (_cancel: Cancel, _key: string, receiver: { resolve(value: string): void }) => {
      calls++;
      done = receiver;
    };
    const a = recorder<string>();
    const b = recorder<string>();
    flight.joinTo("k", work, a);
    flight.joinTo("k", work, b, new Cancel());
    const c = flight.join("k", () => Promise.resolve("never called"));
    expect(calls).toBe(1);
    expect(a.told).toEqual([]);
    done!.resolve("v");
    // Receivers are told synchronously, as the work reports.
    expect(a.told).toEqual([{ ok: true, outcome: "v" }]);
    expect(b.told).toEqual([{ ok: true, outcome: "v" }]);
    expect(await c).toBe("v");
    expect(flight.has("k")).toBe(false);
    // A later report of the same call is ignored.
    done!.resolve("late");
    expect(a.told).toHaveLength(1);
  });

  it("a receiver joins a call started by join, and hears its value or error", async () => {
    const flight = new SingleFlight<string>();
    const ok = deferred<string>();
    const first = flight.join("k", () => ok.promise);
    const a = recorder<string>();
    flight.joinTo("k", () => expect.unreachable("a second call started"), a);
    ok.resolve("v");
    expect(await first).toBe("v");
    expect(a.told).toEqual([{ ok: true, outcome: "v" }]);

    const failing = deferred<string>();
    const second = flight.join("k", () => failing.promise);
    const b = recorder<string>();
    flight.joinTo("k", () => expect.unreachable("a second call started"), b);
    failing.reject(new Error("boom"));
    await expect(second).rejects.toThrow("boom");
    expect(b.told).toEqual([{ ok: false, outcome: new Error("boom") }]);
  });

  it("tells every receiver even if one throws, then throws the first error", () => {
    const flight = new SingleFlight<string>();
    let done: { resolve(value: string): void } | undefined;
    const a = recorder<string>();
    const c = recorder<string>();
    flight.joinTo(
      "k",
      (_cancel, _key, receiver) => {
        done = receiver;
      },
      a,
    );
    const faulty = {
      resolve: () => {
        throw new Error("receiver bug");
      },
      reject: () => {},
    };
    flight.joinTo("k", () => expect.unreachable("a second call started"), faulty);
    flight.joinTo("k", () => expect.unreachable("a second call started"), c);
    expect(() => done!.resolve("v")).toThrow("receiver bug");
    expect(a.told).toEqual([{ ok: true, outcome: "v" }]);
    expect(c.told).toEqual([{ ok: true, outcome: "v" }]);
    expect(flight.has("k")).toBe(false);
  });

  it("work that reports at once reaches the receiver before joinTo returns", () => {
    const flight = new SingleFlight<string>();
    const a = recorder<string>();
    const leave = new Cancel();
    flight.joinTo("k", (_cancel, key, done) => done.resolve(`value of ${key}`), a, leave);
    expect(a.told).toEqual([{ ok: true, outcome: "value of k" }]);
    expect(flight.has("k")).toBe(false);
    // The receiver's leave was never watched, so firing it later does nothing.
    leave.cancel();
    expect(a.told).toHaveLength(1);
  });

  it("turns a synchronous throw of the work into a rejection", () => {
    const flight = new SingleFlight<string>();
    const a = recorder<string>();
    flight.joinTo(
      "k",
      () => {
        throw new Error("boom");
      },
      a,
    );
    expect(a.told).toHaveLength(1);
    expect(a.told[0]!.ok).toBe(false);
    expect((a.told[0]!.outcome as Error).message).toBe("boom");
    expect(flight.has("k")).toBe(false);
  });

  it("a receiver that leaves is told at once; the last to leave cancels the work", () => {
    const flight = new SingleFlight<string>();
    let shared: Cancel | undefined;
    const work = (cancel: Cancel) => {
      shared = cancel;
    };
    const a = recorder<string>();
    const b = recorder<string>();
    const leaveA = new Cancel();
    const leaveB = new Cancel();
    flight.joinTo("k", work, a, leaveA);
    flight.joinTo("k", work, b, leaveB);
    leaveA.cancel(new Error("a left"));
    expect(a.told).toEqual([{ ok: false, outcome: new Error("a left") }]);
    expect(shared!.cancelled).toBe(false);
    expect(flight.has("k")).toBe(true);
    leaveB.cancel(new Error("b left"));
    expect(b.told).toEqual([{ ok: false, outcome: new Error("b left") }]);
    expect(shared!.cancelled).toBe(true);
    expect(flight.has("k")).toBe(false);
  });

  it("a receiver without a leave keeps the work running when the others leave", () => {
    const flight = new SingleFlight<string>();
    let shared: Cancel | undefined;
    let done: { resolve(value: string): void } | undefined;
    const a = recorder<string>();
    const b = recorder<string>();
    const leaveA = new Cancel();
    flight.joinTo(
      "k",
      (cancel, _key, receiver) => {
        shared = cancel;
        done = receiver;
      },
      a,
      leaveA,
    );
    flight.joinTo("k", () => expect.unreachable("a second call started"), b);
    leaveA.cancel();
    expect(shared!.cancelled).toBe(false);
    done!.resolve("v");
    expect(b.told).toEqual([{ ok: true, outcome: "v" }]);
    expect(a.told).toHaveLength(1);
    expect(a.told[0]!.ok).toBe(false);
  });

  it("rejects at once for a leave already fired, without starting work", () => {
    const flight = new SingleFlight<string>();
    const a = recorder<string>();
    const leave = new Cancel();
    leave.cancel(new Error("gone"));
    flight.joinTo("k", () => expect.unreachable("work started"), a, leave);
    expect(a.told).toEqual([{ ok: false, outcome: new Error("gone") }]);
    expect(flight.has("k")).toBe(false);
  });

  it("on timeout tells every receiver the TimeoutError and cancels the work", async () => {
    const flight = new SingleFlight<string>({ timeout: 20 });
    let shared: Cancel | undefined;
    const a = recorder<string>();
    flight.joinTo(
      "k",
      (cancel) => {
        shared = cancel;
      },
      a,
    );
    await vi.waitFor(() => expect(a.told).toHaveLength(1), { timeout: 10_000 });
    expect(a.told[0]!.outcome).toBeInstanceOf(TimeoutError);
    expect(shared!.reason).toBe(a.told[0]!.outcome);
    expect(flight.has("k")).toBe(false);
  });
});

describe("reportTo", () => {
  it("hands a promise's value or error to a receiver, once", async () => {
    const ok = recorder<string>();
    const failed = recorder<string>();
    reportTo(Promise.resolve("v"), ok);
    reportTo(Promise.reject(new Error("boom")), failed);
    await vi.waitFor(() => expect(ok.told.length + failed.told.length).toBe(2), {
      timeout: 10_000,
    });
    expect(ok.told).toEqual([{ ok: true, outcome: "v" }]);
    expect(failed.told).toEqual([{ ok: false, outcome: new Error("boom") }]);
  });
});
