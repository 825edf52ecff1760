import { describe, expect, it } from "vitest";
import { FillTokens } from "./fill-tokens.js";

describe("FillTokens", () => {
  it("marks every fill of a key in flight stale, one or several, and none begun later", () => {
    const fills = new FillTokens();
    const only = fills.begin("a");
    const other = fills.begin("b");
    fills.invalidate("a");
    expect(only.stale).toBe(true);
    expect(other.stale).toBe(false);
    fills.end("a", only);

    const first = fills.begin("a");
    const second = fills.begin("a");
    const third = fills.begin("a");
    fills.end("a", second);
    fills.invalidate("a");
    expect([first.stale, second.stale, third.stale]).toEqual([true, false, true]);

    fills.end("a", first);
    fills.end("a", third);
    const later = fills.begin("a");
    expect(later.stale).toBe(false);
    fills.end("a", later);
    // Ended, then invalidated: nothing in flight is touched.
    fills.invalidate("a");
    expect(later.stale).toBe(false);
  });

  it("ends a token once however often it is ended, and keeps the key's others", () => {
    const fills = new FillTokens();
    const one = fills.begin("k");
    const two = fills.begin("k");
    fills.end("k", one);
    fills.end("k", one);
    fills.invalidate("k");
    expect(two.stale).toBe(true);
    expect(one.stale).toBe(false);
  });
});
