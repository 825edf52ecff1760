import { BYTE_ENTRY_OVERHEAD_BYTES, chargedValueBytes, utf8ByteLength } from "@distcache/lru";
import { describe, expect, it } from "vitest";
import { ByteView } from "./byteview.js";
import { Group } from "./group.js";

/** A getter whose value for a key is `fill` repeated `size` times (both from the key). */
function sizedSource(size: number) {
  let calls = 0;
  const getter = (key: string) => {
    calls++;
    return new Uint8Array(size).fill(Number(key.slice(1)) & 0xff);
  };
  return { getter, calls: () => calls };
}

/** Bytes a group charges for one entry. */
const charge = (key: string, valueBytes: number) =>
  utf8ByteLength(key) + chargedValueBytes(valueBytes) + BYTE_ENTRY_OVERHEAD_BYTES;

describe("Group values in slab memory", () => {
  it("charges key bytes + the value's chunk + the measured per-entry overhead", async () => {
    const group = new Group("charge", 0, sizedSource(100).getter);
    await group.get("k1");
    await group.set("ключ", "x".repeat(300));
    expect(group.stats().bytes).toBe(charge("k1", 100) + charge("ключ", 300));
    expect(chargedValueBytes(100)).toBe(104);
  });

  it("holds as many entries as the budget pays for, evicting the least recently used", async () => {
    const { getter } = sizedSource(100);
    const group = new Group("budget", 10 * charge("k10", 100), getter);
    for (let i = 10; i < 20; i++) await group.get(`k${i}`);
    expect(group.stats()).toMatchObject({ items: 10, evictions: 0 });
    await group.get("k10"); // now the newest
    await group.get("k20");
    expect(group.stats()).toMatchObject({ items: 10, evictions: 1 });
    expect(group.getCached("k11")).toBeUndefined();
    expect(group.getCached("k10")?.length).toBe(100);
  });

  it("a value handed out never changes when its entry is evicted and its chunk reused", async () => {
    const { getter } = sizedSource(100);
    const group = new Group("reuse", 20 * charge("k00", 100), getter);
    for (let i = 10; i < 30; i++) await group.get(`k${i}`);
    const held = [];
    for (let i = 10; i < 30; i++) {
      const viaGet = await group.get(`k${i}`); // hits
      const viaCached = group.getCached(`k${i}`)!;
      const raw = ByteView.unwrap(viaCached);
      held.push({ i, viaGet, viaCached, raw });
    }
    // Evict every one of them; new values of the same size take their chunks.
    for (let i = 30; i < 90; i++) await group.get(`k${i}`);
    expect(group.getCached("k10")).toBeUndefined();
    for (const { i, viaGet, viaCached, raw } of held) {
      const expected = new Uint8Array(100).fill(i);
      expect(viaGet.equals(expected)).toBe(true);
      expect(viaCached.equals(expected)).toBe(true);
      expect([...raw]).toEqual([...expected]);
    }
  });

  it("a set that replaces a value leaves views of the old value as they were", async () => {
    const group = new Group("replace", 1 << 20, () => "unused");
    await group.set("k", "old");
    const before = group.getCached("k")!;
    const raw = ByteView.unwrap(before);
    await group.set("k", "new"); // same size: written in place, after copying the page
    expect(before.toString()).toBe("old");
    expect(Buffer.from(raw).toString()).toBe("old");
    expect(group.getCached("k")!.toString()).toBe("new");
    await group.delete("k");
    expect(before.toString()).toBe("old");
  });

  it("a set over the budget is reported as not cached, exactly where the cache refuses it", async () => {
    const budget = 1_000;
    const group = new Group("tight", budget, () => "from the getter");
    let largest = 0; // the largest value whose entry fits
    for (let n = 0; n <= budget; n++) if (charge("k", n) <= budget) largest = n;
    // The largest value that fits is cached and reported as such.
    expect((await group.set("k", "x".repeat(largest))).notCached).toBeUndefined();
    expect(group.getCached("k")?.length).toBe(largest);
    // One byte more is over: written (the old copy is gone), not cached, and said so.
    const result = await group.set("k", "y".repeat(largest + 1));
    expect(result.failed).toEqual([]);
    expect(result.notCached).toEqual({
      valueBytes: largest + 1,
      entryBytes: charge("k", largest + 1),
      budget,
      message: `value of ${largest + 1} bytes not cached: over the group's ${budget}-byte budget (the entry is charged ${charge("k", largest + 1)} bytes with key and overhead)`,
    });
    expect(group.getCached("k")).toBeUndefined();
    expect((await group.get("k")).toString()).toBe("from the getter");
  });

  it("an unbounded group caches every set", async () => {
    const group = new Group("unbounded", 0, () => "unused");
    expect(await group.set("k", new Uint8Array(100_000))).toEqual({ failed: [] });
  });

  it("round-trips empty values and values larger than a slab chunk", async () => {
    const group = new Group("sizes", 0, (key) =>
      key === "empty" ? new Uint8Array(0) : new Uint8Array(10_000).fill(9),
    );
    expect((await group.get("empty")).length).toBe(0);
    expect((await group.get("big")).length).toBe(10_000);
    const hit = group.getCached("big")!;
    expect(hit.length).toBe(10_000);
    expect(hit.bytes().every((b) => b === 9)).toBe(true);
    expect(group.stats().bytes).toBe(charge("empty", 0) + charge("big", 10_000));
  });
});
