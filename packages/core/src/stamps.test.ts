import { describe, expect, it } from "vitest";
import {
  Incarnation,
  MAX_STAMP_PART,
  StaleGuard,
  stampBefore,
  validStamp,
  WriteClock,
} from "./stamps.js";

describe("WriteClock", () => {
  it("orders its own writes, and stamps taken after its incarnation moved after all earlier ones", () => {
    const incarnation = new Incarnation(1_000);
    const clock = new WriteClock(() => incarnation.current);
    const before = clock.now();
    clock.tick();
    expect(stampBefore(before, clock.now())).toBe(true);
    expect(stampBefore(clock.now(), before)).toBe(false);
    expect(stampBefore(clock.now(), clock.now())).toBe(false);
    const ticked = clock.now();
    expect(incarnation.advancePast(5_000)).toBe(true);
    expect(incarnation.current).toBe(5_001);
    expect(stampBefore(ticked, clock.now())).toBe(true);
  });
});

describe("Incarnation", () => {
  it("only grows, and stops at the largest exact number", () => {
    const incarnation = new Incarnation(10);
    expect(incarnation.advancePast(3)).toBe(false);
    expect(incarnation.current).toBe(10);
    expect(incarnation.advancePast(10)).toBe(true);
    expect(incarnation.current).toBe(11);
    expect(incarnation.advancePast(MAX_STAMP_PART)).toBe(true);
    expect(incarnation.current).toBe(MAX_STAMP_PART);
    expect(incarnation.advancePast(MAX_STAMP_PART)).toBe(false);
    expect(incarnation.current).toBe(MAX_STAMP_PART);
  });

  it("takes a first guess from the wall clock that nothing relies on", () => {
    expect(new Incarnation().current).toBeGreaterThan(Date.UTC(2020, 0) * 1024);
  });
});

describe("validStamp", () => {
  it("takes exact non-negative integers only", () => {
    expect(validStamp({ epoch: 0, seq: 0 })).toBe(true);
    expect(validStamp({ epoch: MAX_STAMP_PART, seq: MAX_STAMP_PART })).toBe(true);
    expect(validStamp({ epoch: MAX_STAMP_PART + 1, seq: 0 })).toBe(false);
    expect(validStamp({ epoch: 1, seq: -1 })).toBe(false);
    expect(validStamp({ epoch: 1.5, seq: 0 })).toBe(false);
  });
});

describe("StaleGuard", () => {
  const at = (seq: number, epoch = 1) => ({ epoch, seq });

  it("refuses copies from the announcer read before its write, admits later ones", () => {
    const guard = new StaleGuard();
    expect(guard.record("k", "a", at(5))).toBeUndefined();
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
    expect(guard.record("k", "a", at(3))).toBeUndefined();
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

  it("holds a key written from behind (a lower epoch than seen) at the highest epoch, for every copy from that sender", () => {
    const guard = new StaleGuard();
    // The old incarnation (epoch 9) wrote k and handed out copies of k2.
    guard.record("k", "a", at(4, 9));
    expect(guard.admits("k2", "a", at(7, 9))).toBe(true);
    // The sender restarted with a lower first guess (epoch 3): its write is behind.
    const ahead = guard.record("k2", "a", at(1, 3));
    expect(ahead).toEqual({ epoch: 9, seq: MAX_STAMP_PART });
    expect(guard.aheadOf("a", at(2, 3))).toEqual(ahead);
    // A late copy of k2 from the old incarnation, read before that write: refused.
    expect(guard.admits("k2", "a", at(8, 9))).toBe(false);
    // Copies of k2 from the new incarnation are refused too, until it moves past 9.
    expect(guard.admits("k2", "a", at(2, 3))).toBe(false);
    expect(guard.admits("k2", "a", at(0, 10))).toBe(true);
    // Keys it has not written since are not held: a fresh copy from the new incarnation is kept.
    expect(guard.admits("k3", "a", at(2, 3))).toBe(true);
    expect(guard.highestEpoch("a")).toBe(10);
    expect(guard.aheadOf("a", at(0, 10))).toBeUndefined();
  });

  it("keeps a forged far-future stamp from freezing more than that sender's copies", () => {
    const guard = new StaleGuard(10);
    guard.record("k", "a", at(MAX_STAMP_PART, MAX_STAMP_PART));
    for (let i = 0; i < 20; i++) guard.record(`x${i}`, "a", at(MAX_STAMP_PART, MAX_STAMP_PART));
    // Every copy from "a" is refused now (a replica without a copy), never a stale one admitted...
    expect(guard.admits("y", "a", at(1, 5))).toBe(false);
    // ...and writes from "a" are reported behind, so the node drops its copy.
    expect(guard.record("y", "a", at(1, 5))).toBeDefined();
    // Other senders are untouched.
    expect(guard.admits("y", "b", at(1, 5))).toBe(true);
  });
});
