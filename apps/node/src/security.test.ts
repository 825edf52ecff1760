// distcache-node's security flags as real processes: secure by default (a
// non-loopback member needs a secret, mTLS or --insecure-peers), the peer
// secret file (checks, SIGHUP re-read), and a cluster that authenticates.
import { execFile } from "node:child_process";
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { CacheService, ConnectPool } from "@distcache/transport-connect";
import { afterAll, describe, expect, it } from "vitest";
import { NODE_MAIN as main } from "../../../scripts/lib/node-process.mjs";
import { freePort, freePorts } from "../../../scripts/lib/ports.mjs";
import { makeTestCertificates } from "../../../scripts/lib/test-certs.mjs";
import { loadedKeys, startNode } from "./node-process.test-util.js";

const run = promisify(execFile);
const clientMain = join(import.meta.dirname, "../../client/dist/main.js");
const dir = mkdtempSync(join(tmpdir(), "distcache-security-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Writes `text` to a file in the test folder with `mode`; returns its path. */
function file(name: string, text: string, mode = 0o600): string {
  const path = join(dir, name);
  writeFileSync(path, text, { mode });
  chmodSync(path, mode);
  return path;
}

const SECRET = "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA==";

describe("secure by default", () => {
  it("refuses a non-loopback member without peer authentication: exit 2, before listening, saying how to fix it", async () => {
    const port = await freePort();
    const failure = await run(
      process.execPath,
      [main, "--port", String(port), "--peers", `10.0.0.1:8001,127.0.0.1:${port}`],
      { timeout: 20_000 },
    ).catch((error: { code: number; stderr: string }) => error);
    expect(failure).toMatchObject({ code: 2 });
    const { stderr } = failure as { stderr: string };
    expect(stderr).toContain('"10.0.0.1:8001" is not a loopback address');
    expect(stderr).toContain("--peer-secret-file FILE");
    expect(stderr).toContain("--insecure-peers");
    // It never listened: the port is still free to bind.
    const probe = new ConnectPool(`127.0.0.1:${port}`);
    await probe.serve();
    await probe.close();
  });

  it("refuses a non-loopback listen address the same way", async () => {
    const port = await freePort();
    const failure = await run(
      process.execPath,
      [main, "--listen", `0.0.0.0:${port}`, "--advertise", `127.0.0.1:${port}`],
      { timeout: 20_000 },
    ).catch((error: { code: number; stderr: string }) => error);
    expect(failure).toMatchObject({
      code: 2,
      stderr: expect.stringContaining(`"0.0.0.0:${port}" is not a loopback address`),
    });
  });

  it("starts with --insecure-peers (no traffic is sent to the non-loopback member)", async () => {
    const port = await freePort();
    const node = await startNode(
      port,
      [`127.0.0.1:${port}`, "10.0.0.1:8001"],
      ["--insecure-peers"],
    );
    expect(node.lines.join("\n")).toContain("members: 10.0.0.1:8001, 127.0.0.1:");
  });

  it("starts with a peer secret and loopback members with no flag at all", async () => {
    const port = await freePort();
    const secret = file("plain-secret", `${SECRET}\n`);
    await startNode(port, [`127.0.0.1:${port}`, "10.0.0.1:8001"], ["--peer-secret-file", secret]);
    const plain = await freePort();
    await startNode(plain, [`127.0.0.1:${plain}`]);
  });
});

describe("--peer-secret-file", () => {
  it("refuses an empty file, a world-readable one, a short secret and a missing file (exit 2)", async () => {
    const cases: [string, string][] = [
      [file("empty", "\n\n"), "holds no entry"],
      [file("world", `${SECRET}\n`, 0o644), "readable by every user"],
      [file("short", "abc\n"), "at least 16"],
      [join(dir, "missing"), "ENOENT"],
    ];
    for (const [path, message] of cases) {
      const failure = await run(
        process.execPath,
        [main, "--port", "0", "--peer-secret-file", path],
        { timeout: 20_000 },
      ).catch((error: { code: number; stderr: string }) => error);
      expect(failure, path).toMatchObject({ code: 2, stderr: expect.stringContaining(message) });
    }
  });

  it("two nodes sharing the secret forward to each other; SIGHUP re-reads the file", async () => {
    const ports = await freePorts(2);
    const peers = ports.map((port) => `127.0.0.1:${port}`);
    const secret = file("cluster-secret", `# the cluster's secret\n${SECRET}\n`);
    const nodes = await Promise.all(
      ports.map((port) => startNode(port, peers, ["--peer-secret-file", secret])),
    );
    const ring = new ConnectPool(peers[0]!);
    ring.setPeers(...peers);
    // The demo rows hold k0…k999 too: among 100 of them one is the second node's (not so with 3 keys, 1 run in 8).
    const key = Array.from({ length: 100 }, (_, i) => `k${i}`).find(
      (k) => ring.ownerOf(k) === peers[1],
    )!;
    expect(key).toBeDefined();
    const client = createClient(
      CacheService,
      createGrpcTransport({ baseUrl: `http://${peers[0]}` }),
    );
    expect((await client.get({ group: "scores", key })).found).toBe(true);
    // Loaded on its owner: the forwarded call was authenticated. (Its log
    // line comes through the child's stdout pipe: wait for it.)
    await expect.poll(() => loadedKeys(nodes[1]!), { timeout: 10_000 }).toEqual([key]);
    expect(loadedKeys(nodes[0]!)).toEqual([]);

    writeFileSync(secret, `${SECRET}\nc2Vjb25kLXNlY3JldC1zZWNvbmQtc2VjcmV0LXNlY29uZA==\n`);
    nodes[0]!.child.kill("SIGHUP");
    for (
      let i = 0;
      i < 200 && !nodes[0]!.lines.some((l) => l.includes("SIGHUP: peer secrets re-read"));
      i++
    ) {
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
    expect(nodes[0]!.lines.join("\n")).toContain("SIGHUP: peer secrets re-read");
    // Still one cluster: node 0 signs with both, node 1 accepts the first.
    const other = Array.from({ length: 100 }, (_, i) => `k${i}`).find(
      (k) => k !== key && ring.ownerOf(k) === peers[1],
    )!;
    expect((await client.get({ group: "scores", key: other })).found).toBe(true);
    await expect.poll(() => loadedKeys(nodes[1]!), { timeout: 10_000 }).toEqual([key, other]);
    expect(loadedKeys(nodes[0]!)).toEqual([]);
  });
});

describe("--tls-cert/--tls-key and --client-token-file, with the distcache client", () => {
  it("the client reaches a TLS node with --tls-ca, and writes only with a write token", async () => {
    const certs = makeTestCertificates({ node: "IP:127.0.0.1,DNS:localhost" });
    try {
      const port = await freePort();
      const tokens = file("tokens", "# client tokens\nwrite w-0123456789\nread r-0123456789\n");
      const leaf = certs.leaves.node!;
      await startNode(
        port,
        [`127.0.0.1:${port}`],
        ["--tls-cert", leaf.certPath, "--tls-key", leaf.keyPath, "--client-token-file", tokens],
      );
      const client = (args: string[], env: Record<string, string> = {}) =>
        run(
          process.execPath,
          [clientMain, "--addr", `https://127.0.0.1:${port}`, "--tls-ca", certs.caPath, ...args],
          {
            timeout: 20_000,
            env: { ...process.env, ...env },
          },
        ).then(
          ({ stdout }) => ({ code: 0, stdout, stderr: "" }),
          (error: { code: number; stdout: string; stderr: string }) => error,
        );
      // Reads need a token here (a read token is listed); a write token reads too.
      expect(await client(["get", "scores", "Tom"])).toMatchObject({
        code: 2,
        stderr: expect.stringContaining("--token TOKEN or DISTCACHE_TOKEN"),
      });
      expect(await client(["--token", "r-0123456789", "get", "scores", "Tom"])).toMatchObject({
        code: 0,
        stdout: "630\n",
      });
      expect(await client(["--token", "r-0123456789", "set", "scores", "Tom", "1"])).toMatchObject({
        code: 2,
        stderr: expect.stringContaining("may read, not write"),
      });
      expect(
        await client(["set", "scores", "Tom", "1"], { DISTCACHE_TOKEN: "w-0123456789" }),
      ).toMatchObject({
        code: 0,
      });
      expect(await client(["--token", "w-0123456789", "get", "scores", "Tom"])).toMatchObject({
        stdout: "1\n",
      });
      // Without the CA the handshake fails, and the message says what to give.
      const untrusted = await run(
        process.execPath,
        [clientMain, "--addr", `https://127.0.0.1:${port}`, "get", "scores", "Tom"],
        {
          timeout: 20_000,
        },
      ).catch((error: { code: number; stderr: string }) => error);
      expect(untrusted).toMatchObject({
        code: 2,
        stderr: expect.stringContaining("--tls-ca FILE"),
      });
    } finally {
      certs.remove();
    }
  }, 120_000);

  it("refuses a malformed token file, and --tls-cert without --tls-key (exit 2)", async () => {
    const bad = file("bad-tokens", "admin x\n");
    const failure = await run(process.execPath, [main, "--port", "0", "--client-token-file", bad], {
      timeout: 20_000,
    }).catch((error: { code: number; stderr: string }) => error);
    expect(failure).toMatchObject({
      code: 2,
      stderr: expect.stringContaining('not "write TOKEN" or "read TOKEN"'),
    });
    const half = await run(process.execPath, [main, "--port", "0", "--tls-cert", bad], {
      timeout: 20_000,
    }).catch((error: { code: number; stderr: string }) => error);
    expect(half).toMatchObject({ code: 2, stderr: expect.stringContaining("go together") });
  });
});
