// A settled Get leaves none of its listeners on its stream: Node keeps a
// stream's object until a mark-compact, so whatever a listener holds (the
// call, its request, a miss's AbortController) would be promoted with it.
import * as http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { Group, NotFoundError } from "@distcache/core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ServiceContext } from "../host.js";
import { createGetFastPath } from "./get.js";

const GROUP = "detach";
const GET = "/distcache.CacheService/Get";
const OURS = ["data", "end", "close"] as const;

/** Counts of the listeners, other than Node's own, of the events a GetCall listens to. */
type Counts = Record<(typeof OURS)[number], number>;

/** Node's own stream listeners are methods named by a symbol, e.g. `[kMaybeDestroy]`. */
const notNodes = (listener: (...args: unknown[]) => unknown) => !listener.name.startsWith("[");

function countsOf(stream: http2.ServerHttp2Stream): Counts {
  const count = (event: string) =>
    (stream.listeners(event) as ((...args: unknown[]) => unknown)[]).filter(notNodes).length;
  return { data: count("data"), end: count("end"), close: count("close") };
}

let server: http2.Http2Server;
let client: http2.ClientHttp2Session;
/** Each server stream's listener counts before the fast path took it and once it closed. */
const seen: { path: string; before: Counts; after: Promise<Counts> }[] = [];
let releaseSlow: (() => void) | undefined;

beforeAll(async () => {
  const group = new Group(GROUP, 1 << 20, (key, { signal }) => {
    if (key === "slow") {
      // Ends when the caller leaves (its signal) or the test releases it.
      return new Promise<string>((resolve, reject) => {
        releaseSlow = () => resolve("late");
        signal.addEventListener("abort", () => reject(signal.reason), { once: true });
      });
    }
    if (key === "missing") throw new NotFoundError(key);
    return `value of ${key}`;
  });
  // The Get fast path reads only the host's groups, the key limits and the
  // (optional) byte admission of its context.
  const services = {
    host: { group: (name: string) => (name === GROUP ? group : undefined) },
    limits: { maxKeyBytes: 64, maxValueBytes: 1_024, allowClientSet: false },
  } as unknown as ServiceContext;
  const fastPath = createGetFastPath(services, { readMaxBytes: 4_096 });
  server = http2.createServer();
  server.on("stream", (stream, headers) => {
    const before = countsOf(stream);
    const after = new Promise<Counts>((resolve) =>
      // Registered after the call's own listeners: runs once they all have.
      stream.once("close", () => setImmediate(() => resolve(countsOf(stream)))),
    );
    if (!fastPath(stream, headers)) stream.respond({ ":status": 404 }, { endStream: true });
    else seen.push({ path: String(headers[":path"]), before, after });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  client = http2.connect(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
});

afterAll(async () => {
  client?.close();
  await new Promise((resolve) => server?.close(resolve));
});

/** A GetRequest for `key` in a gRPC frame. */
function frame(key: string): Buffer {
  const group = Buffer.from(GROUP);
  const k = Buffer.from(key);
  const message = Buffer.concat([
    Buffer.from([0x0a, group.length]),
    group,
    Buffer.from([0x12, k.length]),
    k,
  ]);
  const out = Buffer.alloc(5 + message.length);
  out.writeUInt32BE(message.length, 1);
  message.copy(out, 5);
  return out;
}

/**
 * One raw gRPC Get; resolves with its grpc-status (from the trailers, or
 * the headers of a trailers-only answer) once the stream closes.
 */
function get(
  key: string,
  options: { timeout?: string; end?: boolean; cancelAfterMs?: number } = {},
): Promise<string | undefined> {
  return new Promise((resolve, reject) => {
    const headers: http2.OutgoingHttpHeaders = {
      ":method": "POST",
      ":path": GET,
      "content-type": "application/grpc",
      te: "trailers",
    };
    if (options.timeout !== undefined) headers["grpc-timeout"] = options.timeout;
    const stream = client.request(headers);
    let status: string | undefined;
    stream.on("response", (h) => {
      status ??= h["grpc-status"] as string | undefined;
    });
    stream.on("trailers", (t) => {
      status = t["grpc-status"] as string | undefined;
    });
    stream.on("data", () => {});
    stream.on("error", () => {});
    stream.on("close", () => resolve(status));
    if (options.end === false) stream.write(frame(key));
    else stream.end(frame(key));
    if (options.cancelAfterMs !== undefined) {
      setTimeout(() => stream.close(http2.constants.NGHTTP2_CANCEL), options.cancelAfterMs);
    }
    setTimeout(() => reject(new Error(`Get ${key}: no close within 10 s`)), 10_000).unref();
  });
}

describe("a settled Get takes its listeners off the stream", () => {
  it("after a hit, a miss, a not-found, a deadline, a caller's cancel and a half-sent request", async () => {
    await get("Tom"); // a miss that loads
    expect(await get("Tom")).toBe("0"); // a hit
    expect(await get("missing")).toBe("0"); // found: false, in-band
    expect(await get("slow", { timeout: "100m" })).toBe("4"); // DEADLINE_EXCEEDED
    await get("slow", { cancelAfterMs: 100 }); // the caller leaves a waiting miss
    expect(await get("Tom", { timeout: "x" })).toBe("3"); // INVALID_ARGUMENT: a malformed grpc-timeout, before the body
    expect(await get("Tom", { timeout: "100m", end: false })).toBe("4"); // the body never ends
    releaseSlow?.();
    expect(seen.length).toBe(7);
    for (const [i, { before, after }] of seen.entries()) {
      const counts = await after;
      for (const event of OURS) {
        expect(counts[event], `call ${i}: "${event}" listeners`).toBeLessThanOrEqual(before[event]);
      }
    }
  });
});
