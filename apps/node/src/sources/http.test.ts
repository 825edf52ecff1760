import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo, Socket } from "node:net";
import { NotFoundError } from "@distcache/core";
import { afterEach, describe, expect, it } from "vitest";
import { HttpSource } from "./http.js";

type Handler = (request: IncomingMessage, response: ServerResponse) => void;

const open: { server: Server; source?: HttpSource }[] = [];

/** A loopback HTTP server on port 0; counts the connections it accepted. */
async function serve(handler: Handler) {
  const server = createServer(handler);
  const sockets = new Set<Socket>();
  let connections = 0;
  server.on("connection", (socket) => {
    connections++;
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const entry: (typeof open)[number] = { server };
  open.push(entry);
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    connections: () => connections,
    source(path = "") {
      entry.source = new HttpSource(`http://127.0.0.1:${port}${path}`);
      return entry.source;
    },
  };
}

afterEach(async () => {
  for (const { server, source } of open.splice(0)) {
    source?.close();
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  }
});

describe("HttpSource", () => {
  it("GETs <base>/<group>/<key> URL-encoded and returns the body's bytes", async () => {
    const paths: string[] = [];
    const remote = await serve((request, response) => {
      paths.push(request.url!);
      response.end(`value of ${decodeURIComponent(request.url!.split("/").at(-1)!)}`);
    });
    const source = remote.source("/api/");
    const value = await source.load("my group", "a/b c?d");
    expect(Buffer.from(value).toString()).toBe("value of a/b c?d");
    expect(paths).toEqual(["/api/my%20group/a%2Fb%20c%3Fd"]);
  });

  it("requests the path its URL has: the base's query kept, dot segments resolved as a URL resolves them", async () => {
    const paths: string[] = [];
    const remote = await serve((request, response) => {
      paths.push(request.url!);
      response.end("x");
    });
    const source = remote.source("/api/?token=a%20b");
    const keys = ["k", ".", "..", "a.b", "%2e", "..%2f", " ", "é/?#"];
    for (const key of keys) await source.load("g", key);
    await source.load("..", "k");
    const expected = [...keys.map((key) => source.urlOf("g", key)), source.urlOf("..", "k")].map(
      (url) => `${url.pathname}${url.search}`,
    );
    expect(paths).toEqual(expected);
    expect(paths.slice(0, 3)).toEqual([
      "/api/g/k?token=a%20b",
      "/api/g/?token=a%20b",
      "/api/?token=a%20b",
    ]);
  });

  it("reuses one keep-alive connection for sequential loads", async () => {
    const remote = await serve((_request, response) => response.end("x"));
    const source = remote.source();
    for (let i = 0; i < 5; i++) await source.load("g", `k${i}`);
    expect(remote.connections()).toBe(1);
  });

  it("turns 404 into NotFoundError and other statuses into errors naming the status", async () => {
    const remote = await serve((request, response) => {
      response.statusCode = request.url!.endsWith("/missing") ? 404 : 503;
      response.end("nope");
    });
    const source = remote.source();
    await expect(source.load("g", "missing")).rejects.toBeInstanceOf(NotFoundError);
    await expect(source.load("g", "broken")).rejects.toThrow(
      "source answered HTTP 503 for /g/broken",
    );
  });

  it("aborts the request when the signal aborts, before or during the body", async () => {
    let closedByClient = 0;
    const remote = await serve((request, response) => {
      request.socket.once("close", () => closedByClient++);
      if (request.url!.endsWith("/slow-body")) response.write("partial");
      // never ends: only the client's abort finishes this request
    });
    const source = remote.source();
    for (const key of ["slow-head", "slow-body"]) {
      const controller = new AbortController();
      const loading = source.load("g", key, controller.signal);
      setTimeout(() => controller.abort(), 50);
      await expect(loading).rejects.toMatchObject({ name: "AbortError" });
    }
    await expect.poll(() => closedByClient).toBe(2);
    const aborted = new AbortController();
    aborted.abort();
    await expect(source.load("g", "never", aborted.signal)).rejects.toMatchObject({
      name: "AbortError",
    });
  });

  it("refuses a body over maxBodyBytes", async () => {
    const remote = await serve((_request, response) => response.end("x".repeat(100)));
    const source = new HttpSource(remote.url, { maxBodyBytes: 10 });
    open.at(-1)!.source = source;
    await expect(source.load("g", "big")).rejects.toThrow("over 10 bytes");
  });

  it("retries once on a fresh socket when the server closed an idle kept-alive socket", async () => {
    let requests = 0;
    const remote = await serve((request, response) => {
      requests++;
      if (requests === 2) {
        // The server drops the kept-alive connection without answering: what
        // a client sees when the server's idle timeout races its reuse.
        request.socket.destroy();
        return;
      }
      response.end("ok");
    });
    const source = remote.source();
    await source.load("g", "a");
    expect(Buffer.from(await source.load("g", "b")).toString()).toBe("ok");
    expect(requests).toBe(3);
    expect(remote.connections()).toBe(2);
  });

  it("accepts only http:// URLs", () => {
    expect(() => new HttpSource("https://example.com")).toThrow(TypeError);
    expect(() => new HttpSource("not a url")).toThrow(TypeError);
  });
});
