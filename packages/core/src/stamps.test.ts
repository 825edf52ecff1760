import { describe, expect, it } from "vitest";
import { StaleGuard, stampBefore, WriteClock } from "./stamps.js";

describe("WriteClock", () => {
  it("orders its own writes, and a later clock after an earlier one", () => {
    const clock = new WriteClock();
    const before = clock.now();
    clock.tick();
    expect(stampBefore(before, clock.now())).toBe(true);
    expect(stampBefore(clock.now(), before)).toBe(false);
    expect(stampBefore(clock.now(), clock.now())).toBe(false);
    const restarted = new WriteClock();
    expect(stampBefore(clock.now(), restarted.now())).toBe(true);
  });
});

describe("StaleGuard", () => {
  const at = (seq: number) => ({ epoch: 1, seq });

  it("refuses copies from the announcer read before its write, admits later ones", () => {
    const guard = new StaleGuard();
    guard.record("k", "a", at(5));
    expect(guard.admits("k", "a", at(4))).toBe(false);
    expect(guard.admits("k", "a", at(5))).toBe(true);
    expect(guard.admits("k", "a", at(9))).toBe(true);
    expect(guard.admits("other", "a", at(0))).toBe(true);
    // Another member's clock cannot be compared with a's.
    expect(guard.admits("k", "b", at(0))).toBe(true);
  });

  it("never moves a key's stamp backwards for the same announcer", () => {
    const guard = new StaleGuard();
    guard.record("k", "a", at(7));
    guard.record("k", "a", at(3));
    expect(guard.admits("k", "a", at(6))).toBe(false);
  });

  it("stays within its bound and, for forgotten keys, refuses rather than admits", () => {
    const guard = new StaleGuard(100);
    for (let i = 0; i < 1_000; i++) guard.record(`k${i}`, "a", at(i + 1));
    expect(guard.size).toBe(100);
    // k0 was forgotten, but a copy of it read before later forgotten writes is still refused.
    expect(guard.admits("k0", "a", at(0))).toBe(false);
    expect(guard.admits("k0", "a", at(1_000))).toBe(true);
    expect(guard.admits("k999", "a", at(999))).toBe(false);
  });
});
