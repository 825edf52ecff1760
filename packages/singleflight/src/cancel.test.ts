import { describe, expect, it } from "vitest";
import { Cancel, isCancel } from "./cancel.js";

describe("Cancel", () => {
  it("fires once: records the reason and calls each callback once, in order", () => {
    const cancel = new Cancel();
    const calls: string[] = [];
    cancel.onCancel(() => calls.push("a"));
    cancel.onCancel(() => calls.push("b"));
    expect(cancel.cancelled).toBe(false);
    expect(cancel.reason).toBeUndefined();
    const reason = new Error("gone");
    cancel.cancel(reason);
    cancel.cancel(new Error("again"));
    expect(calls).toEqual(["a", "b"]);
    expect(cancel.cancelled).toBe(true);
    expect(cancel.reason).toBe(reason);
  });

  it("calls every callback even when one throws, then throws the first error", () => {
    const cancel = new Cancel();
    const calls: string[] = [];
    cancel.onCancel(() => calls.push("a"));
    cancel.onCancel(() => {
      throw new Error("b failed");
    });
    cancel.onCancel(() => {
      throw new Error("c failed");
    });
    cancel.onCancel(() => calls.push("d"));
    expect(() => cancel.cancel()).toThrow("b failed");
    expect(calls).toEqual(["a", "d"]);
    expect(cancel.cancelled).toBe(true);
  });

  it("gives an AbortError by default, as AbortController.abort() does", () => {
    const cancel = new Cancel();
    cancel.cancel();
    expect(cancel.reason).toBeInstanceOf(DOMException);
    expect(cancel.reason).toMatchObject({ name: "AbortError" });
  });

  it("offCancel removes one callback, alone or among several", () => {
    const calls: string[] = [];
    const a = () => calls.push("a");
    const b = () => calls.push("b");
    const c = () => calls.push("c");
    const alone = new Cancel();
    alone.onCancel(a);
    alone.offCancel(a);
    alone.offCancel(b); // never added: nothing happens
    alone.cancel();
    expect(calls).toEqual([]);
    const several = new Cancel();
    several.onCancel(a);
    several.onCancel(b);
    several.onCancel(c);
    several.offCancel(b);
    several.cancel();
    expect(calls).toEqual(["a", "c"]);
  });

  it("one Cancel shared by many callbacks: each added once, each removed alone", () => {
    const cancel = new Cancel();
    let calls = 0;
    const each = Array.from({ length: 1_000 }, () => () => calls++);
    for (const callback of each) cancel.onCancel(callback);
    cancel.onCancel(each[0]!); // already added: still called once
    for (const callback of each.slice(0, 500)) cancel.offCancel(callback);
    cancel.cancel();
    expect(calls).toBe(500);
  });

  it("refuses a callback once cancelled (the caller checks `cancelled` first)", () => {
    const cancel = new Cancel();
    cancel.cancel();
    expect(() => cancel.onCancel(() => {})).toThrow("already cancelled");
  });

  it("makes its AbortSignal only when read, aborted with the same reason", () => {
    const before = new Cancel();
    const signal = before.signal;
    expect(before.signal).toBe(signal);
    expect(signal.aborted).toBe(false);
    const reason = new Error("deadline");
    before.cancel(reason);
    expect(signal.aborted).toBe(true);
    expect(signal.reason).toBe(reason);
    // Read after it fired: already aborted.
    const after = new Cancel();
    after.cancel(reason);
    expect(after.signal.aborted).toBe(true);
    expect(after.signal.reason).toBe(reason);
  });
});

describe("isCancel", () => {
  it("knows a Cancel by its shape, also one from another copy of the package, and not a signal", () => {
    // A copy of the class, as a second installed version of the package would make.
    const OtherCopy = new Function(`return ${Cancel.toString()}`)() as typeof Cancel;
    const foreign = new OtherCopy();
    expect(foreign instanceof Cancel).toBe(false);
    expect(isCancel(foreign)).toBe(true);
    expect(isCancel(new Cancel())).toBe(true);
    expect(isCancel(new AbortController().signal)).toBe(false);
    expect(isCancel(undefined)).toBe(false);
    expect(isCancel({ onCancel: () => {} })).toBe(false);
  });
});
