// ByteLRU: its charges, the LRU contract, chunks and pages (compaction, pages handed out),
// and a random workload against a model.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  BYTE_ENTRY_OVERHEAD_BYTES,
  ByteLRU,
  chargedValueBytes,
  LARGE_VALUE_OVERHEAD_BYTES,
  MAX_CHUNK_BYTES,
} from "./byte-lru.js";
import { utf8ByteLength } from "./lru.js";
import type { EvictionReason } from "./slot-cache.js";

/** A value of `n` bytes, all `fill`. */
const bytes = (n: number, fill = 0) => new Uint8Array(n).fill(fill);
/** Bytes charged for an entry with an ASCII key. */
const cost = (key: string, valueBytes: number) =>
  key.length + chargedValueBytes(valueBytes) + BYTE_ENTRY_OVERHEAD_BYTES;

/** A zero-copy view as a consumer of `view` would keep it: the page and the range. */
interface Held {
  bytes: Uint8Array;
  offset: number;
  length: number;
}
const hold = (bytes: Uint8Array, offset: number, length: number): Held => ({
  bytes,
  offset,
  length,
});
const contents = (h: Held) => [...h.bytes.subarray(h.offset, h.offset + h.length)];

describe("chargedValueBytes", () => {
  it("rounds up to a multiple of 8 up to 256 bytes, by at most 12.5% up to 4096", () => {
    expect(chargedValueBytes(0)).toBe(0);
    expect(chargedValueBytes(1)).toBe(8);
    expect(chargedValueBytes(8)).toBe(8);
    expect(chargedValueBytes(9)).toBe(16);
    expect(chargedValueBytes(100)).toBe(104);
    expect(chargedValueBytes(256)).toBe(256);
    expect(chargedValueBytes(257)).toBe(288);
    expect(chargedValueBytes(512)).toBe(512);
    expect(chargedValueBytes(513)).toBe(576);
    expect(chargedValueBytes(4000)).toBe(4096);
    expect(chargedValueBytes(MAX_CHUNK_BYTES)).toBe(4096);
    expect(chargedValueBytes(MAX_CHUNK_BYTES + 1)).toBe(4097 + LARGE_VALUE_OVERHEAD_BYTES);
    let previous = 0;
    for (let n = 1; n <= MAX_CHUNK_BYTES; n++) {
      const charged = chargedValueBytes(n);
      expect(charged).toBeGreaterThanOrEqual(n);
      expect(charged).toBeGreaterThanOrEqual(previous); // classes are ordered
      if (n > 256) expect(charged).toBeLessThanOrEqual(n * 1.125);
      else expect(charged - n).toBeLessThan(8);
      previous = charged;
    }
  });
});

describe("ByteLRU", () => {
  it("stores copies: neither the caller's array nor a returned copy changes the cache", () => {
    const cache = new ByteLRU({ maxBytes: 1 << 20 });
    const input = new Uint8Array([1, 2, 3]);
    expect(cache.set("k", input)).toBe(true);
    input[0] = 99;
    const out = cache.get("k")!;
    expect([...out]).toEqual([1, 2, 3]);
    out[1] = 99;
    expect([...cache.get("k")!]).toEqual([1, 2, 3]);
    expect([...cache.peek("k")!]).toEqual([1, 2, 3]);
    expect(cache.has("k")).toBe(true);
    expect(cache.get("nope")).toBeUndefined();
  });

  it("copies a Buffer too (whose slice would share memory)", () => {
    const cache = new ByteLRU({ maxBytes: 0 });
    const small = Buffer.from("hello");
    const large = Buffer.alloc(MAX_CHUNK_BYTES + 10, 7);
    cache.set("small", small);
    cache.set("large", large);
    small[0] = 0;
    large[0] = 0;
    expect(Buffer.from(cache.get("small")!).toString()).toBe("hello");
    expect(cache.get("large")![0]).toBe(7);
    expect(cache.get("large")!.byteLength).toBe(MAX_CHUNK_BYTES + 10);
  });

  it("holds empty, slab and large values and charges each exactly", () => {
    const cache = new ByteLRU({ maxBytes: 0 });
    cache.set("empty", new Uint8Array(0));
    cache.set("small", bytes(100, 1));
    cache.set("large", bytes(10_000, 2));
    expect(cache.get("empty")!.byteLength).toBe(0);
    expect([...cache.get("small")!]).toEqual(Array(100).fill(1));
    expect(cache.get("large")!.every((b) => b === 2)).toBe(true);
    expect(cache.bytes).toBe(cost("empty", 0) + cost("small", 100) + cost("large", 10_000));
    expect(cache.stats()).toMatchObject({
      items: 3,
      chunkBytes: 104 + 10_000,
    });
    cache.delete("small");
    cache.delete("large");
    expect(cache.bytes).toBe(cost("empty", 0));
    expect(cache.stats().chunkBytes).toBe(0);
  });

  it("counts UTF-8 bytes of the key", () => {
    const cache = new ByteLRU({ maxBytes: 0 });
    cache.set("ключ😀", bytes(1));
    expect(cache.bytes).toBe(utf8ByteLength("ключ😀") + 8 + BYTE_ENTRY_OVERHEAD_BYTES);
  });

  it("evicts the least recently used entries, and get makes an entry the newest", () => {
    const events: [string, EvictionReason][] = [];
    const cache = new ByteLRU({
      maxBytes: 3 * cost("a", 10),
      onEvicted: (key, reason) => events.push([key, reason]),
    });
    cache.set("a", bytes(10, 1));
    cache.set("b", bytes(10, 2));
    cache.set("c", bytes(10, 3));
    cache.get("a"); // order now b, c, a
    cache.set("d", bytes(10, 4));
    expect([...cache.keys()]).toEqual(["c", "a", "d"]);
    expect(events).toEqual([["b", "evict"]]);
    cache.peek("c"); // no recency change
    cache.set("e", bytes(10, 5));
    expect([...cache.keys()]).toEqual(["a", "d", "e"]);
    expect(cache.stats().evictions).toBe(2);
    expect([...cache.entries()].map(([k, v]) => [k, v[0]])).toEqual([
      ["a", 1],
      ["d", 4],
      ["e", 5],
    ]);
    expect(cache.bytes).toBeLessThanOrEqual(cache.maxBytes);
  });

  it("refuses an entry larger than the budget and drops the value it replaced", () => {
    const events: [string, EvictionReason][] = [];
    const cache = new ByteLRU({
      maxBytes: cost("k", 100),
      onEvicted: (key, reason) => events.push([key, reason]),
    });
    expect(cache.set("k", bytes(100))).toBe(true);
    expect(cache.set("k", bytes(105))).toBe(false); // the next size class
    expect(cache.has("k")).toBe(false);
    expect(cache.bytes).toBe(0);
    expect(events).toEqual([["k", "delete"]]);
  });

  it("replaces a value, in place within its size class and across classes", () => {
    const events: [string, EvictionReason][] = [];
    const cache = new ByteLRU({
      maxBytes: 0,
      onEvicted: (key, reason) => events.push([key, reason]),
    });
    cache.set("k", bytes(100, 1));
    const before = cache.stats().storeBytes;
    cache.set("k", bytes(98, 2)); // same class (104)
    expect(cache.stats().storeBytes).toBe(before);
    expect([...cache.get("k")!]).toEqual(Array(98).fill(2));
    cache.set("k", bytes(3_000, 3));
    expect(cache.get("k")!.byteLength).toBe(3_000);
    cache.set("k", bytes(9_000, 4));
    expect(cache.get("k")![8_999]).toBe(4);
    cache.set("k", bytes(0));
    expect(cache.get("k")!.byteLength).toBe(0);
    expect(cache.bytes).toBe(cost("k", 0));
    expect(cache.stats().chunkBytes).toBe(0);
    expect(events.map(([, reason]) => reason)).toEqual(Array(4).fill("replace"));
  });

  it("expires entries when read after their ttl, and purgeStale sweeps them", () => {
    let now = 0;
    const cache = new ByteLRU({ maxBytes: 0, ttl: 100, now: () => now });
    cache.set("a", bytes(10));
    cache.set("b", bytes(10), { ttl: 0 });
    cache.set("c", bytes(10), { ttl: 300 });
    now = 150;
    expect(cache.get("a")).toBeUndefined();
    expect(cache.get("b")).toBeDefined();
    now = 400;
    expect(cache.purgeStale()).toBe(1);
    expect([...cache.keys()]).toEqual(["b"]);
    expect(cache.stats()).toMatchObject({ expirations: 2, items: 1, hits: 1, misses: 1 });
  });

  it("clear removes everything and reports each key", () => {
    const removed: string[] = [];
    const cache = new ByteLRU({ maxBytes: 0, onEvicted: (key) => removed.push(key) });
    for (let i = 0; i < 100; i++) cache.set(`k${i}`, bytes(i * 50, i));
    cache.clear();
    expect(removed.length).toBe(100);
    expect(cache.stats()).toMatchObject({ items: 0, bytes: 0, chunkBytes: 0, storeBytes: 0 });
    cache.set("again", bytes(5, 5));
    expect([...cache.get("again")!]).toEqual([5, 5, 5, 5, 5]);
  });

  it("rejects a bad budget or ttl and a value that is not a Uint8Array", () => {
    expect(() => new ByteLRU({ maxBytes: -1 })).toThrow(RangeError);
    expect(() => new ByteLRU({ maxBytes: Number.NaN })).toThrow(RangeError);
    expect(() => new ByteLRU({ maxBytes: 0, ttl: -5 })).toThrow(RangeError);
    const cache = new ByteLRU({ maxBytes: 0 });
    expect(() => cache.set("k", "text" as unknown as Uint8Array)).toThrow(TypeError);
  });
});

describe("ByteLRU chunks", () => {
  it("reuses a freed chunk for the next value of its size class", () => {
    const cache = new ByteLRU({ maxBytes: 0 });
    for (let i = 0; i < 1_000; i++) cache.set(`k${i}`, bytes(100, i));
    const store = cache.stats().storeBytes;
    for (let i = 0; i < 1_000; i += 2) cache.delete(`k${i}`);
    for (let i = 0; i < 1_000; i += 2) cache.set(`n${i}`, bytes(100, i + 1));
    expect(cache.stats().storeBytes).toBe(store);
    for (let i = 0; i < 1_000; i += 2) {
      expect(cache.get(`n${i}`)![0]).toBe((i + 1) & 0xff);
      expect(cache.get(`k${i + 1}`)![0]).toBe((i + 1) & 0xff);
    }
  });

  it("a value handed out without copying never changes: not on reuse, move, replacement or clear", () => {
    const cache = new ByteLRU<Held>({ maxBytes: 0, view: hold });
    const handed: [Held, number[]][] = [];
    const keep = (key: string) => {
      const h = cache.get(key)!;
      handed.push([h, contents(h)]);
    };
    for (let i = 0; i < 2_000; i++) cache.set(`k${i}`, bytes(100, i));
    for (let i = 0; i < 2_000; i += 7) keep(`k${i}`);
    // Frees chunks, refills them, and (past the hole limit) moves chunks into holes.
    for (let i = 0; i < 2_000; i += 3) cache.delete(`k${i}`);
    for (let i = 0; i < 700; i++) cache.set(`n${i}`, bytes(100, 200 + (i % 50)));
    for (let i = 1; i < 2_000; i += 3) keep(`k${i}`);
    for (let i = 1; i < 2_000; i += 3) cache.set(`k${i}`, bytes(97, 1)); // in place
    for (let i = 2; i < 2_000; i += 3) cache.set(`k${i}`, bytes(300, 2)); // another class
    cache.clear();
    for (let i = 0; i < 2_000; i++) cache.set(`z${i}`, bytes(100, 0xee));
    for (const [h, expected] of handed) expect(contents(h)).toEqual(expected);
  });

  it("moves chunks into holes and gives back emptied pages: storage stays near the live chunks", () => {
    const cache = new ByteLRU({ maxBytes: 0 });
    const n = 20_000;
    for (let i = 0; i < n; i++) cache.set(`k${i}`, bytes(100, i));
    const full = cache.stats();
    expect(full.chunkBytes).toBe(n * 104);
    // Pages are about 16 KiB: what is not a live chunk is at most the last page, a spare one and the holes.
    const slack = (live: number) => (live * 104) / 32 + 3 * 16 * 1024;
    expect(full.storeBytes - full.chunkBytes).toBeLessThanOrEqual(slack(n));
    // Delete 90% in a scattered order: without moving chunks, every page would stay in use.
    for (let i = 0; i < n; i++) if (i % 10 !== 0) cache.delete(`k${i}`);
    const thinned = cache.stats();
    expect(thinned.chunkBytes).toBe((n / 10) * 104);
    expect(thinned.storeBytes - thinned.chunkBytes).toBeLessThanOrEqual(slack(n / 10));
    for (let i = 0; i < n; i += 10) expect(cache.get(`k${i}`)![50]).toBe(i & 0xff);
    for (let i = 0; i < n; i += 10) cache.delete(`k${i}`);
    expect(cache.stats().storeBytes).toBeLessThanOrEqual(2 * 16 * 1024);
  });
});

describe("ByteLRU under a random workload (property, against a model)", () => {
  type Op =
    | { op: "set"; key: string; size: number; fill: number }
    | { op: "get" | "delete" | "peek" | "has"; key: string }
    | { op: "tick"; ms: number };
  const key = fc.constantFrom(...Array.from({ length: 12 }, (_, i) => `key-${i}`), "ключ", "😀");
  // Mostly a few sizes, so chunks of one class are freed and reused often.
  const size = fc.oneof(
    { weight: 4, arbitrary: fc.constantFrom(3, 5, 100, 1_500) },
    { weight: 1, arbitrary: fc.nat({ max: 300 }) },
    { weight: 1, arbitrary: fc.integer({ min: 1_000, max: MAX_CHUNK_BYTES + 200 }) },
    {
      weight: 1,
      arbitrary: fc.constantFrom(0, 1, 8, 9, 256, 257, MAX_CHUNK_BYTES, MAX_CHUNK_BYTES + 1),
    },
  );
  const op: fc.Arbitrary<Op> = fc.oneof(
    {
      weight: 4,
      arbitrary: fc.record({ op: fc.constant("set" as const), key, size, fill: fc.nat(255) }),
    },
    {
      weight: 4,
      arbitrary: fc.record({
        op: fc.constantFrom("get" as const, "delete" as const, "peek" as const, "has" as const),
        key,
      }),
    },
    {
      weight: 1,
      arbitrary: fc.record({ op: fc.constant("tick" as const), ms: fc.nat({ max: 30 }) }),
    },
  );

  it("matches a model: values, LRU order, evictions, exact charges, budget, and unchanged hand-outs", () => {
    let handedTotal = 0;
    fc.assert(
      fc.property(
        fc.oneof(fc.constant(0), fc.nat({ max: 3_000 }), fc.integer({ min: 3_000, max: 40_000 })),
        fc.constantFrom(0, 200),
        fc.array(op, { minLength: 20, maxLength: 400 }),
        (maxBytes, ttl, ops) => {
          let now = 0;
          /** key -> [value bytes, expiry]; Map order = LRU order, oldest first. */
          const model = new Map<string, { value: number[]; expires: number }>();
          const cache = new ByteLRU<Held>({ maxBytes, ttl, now: () => now, view: hold });
          const handed: [Held, number[]][] = [];
          const charge = (k: string, n: number) =>
            utf8ByteLength(k) + chargedValueBytes(n) + BYTE_ENTRY_OVERHEAD_BYTES;
          const live = (k: string) => {
            const entry = model.get(k);
            if (entry === undefined) return undefined;
            if (entry.expires !== 0 && entry.expires <= now) {
              model.delete(k);
              return undefined;
            }
            return entry;
          };
          for (const o of ops) {
            if (o.op === "tick") {
              now += o.ms;
            } else if (o.op === "set") {
              const value = Array(o.size).fill(o.fill);
              const stored = cache.set(o.key, Uint8Array.from(value));
              const c = charge(o.key, o.size);
              expect(stored).toBe(maxBytes === 0 || c <= maxBytes);
              model.delete(o.key);
              if (stored) {
                model.set(o.key, { value, expires: ttl === 0 ? 0 : now + ttl });
                let total = 0;
                for (const [k, e] of model) total += charge(k, e.value.length);
                // Evict the oldest (expired or not: the cache evicts by recency only).
                for (const [k, e] of model) {
                  if (maxBytes === 0 || total <= maxBytes) break;
                  total -= charge(k, e.value.length);
                  model.delete(k);
                }
              }
            } else if (o.op === "get") {
              const got = cache.get(o.key);
              const entry = live(o.key);
              if (entry === undefined) expect(got).toBeUndefined();
              else {
                expect(contents(got!)).toEqual(entry.value);
                handed.push([got!, entry.value]);
                model.delete(o.key);
                model.set(o.key, entry); // newest
              }
            } else if (o.op === "peek") {
              const got = cache.peek(o.key);
              const entry = live(o.key);
              if (entry === undefined) expect(got).toBeUndefined();
              else {
                expect(contents(got!)).toEqual(entry.value);
                handed.push([got!, entry.value]);
              }
            } else if (o.op === "has") {
              expect(cache.has(o.key)).toBe(live(o.key) !== undefined);
            } else {
              expect(cache.delete(o.key)).toBe(live(o.key) !== undefined);
              model.delete(o.key);
            }
            if (maxBytes > 0) expect(cache.bytes).toBeLessThanOrEqual(maxBytes);
            // Entries the model dropped as expired may still be held by the cache
            // until read; compare what both consider live, in order.
            const liveKeys = [...model.keys()].filter((k) => {
              const { expires } = model.get(k)!;
              return expires === 0 || expires > now;
            });
            expect([...cache.keys()]).toEqual(liveKeys);
          }
          for (const [h, expected] of handed) expect(contents(h)).toEqual(expected);
          // Exact accounting: the charges of what is held, then nothing once all is gone.
          let total = 0;
          for (const [k, e] of model) total += charge(k, e.value.length);
          expect(cache.bytes).toBe(total);
          for (const k of [...model.keys()]) cache.delete(k);
          expect(cache.stats()).toMatchObject({ items: 0, bytes: 0, chunkBytes: 0 });
          handedTotal += handed.length;
        },
      ),
      { numRuns: 300 },
    );
    // The property must have exercised hand-outs, or it proves nothing about them.
    expect(handedTotal).toBeGreaterThan(300);
  });
});
