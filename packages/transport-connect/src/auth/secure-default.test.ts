// Secure by default, as the library applies it: which hosts are loopback, and
// a pool that names another host without peer authentication refuses to run.
import { describe, expect, it } from "vitest";
import { ConnectPool } from "../pool.js";
import { isLoopbackHost } from "./secure-default.js";

describe("secure by default", () => {
  it("knows loopback hosts", () => {
    for (const host of [
      "127.0.0.1",
      "127.9.8.7",
      "::1",
      "0:0:0:0:0:0:0:1",
      "localhost",
      "a.localhost",
      "::ffff:127.0.0.1",
    ]) {
      expect(isLoopbackHost(host), host).toBe(true);
    }
    for (const host of [
      "10.0.0.1",
      "0.0.0.0",
      "::",
      "128.0.0.1",
      "::ffff:10.0.0.1",
      "cache-1.internal",
      "localhost.example.com",
    ]) {
      expect(isLoopbackHost(host), host).toBe(false);
    }
  });

  it("throws on a non-loopback member, listen address or self without a secret, mTLS or insecure", async () => {
    const pool = new ConnectPool("127.0.0.1:0");
    expect(() => pool.setPeers("127.0.0.1:1", "10.0.0.1:8001")).toThrow(
      /"10.0.0.1:8001" is not a loopback address.*--peer-secret-file FILE.*peer.insecure: true/,
    );
    // The membership was kept.
    expect(pool.stats().members).toEqual(["127.0.0.1:0"]);
    await expect(pool.serve("0.0.0.0:0")).rejects.toThrow(/"0.0.0.0:0" is not a loopback address/);
    expect(() => new ConnectPool("10.0.0.1:8001")).toThrow(/not a loopback address/);
    // Each way out.
    new ConnectPool("127.0.0.1:0", { peer: { secrets: ["0123456789abcdef"] } }).setPeers(
      "10.0.0.1:8001",
    );
    new ConnectPool("127.0.0.1:0", { peer: { insecure: true } }).setPeers("10.0.0.1:8001");
    const tls = { cert: "unused", key: "unused", ca: "unused" };
    new ConnectPool("127.0.0.1:0", { tls }).setPeers("10.0.0.1:8001");
    // TLS without a CA authenticates nobody: not a way out.
    expect(() =>
      new ConnectPool("127.0.0.1:0", { tls: { cert: "x", key: "y" } }).setPeers("10.0.0.1:8001"),
    ).toThrow(/not a loopback address/);
  });
});
