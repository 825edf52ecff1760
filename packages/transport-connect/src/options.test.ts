// The option table: defaults, checks, and a clear error for the 0.1 layout.
import { describe, expect, it } from "vitest";
import { ADMIN_DEFAULTS, resolveOptions, SERVER_DEFAULTS } from "./options.js";

describe("resolveOptions", () => {
  it("applies every default", () => {
    expect(resolveOptions()).toEqual({
      replicas: 2,
      maxLoadsInFlight: 256,
      maxLoadsQueued: 4_096,
      virtualNodes: undefined,
      peer: { timeoutMs: 1_000, breaker: undefined, secrets: [], insecure: false },
      server: SERVER_DEFAULTS,
      tls: undefined,
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

  it("checks peer secrets, TLS and client tokens, and maps the issue's peerSecret", () => {
    const secret = "0123456789abcdef";
    expect(resolveOptions({ peer: { secrets: [secret] } }).peer.secrets).toEqual([secret]);
    expect(() => resolveOptions({ peer: { secrets: ["short"] } })).toThrow(
      new RangeError("peer.secrets[0] is 5 characters; a secret needs at least 16"),
    );
    expect(() => resolveOptions({ peer: { secrets: Array(5).fill(secret) } })).toThrow(RangeError);
    const flat = { peerSecret: secret } as unknown as Parameters<typeof resolveOptions>[0];
    expect(() => resolveOptions(flat)).toThrow(
      new TypeError('ConnectPool option "peerSecret" is now "peer.secrets"'),
    );
    const typo = { peer: { secret } } as unknown as Parameters<typeof resolveOptions>[0];
    expect(() => resolveOptions(typo)).toThrow(
      new TypeError('unknown ConnectPool option "peer.secret"'),
    );
    const noKey = { tls: { cert: "x" } } as unknown as Parameters<typeof resolveOptions>[0];
    expect(() => resolveOptions(noKey)).toThrow(new TypeError("tls needs both cert and key"));
    expect(
      resolveOptions({ server: { clientTokens: { write: ["w"] } } }).server.clientTokens,
    ).toEqual({ write: ["w"], read: [] });
    expect(() => resolveOptions({ server: { clientTokens: { write: [""] } } })).toThrow(RangeError);
  });

  it("has no admin listener by default; fills in and checks the admin options", () => {
    expect(resolveOptions().admin).toBeUndefined();
    expect(resolveOptions({ admin: { port: 0 } }).admin).toEqual({ ...ADMIN_DEFAULTS, port: 0 });
    expect(ADMIN_DEFAULTS.host).toBe("127.0.0.1");
    expect(() => resolveOptions({ admin: { port: 65_536 } })).toThrow(
      new RangeError("admin.port must be an integer from 0 to 65535, got 65536"),
    );
    expect(() => resolveOptions({ admin: { port: 1, lookupTimeoutMs: 0 } })).toThrow(RangeError);
    expect(() => resolveOptions({ admin: { port: 1, host: "" } })).toThrow(TypeError);
    const unknown = { admin: { port: 1, path: "/x" } } as unknown as Parameters<
      typeof resolveOptions
    >[0];
    expect(() => resolveOptions(unknown)).toThrow(
      new TypeError('unknown ConnectPool option "admin.path"'),
    );
    expect(SERVER_DEFAULTS).toMatchObject({ health: true, reflection: true });
  });
});
