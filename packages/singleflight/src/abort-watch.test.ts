// Many waiters on one AbortSignal: one listener, no leak warning, all woken.
import { getEventListeners } from "node:events";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
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
