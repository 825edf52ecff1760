// The caller's side of an Exchange stream against a peer that misbehaves: a
// peer that stops reading cannot make this node queue without bound, and a
// peer that refuses the stream fails every call on it with its status.
import * as http2 from "node:http2";
import { Code, ConnectError } from "@connectrpc/connect";
import { Http2SessionManager } from "@connectrpc/connect-node";
import { afterEach, describe, expect, it } from "vitest";
import { envelope } from "../grpc/envelope.js";
import { PeerExchange } from "./exchange.js";
import { StreamHeaders } from "./server-stream.js";

const servers: http2.Http2Server[] = [];
const exchanges: PeerExchange[] = [];
const sessions: Http2SessionManager[] = [];

afterEach(async () => {
  for (const exchange of exchanges.splice(0)) exchange.close();
  for (const session of sessions.splice(0)) session.abort();
  await Promise.all(
    servers
      .splice(0)
      .map((server) => new Promise<void>((resolve) => server.close(() => resolve()))),
  );
});

/** A peer on a loopback port whose streams get `onStream`. */
async function peer(onStream: (stream: http2.ServerHttp2Stream) => void): Promise<PeerExchange> {
  const server = http2.createServer();
  server.on("stream", (stream) => {
    stream.on("error", () => {});
    onStream(stream);
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  const session = new Http2SessionManager(`http://127.0.0.1:${port}`);
  sessions.push(session);
  const exchange = new PeerExchange(session, new StreamHeaders(undefined, {}));
  exchanges.push(exchange);
  return exchange;
}

/** A call's frame of `bytes` zero bytes (the peers here never parse it). */
const frameOf = (bytes: number) => () => envelope(bytes).fill(0, 5);

describe("PeerExchange", () => {
  it("fails new calls at once while a peer that stopped reading leaves 8 MiB queued", async () => {
    const exchange = await peer((stream) => {
      stream.respond({ ":status": 200, "content-type": "application/grpc" });
      stream.pause(); // never reads: its flow-control window stays shut
    });
    const pending: Promise<void>[] = [];
    let refused: unknown;
    for (let i = 0; i < 64 && refused === undefined; i++) {
      const call = exchange.call(frameOf(1 << 20), { timeoutMs: 60_000 }, undefined, () => {});
      pending.push(call.catch(() => {}));
      // A refusal is immediate: look before the next call.
      await Promise.race([call, new Promise((r) => setTimeout(r, 50))]).catch((error) => {
        refused = error;
      });
    }
    expect(refused).toBeInstanceOf(ConnectError);
    expect((refused as ConnectError).code).toBe(Code.Unavailable);
    expect((refused as ConnectError).rawMessage).toMatch(/not reading its Exchange stream/);
    // Refused after about 8 MiB, not after 64.
    expect(pending.length).toBeLessThan(20);
    exchange.close();
    await Promise.all(pending);
  });

  it("fails every call with the status of a peer that refuses the stream", async () => {
    const exchange = await peer((stream) => {
      stream.respond(
        {
          ":status": 200,
          "content-type": "application/grpc",
          "grpc-status": String(Code.Unimplemented),
          "grpc-message": "unknown method",
        },
        { endStream: true },
      );
    });
    const results = await Promise.allSettled(
      [1, 2, 3].map(() => exchange.call(frameOf(16), { timeoutMs: 10_000 }, undefined, () => {})),
    );
    for (const result of results) {
      expect(result.status).toBe("rejected");
      const error = (result as PromiseRejectedResult).reason as ConnectError;
      expect(error.code).toBe(Code.Unimplemented);
      expect(error.rawMessage).toBe("unknown method");
    }
  });
});
