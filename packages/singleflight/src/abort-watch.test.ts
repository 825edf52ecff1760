// Many waiters on one AbortSignal: one listener, no leak warning, all woken.
import { getEventListeners } from "node:events";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { unwatchAbort, watchAbort } from "./abort-watch.js";
import { SingleFlight } from "./singleflight.js";

describe("many calls sharing one AbortSignal", () => {
  const warnings: Error[] = [];
  const onWarning = (warning: Error) => warnings.push(warning);
  beforeEach(() => {
    warnings.length = 0;
    process.on("warning", onWarning);
  });
  afterEach(() => {
    process.off("warning", onWarning);
  });

  it("1,000 waiters add one listener, remove it when they settle, and print no warning", async () => {
    const flight = new SingleFlight<string>();
    const controller = new AbortController();
    const releases: (() => void)[] = [];
    const calls = Array.from({ length: 1_000 }, (_, i) =>
      flight.do(
        `k${i}`,
        () =>
          new Promise<string>((resolve) => {
            releases.push(() => resolve(`v${i}`));
          }),
        { signal: controller.signal },
      ),
    );
    expect(getEventListeners(controller.signal, "abort")).toHaveLength(1);
    for (const release of releases) release();
    const values = await Promise.all(calls);
    expect(values[999]).toBe("v999");
    expect(getEventListeners(controller.signal, "abort")).toHaveLength(0);
    // Warnings are emitted on the next tick.
    await new Promise((resolve) => setImmediate(resolve));
    expect(warnings.map((w) => w.name)).not.toContain("MaxListenersExceededWarning");
  });

  it("an abort wakes every waiter on the signal, and only them", async () => {
    const flight = new SingleFlight<string>();
    const shared = new AbortController();
    const other = new AbortController();
    const never = () => new Promise<string>(() => {});
    const onShared = Array.from({ length: 500 }, (_, i) =>
      flight.do(`s${i}`, never, { signal: shared.signal }),
    );
    let otherSettled = false;
    const onOther = flight.do("o", never, { signal: other.signal }).catch(() => {
      otherSettled = true;
    });
    shared.abort(new Error("caller left"));
    const outcomes = await Promise.allSettled(onShared);
    expect(outcomes.every((o) => o.status === "rejected")).toBe(true);
    expect((outcomes[0] as PromiseRejectedResult).reason.message).toBe("caller left");
    // Each of those calls had no other waiter: they were forgotten and their work aborted.
    expect(flight.size).toBe(1);
    expect(getEventListeners(shared.signal, "abort")).toHaveLength(0);
    await new Promise((resolve) => setImmediate(resolve));
    expect(otherSettled).toBe(false);
    expect(getEventListeners(other.signal, "abort")).toHaveLength(1);
    other.abort();
    await onOther;
    expect(otherSettled).toBe(true);
  });
});

describe("watchAbort", () => {
  it("gives a signal one listener for one callback or many, and calls each once on abort", () => {
    const controller = new AbortController();
    const { signal } = controller;
    const called: number[] = [];
    const callbacks = [0, 1, 2].map((i) => () => called.push(i));
    watchAbort(signal, callbacks[0]!);
    expect(getEventListeners(signal, "abort")).toHaveLength(1);
    watchAbort(signal, callbacks[1]!);
    watchAbort(signal, callbacks[2]!);
    expect(getEventListeners(signal, "abort")).toHaveLength(1);
    unwatchAbort(signal, callbacks[1]!);
    controller.abort();
    expect(called).toEqual([0, 2]);
    expect(getEventListeners(signal, "abort")).toHaveLength(0);
  });

  it("removes the listener when the last callback is unwatched, alone or after others", () => {
    const single = new AbortController().signal;
    const one = () => {};
    watchAbort(single, one);
    unwatchAbort(single, () => {}); // not watched: nothing changes
    expect(getEventListeners(single, "abort")).toHaveLength(1);
    unwatchAbort(single, one);
    expect(getEventListeners(single, "abort")).toHaveLength(0);

    const shared = new AbortController().signal;
    const a = () => {};
    const b = () => {};
    watchAbort(shared, a);
    watchAbort(shared, b);
    unwatchAbort(shared, a);
    expect(getEventListeners(shared, "abort")).toHaveLength(1);
    unwatchAbort(shared, b);
    expect(getEventListeners(shared, "abort")).toHaveLength(0);
    // Watched again after all left: a listener again, and it fires.
    let fired = 0;
    const controller = new AbortController();
    watchAbort(controller.signal, () => fired++);
    controller.abort();
    expect(fired).toBe(1);
  });
});
