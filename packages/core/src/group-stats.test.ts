// The counters metrics are read from: every get ends once as a hit, a loaded
// miss or an error, and each getter call lands in one duration bucket.
import { describe, expect, it } from "vitest";
import { NotFoundError } from "./errors.js";
import { Group } from "./group.js";
import { LOAD_SECONDS_BUCKETS, LoadTimes } from "./group-stats.js";

describe("GroupStats: get outcomes and getter durations", () => {
  it("counts hits, loaded misses and errors so that they add up to gets", async () => {
    const group = new Group("outcomes", 1 << 20, async (key) => {
      if (key === "absent") throw new NotFoundError(key);
      await new Promise((resolve) => setTimeout(resolve, 30));
      return `v-${key}`;
    });
    await Promise.all([group.get("a"), group.get("a"), group.get("b")]);
    await group.get("a");
    await expect(group.get("absent")).rejects.toThrow(NotFoundError);
    await expect(group.get("")).rejects.toThrow();
    const stats = group.stats();
    expect(stats).toMatchObject({ gets: 6, hits: 1, missesLoaded: 3, getErrors: 2 });
    expect(stats.hits + stats.missesLoaded + stats.getErrors).toBe(stats.gets);
    // Three getter calls: a, b (about 30 ms each) and absent (at once).
    expect(stats.loadSeconds.count).toBe(3);
    expect(stats.loadSeconds.counts.reduce((a, b) => a + b, 0)).toBe(3);
    expect(stats.loadSeconds.sum).toBeGreaterThanOrEqual(0.05);
    // The two 30 ms calls can only land at or past the 25 ms bound (a loaded
    // machine makes calls slower, never faster; "absent" may land anywhere).
    const slowBuckets = stats.loadSeconds.counts.slice(LOAD_SECONDS_BUCKETS.indexOf(0.025));
    expect(slowBuckets.reduce((a, b) => a + b, 0)).toBeGreaterThanOrEqual(2);
  });

  it("puts a duration in the first bucket whose bound holds it, the slowest in the last", () => {
    const times = new LoadTimes();
    times.observe(0.005);
    times.observe(0.0051);
    times.observe(10);
    times.observe(11);
    const { counts, sum, count } = times.snapshot();
    expect(counts).toHaveLength(LOAD_SECONDS_BUCKETS.length + 1);
    expect(counts[0]).toBe(1);
    expect(counts[1]).toBe(1);
    expect(counts[LOAD_SECONDS_BUCKETS.length - 1]).toBe(1);
    expect(counts[LOAD_SECONDS_BUCKETS.length]).toBe(1);
    expect(count).toBe(4);
    expect(sum).toBeCloseTo(21.0101, 6);
  });
});
