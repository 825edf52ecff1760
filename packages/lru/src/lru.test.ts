// LRU<V>: byte accounting, reads and recency, expiry, and a random workload against a model;
// plus utf8ByteLength.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { ENTRY_OVERHEAD_BYTES, LRU, utf8ByteLength } from "./lru.js";
import type { EvictionReason } from "./slot-cache.js";

const bytes = (n: number) => new Uint8Array(n);
/** Bytes charged for an entry with an ASCII key. */
const cost = (key: string, valueBytes: number) => key.length + valueBytes + ENTRY_OVERHEAD_BYTES;

function recorder() {
  const events: [string, EvictionReason][] = [];
  return {
    events,
    onEvicted: (key: string, _v: unknown, reason: EvictionReason) => events.push([key, reason]),
  };
}

describe("utf8ByteLength", () => {
  it("matches Buffer.byteLength for ASCII, 2-, 3- and 4-byte characters and lone surrogates", () => {
    for (const s of ["", "abc", "é", "ab€", "😀", "a😀b", "\ud800", "x\udc00y", "\ud83d"]) {
      expect(utf8ByteLength(s), s).toBe(Buffer.byteLength(s, "utf8"));
    }
    fc.assert(
      fc.property(fc.string({ unit: "binary" }), (s) => utf8ByteLength(s) === Buffer.byteLength(s)),
    );
  });
});

describe("LRU byte accounting", () => {
  it("charges key + value + overhead per entry", () => {
    const lru = new LRU<Uint8Array>({ maxBytes: 0 });
    lru.set("ab", bytes(10));
    expect(lru.bytes).toBe(cost("ab", 10));
    lru.set("ключ", bytes(1)); // 8 UTF-8 bytes
    expect(lru.bytes).toBe(cost("ab", 10) + 8 + 1 + ENTRY_OVERHEAD_BYTES);
    expect(lru.length).toBe(2);
  });

  it("adjusts exactly when a value is replaced, and reports the old value", () => {
    const { events, onEvicted } = recorder();
    const lru = new LRU<Uint8Array>({ maxBytes: 0, onEvicted });
    lru.set("k", bytes(100));
    lru.set("k", bytes(7));
    expect(lru.bytes).toBe(cost("k", 7));
    expect(lru.length).toBe(1);
    expect(events).toEqual([["k", "replace"]]);
  });

  it("returns bytes on delete", () => {
    const { events, onEvicted } = recorder();
    const lru = new LRU<Uint8Array>({ maxBytes: 0, onEvicted });
    lru.set("a", bytes(5));
    lru.set("b", bytes(6));
    expect(lru.delete("a")).toBe(true);
    expect(lru.delete("a")).toBe(false);
    expect(lru.bytes).toBe(cost("b", 6));
    expect(events).toEqual([["a", "delete"]]);
  });

  it("evicts the least recently used until the budget holds", () => {
    const { events, onEvicted } = recorder();
    const lru = new LRU<Uint8Array>({ maxBytes: 3 * cost("k1", 10), onEvicted });
    lru.set("k1", bytes(10));
    lru.set("k2", bytes(10));
    lru.set("k3", bytes(10));
    lru.get("k1"); // k2 is now the oldest
    lru.set("k4", bytes(10));
    expect([...lru.keys()]).toEqual(["k3", "k1", "k4"]);
    expect(events).toEqual([["k2", "evict"]]);
    expect(lru.bytes).toBe(3 * cost("k1", 10));
    // A bigger entry evicts as many as it needs.
    lru.set("k5", bytes(10 + cost("k1", 10)));
    expect([...lru.keys()]).toEqual(["k4", "k5"]);
    expect(lru.stats().evictions).toBe(3);
  });

  it("refuses an entry larger than the budget, never storing then evicting it", () => {
    const { events, onEvicted } = recorder();
    const lru = new LRU<Uint8Array>({ maxBytes: 200, onEvicted });
    lru.set("small", bytes(10));
    expect(lru.set("huge", bytes(200))).toBe(false);
    expect(lru.has("huge")).toBe(false);
    expect([...lru.keys()]).toEqual(["small"]);
    expect(events).toEqual([]);
    // Replacing with an oversized value removes the old one: the cache never answers with it.
    expect(lru.set("small", bytes(500))).toBe(false);
    expect(lru.get("small")).toBeUndefined();
    expect(lru.bytes).toBe(0);
    expect(events).toEqual([["small", "delete"]]);
  });

  it("fits an entry of exactly the budget", () => {
    const lru = new LRU<Uint8Array>({ maxBytes: cost("k", 10) });
    expect(lru.set("k", bytes(10))).toBe(true);
    expect(lru.bytes).toBe(lru.maxBytes);
  });

  it("maxBytes 0 means unbounded", () => {
    const lru = new LRU<Uint8Array>({ maxBytes: 0 });
    for (let i = 0; i < 10_000; i++) lru.set(`k${i}`, bytes(100));
    expect(lru.length).toBe(10_000);
    expect(lru.stats().evictions).toBe(0);
  });

  it("rejects a negative or non-finite budget", () => {
    expect(() => new LRU({ maxBytes: -1 })).toThrow(RangeError);
    expect(() => new LRU({ maxBytes: Number.NaN })).toThrow(RangeError);
  });

  it("needs sizeOf for values that are not bytes or strings", () => {
    const lru = new LRU<{ n: number }>({ maxBytes: 0 });
    expect(() => lru.set("k", { n: 1 })).toThrow(/sizeOf/);
    const sized = new LRU<{ n: number }>({ maxBytes: 0, sizeOf: () => 8 });
    sized.set("k", { n: 1 });
    expect(sized.bytes).toBe(cost("k", 8));
  });
});

describe("LRU reads", () => {
  it("get promotes, peek and has do not", () => {
    const lru = new LRU<string>({ maxBytes: 0 });
    lru.set("a", "1");
    lru.set("b", "2");
    lru.set("c", "3");
    expect(lru.peek("a")).toBe("1");
    expect(lru.has("a")).toBe(true);
    expect([...lru.keys()]).toEqual(["a", "b", "c"]);
    expect(lru.get("a")).toBe("1");
    expect([...lru.keys()]).toEqual(["b", "c", "a"]);
    expect([...lru.values()]).toEqual(["2", "3", "1"]);
    expect([...lru]).toEqual([
      ["b", "2"],
      ["c", "3"],
      ["a", "1"],
    ]);
  });

  it("counts hits and misses on get only", () => {
    const lru = new LRU<string>({ maxBytes: 0 });
    lru.set("a", "1");
    lru.get("a");
    lru.get("a");
    lru.get("zz");
    lru.peek("zz");
    expect(lru.stats()).toMatchObject({ hits: 2, misses: 1, items: 1 });
  });

  it("reuses slots after deletes and keeps order", () => {
    const lru = new LRU<string>({ maxBytes: 0 });
    for (let i = 0; i < 100; i++) lru.set(`k${i}`, "v");
    for (let i = 0; i < 100; i += 2) lru.delete(`k${i}`);
    for (let i = 100; i < 150; i++) lru.set(`k${i}`, "v");
    const keys = [...lru.keys()];
    expect(keys.length).toBe(100);
    expect(keys.slice(0, 3)).toEqual(["k1", "k3", "k5"]);
    expect(keys.at(-1)).toBe("k149");
  });

  it("clear reports every entry and resets bytes", () => {
    const { events, onEvicted } = recorder();
    const lru = new LRU<string>({ maxBytes: 0, onEvicted });
    lru.set("a", "1");
    lru.set("b", "2");
    lru.clear();
    expect(lru.length).toBe(0);
    expect(lru.bytes).toBe(0);
    expect(events).toEqual([
      ["a", "delete"],
      ["b", "delete"],
    ]);
    lru.set("c", "3");
    expect([...lru.keys()]).toEqual(["c"]);
  });
});

describe("LRU expiry", () => {
  function clock() {
    let now = 1_000;
    return { now: () => now, advance: (ms: number) => (now += ms) };
  }

  it("removes an expired entry when it is read, counts it and frees its bytes", () => {
    const time = clock();
    const { events, onEvicted } = recorder();
    const lru = new LRU<string>({ maxBytes: 0, now: time.now, onEvicted });
    lru.set("short", "v", { ttl: 100 });
    lru.set("forever", "v");
    time.advance(99);
    expect(lru.get("short")).toBe("v");
    time.advance(1);
    expect(lru.get("short")).toBeUndefined();
    expect(lru.get("forever")).toBe("v");
    expect(lru.stats()).toMatchObject({ expirations: 1, items: 1, misses: 1, hits: 2 });
    expect(lru.bytes).toBe(cost("forever", 1));
    expect(events).toEqual([["short", "expire"]]);
  });

  it("applies the default ttl, which a set can override or clear", () => {
    const time = clock();
    const lru = new LRU<string>({ maxBytes: 0, ttl: 50, now: time.now });
    lru.set("default", "v");
    lru.set("longer", "v", { ttl: 500 });
    lru.set("never", "v", { ttl: 0 });
    time.advance(60);
    expect(lru.has("default")).toBe(false);
    expect(lru.peek("longer")).toBe("v");
    expect(lru.has("never")).toBe(true);
  });

  it("a replacing set renews or clears the expiry", () => {
    const time = clock();
    const lru = new LRU<string>({ maxBytes: 0, now: time.now });
    lru.set("k", "v", { ttl: 10 });
    lru.set("k", "w");
    time.advance(100);
    expect(lru.get("k")).toBe("w");
  });

  it("iteration skips expired entries and purgeStale removes them", () => {
    const time = clock();
    const lru = new LRU<string>({ maxBytes: 0, now: time.now });
    lru.set("a", "1", { ttl: 10 });
    lru.set("b", "2");
    lru.set("c", "3", { ttl: 10 });
    time.advance(10);
    expect([...lru.keys()]).toEqual(["b"]);
    expect(lru.length).toBe(3);
    expect(lru.purgeStale()).toBe(2);
    expect(lru.length).toBe(1);
    expect(lru.bytes).toBe(cost("b", 1));
    expect(lru.stats().expirations).toBe(2);
  });
});

describe("LRU under a random workload (property)", () => {
  type Op =
    | { op: "set"; key: string; size: number }
    | { op: "get" | "delete" | "peek"; key: string }
    | { op: "tick"; ms: number };
  const key = fc.constantFrom(...Array.from({ length: 24 }, (_, i) => `key-${i}`), "ключ", "😀");
  const op: fc.Arbitrary<Op> = fc.oneof(
    fc.record({ op: fc.constant("set" as const), key, size: fc.nat({ max: 400 }) }),
    fc.record({ op: fc.constantFrom("get" as const, "delete" as const, "peek" as const), key }),
    fc.record({ op: fc.constant("tick" as const), ms: fc.nat({ max: 30 }) }),
  );

  it("never exceeds the budget and its byte count always equals the sum of its entries", () => {
    fc.assert(
      fc.property(fc.nat({ max: 2_000 }), fc.array(op, { maxLength: 300 }), (maxBytes, ops) => {
        let now = 0;
        const model = new Map<string, number>(); // key -> charged bytes, for entries present
        const lru = new LRU<Uint8Array>({
          maxBytes,
          ttl: 50,
          now: () => now,
          onEvicted: (k) => model.delete(k),
        });
        for (const o of ops) {
          if (o.op === "tick") now += o.ms;
          else if (o.op === "set") {
            const stored = lru.set(o.key, bytes(o.size));
            const charged = utf8ByteLength(o.key) + o.size + ENTRY_OVERHEAD_BYTES;
            expect(stored).toBe(maxBytes === 0 || charged <= maxBytes);
            if (stored) model.set(o.key, charged);
          } else lru[o.op](o.key);
          if (maxBytes > 0) expect(lru.bytes).toBeLessThanOrEqual(maxBytes);
          let sum = 0;
          for (const charged of model.values()) sum += charged;
          expect(lru.bytes).toBe(sum);
          expect(lru.length).toBe(model.size);
        }
      }),
      { numRuns: 300 },
    );
  });
});
