// The option table: defaults, checks, and a clear error for the 0.1 layout.
import { describe, expect, it } from "vitest";
import { resolveOptions, SERVER_DEFAULTS } from "./options.js";

describe("resolveOptions", () => {
  it("applies every default", () => {
    expect(resolveOptions()).toEqual({
      replicas: 2,
      maxLoadsInFlight: 256,
      maxLoadsQueued: 4_096,
      virtualNodes: undefined,
      peer: { timeoutMs: 1_000, breaker: undefined },
      server: SERVER_DEFAULTS,
    });
  });

  it("names where an option of the flat 0.1 layout moved, instead of ignoring it", () => {
    const legacy = { allowClientSet: false, peerTimeoutMs: 5 } as unknown as Parameters<
      typeof resolveOptions
    >[0];
    expect(() => resolveOptions(legacy)).toThrow(
      new TypeError('ConnectPool option "allowClientSet" is now "server.allowClientSet"'),
    );
    const unknown = { server: { maxKeys: 1 } } as unknown as Parameters<typeof resolveOptions>[0];
    expect(() => resolveOptions(unknown)).toThrow(
      new TypeError('unknown ConnectPool option "server.maxKeys"'),
    );
  });

  it("refuses limits that are not whole numbers >= 0 and a peer timeout that is not > 0", () => {
    expect(() => resolveOptions({ server: { maxKeyBytes: 1.5 } })).toThrow(
      new RangeError("server.maxKeyBytes must be an integer >= 0, got 1.5"),
    );
    expect(() => resolveOptions({ replicas: -1 })).toThrow(RangeError);
    expect(() => resolveOptions({ peer: { timeoutMs: 0 } })).toThrow(RangeError);
    expect(resolveOptions({ server: { maxRequestsInFlight: 0 } }).server.maxRequestsInFlight).toBe(
      0,
    );
  });
});
