// CircuitBreaker: when it opens, probes, closes, and what must-try calls change.
import { describe, expect, it } from "vitest";
import { CircuitBreaker } from "./circuit-breaker.js";

function breaker(threshold = 3) {
  let now = 0;
  const b = new CircuitBreaker({
    failureThreshold: threshold,
    baseBackoffMs: 100,
    maxBackoffMs: 1_000,
    now: () => now,
    random: () => 0.5, // no jitter
  });
  return { b, advance: (ms: number) => (now += ms) };
}

describe("CircuitBreaker", () => {
  it("opens after the threshold of failures in a row, not before", () => {
    const { b } = breaker();
    b.admit()!.failed();
    b.admit()!.succeeded(); // resets the run
    b.admit()!.failed();
    b.admit()!.failed();
    expect(b.state).toBe("closed");
    b.admit()!.failed();
    expect(b.state).toBe("open");
    expect(b.admit()).toBeUndefined();
    expect(b.refused).toBe(1);
  });

  it("lets one probe through after the backoff; success closes it", () => {
    const { b, advance } = breaker(1);
    b.admit()!.failed();
    advance(99);
    expect(b.admit()).toBeUndefined();
    advance(1);
    const probe = b.admit()!;
    expect(probe).toBeDefined();
    expect(b.admit()).toBeUndefined(); // one probe at a time
    probe.succeeded();
    expect(b.state).toBe("closed");
    expect(b.admit()).toBeDefined();
  });

  it("doubles the backoff on each failed probe, up to the maximum", () => {
    const { b, advance } = breaker(1);
    b.admit()!.failed();
    const waits: number[] = [];
    for (let i = 0; i < 6; i++) {
      waits.push(b.retryInMs());
      advance(b.retryInMs());
      b.admit()!.failed();
    }
    expect(waits).toEqual([100, 200, 400, 800, 1_000, 1_000]);
  });

  it("an abandoned probe frees the slot without a verdict", () => {
    const { b, advance } = breaker(1);
    b.admit()!.failed();
    advance(100);
    b.admit()!.abandoned();
    expect(b.state).toBe("half-open");
    b.admit()!.succeeded();
    expect(b.state).toBe("closed");
  });

  it("ignores late failures of calls admitted before it opened", () => {
    const { b, advance } = breaker(2);
    const early = [b.admit()!, b.admit()!, b.admit()!];
    early[0]!.failed();
    early[1]!.failed();
    expect(b.opened).toBe(1);
    early[2]!.failed();
    expect(b.opened).toBe(1);
    advance(100);
    expect(b.admit()).toBeDefined();
  });

  it("lets a must-try call through while open; its success closes the breaker", () => {
    const { b } = breaker(1);
    b.admit()!.failed();
    expect(b.admit()).toBeUndefined();
    b.admitAlways().failed(); // still open, backoff unchanged
    expect(b.state).toBe("open");
    expect(b.opened).toBe(1);
    b.admitAlways().succeeded();
    expect(b.state).toBe("closed");
  });

  it("reports each transition it makes once: open, half-open (probe out), open again, closed", () => {
    const { b, advance } = breaker(2);
    const seen: string[] = [];
    b.onChange = (state) => seen.push(state);
    b.admit()!.failed();
    b.admit()!.succeeded();
    expect(seen).toEqual([]);
    b.admit()!.failed();
    b.admit()!.failed();
    expect(seen).toEqual(["open"]);
    advance(100);
    b.admit()!.failed(); // the probe fails: open again, for longer
    advance(200);
    b.admit()!.succeeded(); // the next probe succeeds
    expect(seen).toEqual(["open", "half-open", "open", "half-open", "closed"]);
    // A forced call that succeeds while open closes it; another success changes nothing.
    b.admit()!.failed();
    b.admit()!.failed();
    b.admitAlways().succeeded();
    b.admitAlways().succeeded();
    expect(seen.slice(5)).toEqual(["open", "closed"]);
  });
});
