// Graceful shutdown of a real `distcache-node` process: SIGTERM while client
// requests and peer requests are in flight on it.
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { CacheService, ConnectPool } from "@distcache/transport-connect";
import { afterEach, describe, expect, it } from "vitest";
import { freePorts } from "../../../scripts/lib/ports.mjs";
import { startNode } from "./node-process.test-util.js";

const SOURCE_DELAY_MS = 800;
let source: Server | undefined;

/** An HTTP data source answering every key after SOURCE_DELAY_MS, value = "value-of-KEY". */
async function slowSource(): Promise<string> {
  source = createServer((request, response) => {
    const key = decodeURIComponent(request.url!.split("/").pop()!);
    setTimeout(() => response.end(`value-of-${key}`), SOURCE_DELAY_MS);
  });
  await new Promise<void>((resolve) => source!.listen(0, "127.0.0.1", resolve));
  return `http://127.0.0.1:${(source.address() as AddressInfo).port}`;
}

afterEach(async () => {
  source?.closeAllConnections();
  await new Promise((resolve) => source?.close(resolve) ?? resolve(undefined));
  source = undefined;
});

const clientOf = (address: string) =>
  createClient(CacheService, createGrpcTransport({ baseUrl: `http://${address}` }));

describe("SIGTERM (child processes)", () => {
  it("finishes the requests in flight, client and peer, then exits 0 within the drain timeout", async () => {
    const url = await slowSource();
    const ports = await freePorts(3);
    const addresses = ports.map((port) => `127.0.0.1:${port}`);
    const args = ["--replicas", "0", "--peer-timeout", "3000", "--source-url", url];
    const nodes = await Promise.all(ports.map((port) => startNode(port, addresses, args)));
    const [stopping, other] = [nodes[0]!, nodes[1]!];
    const ring = new ConnectPool(addresses[0]!);
    ring.setPeers(...addresses);
    const keys = Array.from({ length: 30 }, (_, i) => `slow-${i}`);
    const ownedByStopping = keys.filter((key) => ring.ownerOf(key) === stopping.address);
    await ring.close();
    expect(ownedByStopping.length).toBeGreaterThan(0);

    // Client calls on the node that stops (loads there and fetches from others),
    // and peer calls to it from another node (keys it owns).
    const calls = [
      ...keys.map((key) => clientOf(stopping.address).get({ group: "scores", key })),
      ...ownedByStopping.map((key) =>
        clientOf(other.address).get({ group: "scores", key: `${key}` }),
      ),
    ];
    await new Promise((resolve) => setTimeout(resolve, SOURCE_DELAY_MS / 4));
    const signalled = performance.now();
    stopping.child.kill("SIGTERM");

    const responses = await Promise.all(calls);
    for (const [i, response] of responses.entries()) {
      const key = i < keys.length ? keys[i]! : ownedByStopping[i - keys.length]!;
      expect(response.found, `${key}: ${response.err}`).toBe(true);
      expect(new TextDecoder().decode(response.data)).toBe(`value-of-${key}`);
    }
    expect(await stopping.exited).toBe(0);
    expect(performance.now() - signalled).toBeLessThan(5_000);
    expect(stopping.lines.some((line) => line.includes(`"msg":"draining"`))).toBe(true);
    expect(stopping.lines.at(-1)).toContain("stopped");

    // Gone: a new call to it fails cleanly; the others go on serving its keys.
    const refused = await clientOf(stopping.address)
      .get({ group: "scores", key: "after" }, { timeoutMs: 2_000 })
      .then(
        () => undefined,
        (error: unknown) => ConnectError.from(error).code,
      );
    expect(refused).toBe(Code.Unavailable);
    const after = await clientOf(other.address).get({ group: "scores", key: ownedByStopping[0]! });
    expect(after.found).toBe(true);
  }, 30_000);
});
