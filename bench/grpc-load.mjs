// A gRPC load generator over node:http2 for `CacheService.Get` with many distinct keys.
//
// h2load sends one request body for every request, so it can only Get one key,
// and a node's singleflight merges concurrent Gets of one key: a forwarded row
// driven by h2load measures one peer fetch per ~64 Gets. This generator sends
// each request for the next key of a list (round robin), so the requests in
// flight are distinct keys as long as there are more keys than requests in
// flight. It is used for the local and the forwarded row alike (same client,
// same settings), so their ratio is fair. Every answer is checked: HTTP 200,
// grpc-status 0, found=true and the expected bytes.
//
// Exports `runGrpcLoad` and the framing helpers `getRequestFrame` /
// `decodeGetResponse`; no CLI.

import http2 from "node:http2";
import { percentile } from "./harness.mjs";

const METHOD_PATH = "/distcache.CacheService/Get";
const HEADERS = {
  ":method": "POST",
  ":path": METHOD_PATH,
  "content-type": "application/grpc",
  te: "trailers",
};

function field(tag, bytes) {
  if (bytes.length > 127) throw new Error("bench: protobuf field longer than 127 bytes");
  return Buffer.concat([Buffer.from([tag, bytes.length]), bytes]);
}

/** GetRequest { string group = 1; string key = 2; } in a gRPC frame (flags 0, 4-byte length). */
export function getRequestFrame(group, key) {
  const message = Buffer.concat([
    field(0x0a, Buffer.from(group, "utf8")),
    field(0x12, Buffer.from(key, "utf8")),
  ]);
  const frame = Buffer.alloc(5 + message.length);
  frame.writeUInt32BE(message.length, 1);
  message.copy(frame, 5);
  return frame;
}

function readVarint(buf, pos) {
  let value = 0;
  let shift = 0;
  for (;;) {
    if (pos >= buf.length) throw new Error("truncated varint");
    const b = buf[pos++];
    value += (b & 0x7f) * 2 ** shift;
    if ((b & 0x80) === 0) return [value, pos];
    shift += 7;
  }
}

/** GetResponse { bytes data = 1; bool found = 2; string err = 3; } from one gRPC frame. */
export function decodeGetResponse(body) {
  if (body.length < 5) throw new Error(`response body of ${body.length} bytes, no gRPC frame`);
  if (body[0] !== 0) throw new Error(`compressed or unknown frame flags ${body[0]}`);
  const length = body.readUInt32BE(1);
  const msg = body.subarray(5, 5 + length);
  if (msg.length !== length || body.length !== 5 + length) {
    throw new Error(`frame says ${length} bytes, body holds ${body.length - 5}`);
  }
  const out = { data: Buffer.alloc(0), found: false, err: "" };
  let pos = 0;
  while (pos < msg.length) {
    let tag;
    [tag, pos] = readVarint(msg, pos);
    const wire = tag & 7;
    const num = Math.floor(tag / 8);
    if (wire === 0) {
      let v;
      [v, pos] = readVarint(msg, pos);
      if (num === 2) out.found = v !== 0;
    } else if (wire === 2) {
      let len;
      [len, pos] = readVarint(msg, pos);
      const bytes = msg.subarray(pos, pos + len);
      pos += len;
      if (num === 1) out.data = Buffer.from(bytes);
      else if (num === 3) out.err = bytes.toString("utf8");
    } else {
      throw new Error(`unexpected wire type ${wire}`);
    }
  }
  return out;
}

function connect(url) {
  return new Promise((resolve, reject) => {
    const session = http2.connect(url);
    session.once("connect", () => {
      session.off("error", reject);
      resolve(session);
    });
    session.once("error", reject);
  });
}

/**
 * Sends `requests` gRPC Gets to `127.0.0.1:port`, `keys[i % keys.length]` for
 * the i-th, over `connections` sessions with `streams` requests in flight on
 * each, and checks every answer against `expected(key)`.
 *
 * @param {object} o
 * @param {string} [o.host="127.0.0.1"]
 * @param {number} o.port
 * @param {string} o.group
 * @param {string[]} o.keys
 * @param {(key: string) => string} o.expected  the value each key must have
 * @param {number} o.requests
 * @param {number} [o.connections=1]
 * @param {number} [o.streams=64]               in flight per connection
 * @param {number} [o.timeoutMs=60000]          bound on the whole run
 * @returns {Promise<{rate: number, seconds: number, succeeded: number, failed: number,
 *   failures: string[], p50: number, p99: number, max: number}>} latencies in ms
 */
export async function runGrpcLoad({
  host = "127.0.0.1",
  port,
  group,
  keys,
  expected,
  requests,
  connections = 1,
  streams = 64,
  timeoutMs = 60_000,
}) {
  if (keys.length === 0) throw new Error("grpc-load: no keys");
  const frames = keys.map((key) => getRequestFrame(group, key));
  const wanted = keys.map((key) => Buffer.from(expected(key), "utf8"));
  const sessions = await Promise.all(
    Array.from({ length: connections }, () => connect(`http://${host}:${port}`)),
  );
  const latencies = new Float64Array(requests);
  const failures = [];
  let next = 0;
  let done = 0;
  let succeeded = 0;
  const fail = (text) => {
    if (failures.length < 5) failures.push(text);
  };
  const t0 = process.hrtime.bigint();
  try {
    await new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`grpc-load: ${done}/${requests} answered after ${timeoutMs} ms`)),
        timeoutMs,
      );
      const finishOne = () => {
        if (++done === requests) {
          clearTimeout(timer);
          resolve();
        }
      };
      const send = (session) => {
        if (next >= requests) return;
        const i = next++;
        const k = i % keys.length;
        const started = process.hrtime.bigint();
        const stream = session.request(HEADERS);
        const chunks = [];
        let status;
        let grpcStatus;
        stream.on("response", (headers) => {
          status = headers[":status"];
          grpcStatus = headers["grpc-status"];
        });
        stream.on("trailers", (trailers) => {
          grpcStatus = trailers["grpc-status"];
        });
        stream.on("data", (chunk) => chunks.push(chunk));
        stream.on("error", (error) => fail(`${keys[k]}: ${error.message}`));
        stream.on("close", () => {
          latencies[i] = Number(process.hrtime.bigint() - started) / 1e6;
          let ok = false;
          if (status === 200 && String(grpcStatus) === "0") {
            try {
              const r = decodeGetResponse(Buffer.concat(chunks));
              ok = r.found && r.data.equals(wanted[k]);
              if (!ok) fail(`${keys[k]}: found=${r.found} data="${r.data}" err="${r.err}"`);
            } catch (error) {
              fail(`${keys[k]}: ${error.message}`);
            }
          } else {
            fail(`${keys[k]}: HTTP ${status} grpc-status ${grpcStatus}`);
          }
          if (ok) succeeded++;
          finishOne();
          send(session);
        });
        stream.end(frames[k]);
      };
      for (const session of sessions) for (let s = 0; s < streams; s++) send(session);
    });
  } finally {
    for (const session of sessions) session.close();
  }
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  const sorted = Array.from(latencies).sort((a, b) => a - b);
  return {
    rate: requests / seconds,
    seconds,
    succeeded,
    failed: requests - succeeded,
    failures,
    p50: percentile(sorted, 50),
    p99: percentile(sorted, 99),
    max: sorted[sorted.length - 1] ?? Number.NaN,
  };
}
