// The forward-floor part of `pnpm bench` (issue 14): what a forwarded Get hit
// costs beside a local one with bare node:http2 and no DistCache code at all,
// so the issue's target (a forwarded hit at 1 connection × 64 streams costs,
// in CPU summed over every process, at most 1.2× a local hit) can be set
// against the floor Node's own HTTP/2 puts under it, measured in one run.
//
// Contenders, child processes of this file (`--serve ROLE`), started once and
// kept for every round:
//   bare hit      one process: a node:http2 server answering
//                 /distcache.CacheService/Get from a Map of key -> value.
//   bare forward  two processes. The owner holds the Map; the entry holds
//                 nothing and keeps ONE long-lived HTTP/2 stream open to the
//                 owner (a POST whose body it never ends, whose answer the owner
//                 never ends). The entry queues each client Get's key and, once
//                 per event-loop turn, writes one message holding every key of
//                 the turn, each with an id; the owner answers each message with
//                 one message holding the values with their ids (batched the same
//                 way), and the entry answers each Get as its id comes back.
//                 Framing: u32 message length, then per key u32 id, u16 key
//                 length, key bytes / per value u32 id, u32 value length (or
//                 NOT_FOUND and no bytes), value bytes. No protobuf, no abort
//                 signals, no promise per key: the ideal a real forwarder can
//                 only approach.
//   bare forward, 2 owners   the same entry with two owners, each key's owner
//                 picked by a hash of its bytes: the Gets in flight split
//                 between two streams, as bench/costs.mjs's forwarded row
//                 splits them between the two other nodes.
// Both answer a Get as bench/h2-floor.mjs's server does (headers, one
// GetResponse message, grpc-status 0 in trailers via waitForTrailers), with
// the keys' values bench/costs.mjs uses (fanin.mjs's sourceValue).
//
// Load: bench/grpc-load.mjs in this process (not counted), distinct keys round
// robin, every answer checked; 1 connection × 64 streams, and serial (1 × 1).
// CPU per request = CPU time (per-thread /proc schedstat) summed over the contender's
// processes over the run, / requests. A discarded warm-up round, then rounds
// that run hit and forward back to back per setting, the order swapping every
// round; medians over the rounds, "× hit" the median of the per-round ratios.
//
// Standalone: node bench/forward-floor.mjs [--quick]

import http2 from "node:http2";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { startChild, stopChild, tail } from "../scripts/lib/node-process.mjs";
import { sourceValue } from "./fanin.mjs";
import { runGrpcLoad } from "./grpc-load.mjs";
import {
  formatMs,
  formatRate,
  formatUs,
  loadAverage,
  markdownTable,
  medianOf,
  totalCpuMs,
} from "./harness.mjs";

const SELF = fileURLToPath(import.meta.url);
const HOST = "127.0.0.1";
const GROUP = "scores";
const GET_PATH = "/distcache.CacheService/Get";
const EXCHANGE_PATH = "/bench.ForwardFloor/Exchange";
/** Both contenders serve these keys with costs.mjs's values ("value of warm-17"). */
const KEYS = Array.from({ length: 600 }, (_, i) => `warm-${i}`);
/** Issue 14: forwarded / local hit CPU at 1×64 (serial: 3×). */
const TARGET = 1.2;
const SERIAL_TARGET = 3;
/** Caps on what a parser accepts: a bigger length is a bug, and fails the run loudly. */
const MAX_REQUEST = 64 << 10;
const MAX_MESSAGE = 16 << 20;
/** An owner's value length for a key it does not hold. */
const NOT_FOUND = 0xffffffff;

/** `warmup`: rounds before the measured ones, discarded (the JIT, the sessions). */
const FULL = { rounds: 5, warmup: 1, requests: 10_000, serial: 1_000 };
const QUICK = { rounds: 1, warmup: 0, requests: 1_000, serial: 100 };

/** The rows, in print order; one round runs each setting's hit and forward back to back. */
const SCENARIOS = [
  { id: "hit64", contender: "hit", streams: 64 },
  { id: "fwd64", contender: "forward", streams: 64 },
  { id: "fwd64two", contender: "forward2", streams: 64 },
  { id: "hit1", contender: "hit", streams: 1 },
  { id: "fwd1", contender: "forward", streams: 1 },
];
const LABELS = {
  hit: "bare hit (1 process)",
  forward: "bare forward (entry + owner)",
  forward2: "bare forward (entry + 2 owners, keys split)",
};

// --- the served side: child processes ---------------------------------------------

/** A field length (varint) at `pos`: [value, next pos]; at most 5 bytes. */
function readLength(buf, pos) {
  let value = 0;
  for (let shift = 0; shift < 35; shift += 7) {
    if (pos >= buf.length) throw new Error("forward-floor: truncated varint");
    const b = buf[pos++];
    value += (b & 0x7f) * 2 ** shift;
    if ((b & 0x80) === 0) return [value, pos];
  }
  throw new Error("forward-floor: varint longer than 5 bytes");
}

/** The key bytes of GetRequest { string group = 1; string key = 2; } in one gRPC frame. */
function requestKey(body) {
  if (body.length < 5 || body[0] !== 0) throw new Error("forward-floor: not a gRPC frame");
  if (body.length !== 5 + body.readUInt32BE(1)) {
    throw new Error(
      `forward-floor: frame says ${body.readUInt32BE(1)} bytes, has ${body.length - 5}`,
    );
  }
  let key;
  let pos = 5;
  // Every pass consumes a tag byte at least, or throws.
  while (pos < body.length) {
    const tag = body[pos++]; // fields 1 and 2: one-byte tags
    if ((tag & 7) !== 2) throw new Error(`forward-floor: unexpected tag ${tag}`);
    let length;
    [length, pos] = readLength(body, pos);
    if (pos + length > body.length) throw new Error("forward-floor: field past the frame");
    if (tag === 0x12) key = body.subarray(pos, pos + length);
    pos += length;
  }
  if (key === undefined) throw new Error("forward-floor: GetRequest without a key");
  return key;
}

/** GetResponse { bytes data = 1; bool found = 2; } in a gRPC frame; `undefined`: found=false. */
function responseFrame(value) {
  if (value === undefined) return Buffer.alloc(5);
  // Values are short (costs.mjs's): a one-byte field length.
  if (value.length > 127) throw new Error("forward-floor: value over 127 bytes");
  const frame = Buffer.allocUnsafe(9 + value.length);
  frame[0] = 0;
  frame.writeUInt32BE(4 + value.length, 1);
  frame[5] = 0x0a;
  frame[6] = value.length;
  value.copy(frame, 7);
  frame[7 + value.length] = 0x10;
  frame[8 + value.length] = 1;
  return frame;
}

/** Answers a Get as h2-floor's server does: headers, one message, grpc-status 0 in trailers. */
function answer(stream, value) {
  if (stream.destroyed) return; // the client gave up: nothing to answer
  stream.respond({ ":status": 200, "content-type": "application/grpc" }, { waitForTrailers: true });
  stream.once("wantTrailers", () => stream.sendTrailers({ "grpc-status": "0" }));
  stream.end(responseFrame(value));
}

/** Reads one client Get's body; `handle(stream, keyBytes)` once it has ended. */
function onGet(stream, headers, handle) {
  if (headers[":path"] !== GET_PATH) {
    stream.respond({ ":status": 404 }, { endStream: true });
    return;
  }
  let body;
  stream.on("data", (chunk) => {
    body = body === undefined ? chunk : Buffer.concat([body, chunk]);
    if (body.length > MAX_REQUEST) throw new Error(`forward-floor: Get over ${MAX_REQUEST} bytes`);
  });
  stream.on("end", () => handle(stream, requestKey(body ?? Buffer.alloc(0))));
}

/**
 * Splits a byte stream into u32-length-prefixed messages for `onMessage`. A
 * length over MAX_MESSAGE throws (a framing bug must not wait forever for
 * bytes that never come). Messages here are a few KiB at most, so an
 * incomplete one is simply concatenated with the next chunk.
 */
function messageReader(onMessage) {
  let rest;
  return (chunk) => {
    let buf = rest === undefined ? chunk : Buffer.concat([rest, chunk]);
    rest = undefined;
    // Every pass consumes one whole message (4 bytes at least) or stops.
    while (buf.length >= 4) {
      const length = buf.readUInt32BE(0);
      if (length > MAX_MESSAGE) {
        throw new Error(`forward-floor: message of ${length} bytes, over the ${MAX_MESSAGE} cap`);
      }
      if (buf.length < 4 + length) break;
      onMessage(buf.subarray(4, 4 + length));
      buf = buf.subarray(4 + length);
    }
    if (buf.length > 0) rest = buf;
  };
}

/**
 * Queues (id, bytes) entries and writes every entry queued in one event-loop
 * turn as one message to `send`: u32 id, the bytes' length in `lengthBytes`
 * (2 or 4; `undefined` bytes: NOT_FOUND), the bytes. Counts messages and
 * entries in `stats`.
 */
function batcher(lengthBytes, send, stats) {
  const ids = [];
  const items = [];
  let bytes = 0;
  let scheduled = false;
  const flush = () => {
    scheduled = false;
    const message = Buffer.allocUnsafe(4 + bytes);
    message.writeUInt32BE(bytes, 0);
    let pos = 4;
    for (let i = 0; i < ids.length; i++) {
      const item = items[i];
      message.writeUInt32BE(ids[i], pos);
      if (lengthBytes === 2) message.writeUInt16BE(item.length, pos + 4);
      else message.writeUInt32BE(item === undefined ? NOT_FOUND : item.length, pos + 4);
      pos += 4 + lengthBytes;
      if (item !== undefined) pos += item.copy(message, pos);
    }
    stats.messages++;
    stats.entries += ids.length;
    ids.length = 0;
    items.length = 0;
    bytes = 0;
    send(message);
  };
  return (id, item) => {
    if (lengthBytes === 2 && item.length > 0xffff) throw new Error("forward-floor: key too long");
    ids.push(id);
    items.push(item);
    bytes += 4 + lengthBytes + (item === undefined ? 0 : item.length);
    if (bytes > MAX_MESSAGE) throw new Error("forward-floor: batch over the message cap");
    if (!scheduled) {
      scheduled = true;
      // setImmediate, not the cheaper queueMicrotask (or process.nextTick):
      // node:http2 hands each stream's events to JS in a callback scope of its
      // own, which drains the microtask and nextTick queues on the way out, so
      // those flush after every single Get (measured: 1.0 keys per message at
      // 1×64). setImmediate runs once the poll phase has handled the whole
      // socket read (62.5 keys per message at 1×64).
      setImmediate(flush);
    }
  };
}

/** The served keys' values as bytes. */
function valueMap() {
  return new Map(KEYS.map((key) => [key, Buffer.from(sourceValue(key), "utf8")]));
}

/**
 * Listens on port 0 and prints the port: the kernel picks and binds in one
 * step, so nothing can take the port between a pick and the listen.
 */
function listen(server, role) {
  server.listen(0, HOST, () => {
    console.log(`forward-floor ${role} serving on ${HOST}:${server.address().port}`);
  });
}

/** Answers the parent's "stats" over IPC; exits with the parent (the channel closes). */
function reportTo(stats) {
  process.on("message", (m) => {
    if (m === "stats") process.send({ ...stats });
  });
  process.on("disconnect", () => process.exit(0));
}

function serveHit() {
  const values = valueMap();
  const server = http2.createServer();
  server.on("stream", (stream, headers) =>
    onGet(stream, headers, (s, key) => answer(s, values.get(key.toString("utf8")))),
  );
  listen(server, "hit");
  reportTo({});
}

function serveOwner() {
  const values = valueMap();
  const stats = { messages: 0, entries: 0 };
  const server = http2.createServer();
  server.on("stream", (stream, headers) => {
    if (headers[":path"] !== EXCHANGE_PATH) {
      stream.respond({ ":status": 404 }, { endStream: true });
      return;
    }
    stream.respond({ ":status": 200 }); // and never ended: answers follow as messages
    // The entry's stop at the end of the run resets this stream: not an error here.
    stream.on("error", () => {});
    const enqueue = batcher(4, (message) => stream.write(message), stats);
    stream.on(
      "data",
      messageReader((message) => {
        let pos = 0;
        // Every pass consumes 6 bytes at least, or throws.
        while (pos < message.length) {
          if (pos + 6 > message.length) throw new Error("forward-floor: truncated key entry");
          const id = message.readUInt32BE(pos);
          const length = message.readUInt16BE(pos + 4);
          pos += 6;
          if (pos + length > message.length) throw new Error("forward-floor: key past its message");
          enqueue(id, values.get(message.toString("utf8", pos, pos + length)));
          pos += length;
        }
      }),
    );
  });
  listen(server, "owner");
  reportTo(stats);
}

/** The owner of `key` (bytes) among `count`: its bytes summed, modulo `count` (a bench's ring). */
function ownerIndex(key, count) {
  let sum = 0;
  for (let i = 0; i < key.length; i++) sum += key[i];
  return sum % count;
}

async function serveEntry(ownerPorts) {
  const stats = { messages: 0, entries: 0 };
  /** Client Gets waiting for their value, by id (ids are unique across owners). */
  const pending = new Map();
  let nextId = 0;
  const owners = await Promise.all(ownerPorts.map((port) => connectOwner(port, pending, stats)));
  const server = http2.createServer();
  server.on("stream", (stream, headers) =>
    onGet(stream, headers, (s, key) => {
      const id = nextId;
      nextId = (nextId + 1) >>> 0;
      if (pending.has(id)) throw new Error("forward-floor: ids wrapped onto a waiting Get");
      pending.set(id, s);
      owners[ownerIndex(key, owners.length)](id, key);
    }),
  );
  listen(server, "entry");
  reportTo(stats);
}

/** Opens the exchange stream to the owner on `port`; resolves with its enqueue function. */
async function connectOwner(port, pending, stats) {
  // No error listeners on the session or the exchange stream: losing the
  // owner is a bug here, and the uncaught error ends this process loudly.
  const session = http2.connect(`http://${HOST}:${port}`);
  const upstream = session.request({ ":method": "POST", ":path": EXCHANGE_PATH });
  upstream.on("close", () => {
    throw new Error("forward-floor: the exchange stream to the owner closed");
  });
  const enqueue = batcher(2, (message) => upstream.write(message), stats);
  upstream.on(
    "data",
    messageReader((message) => {
      let pos = 0;
      // Every pass consumes 8 bytes at least, or throws.
      while (pos < message.length) {
        if (pos + 8 > message.length) throw new Error("forward-floor: truncated value entry");
        const id = message.readUInt32BE(pos);
        const length = message.readUInt32BE(pos + 4);
        pos += 8;
        let value;
        if (length !== NOT_FOUND) {
          if (pos + length > message.length)
            throw new Error("forward-floor: value past its message");
          value = message.subarray(pos, pos + length);
          pos += length;
        }
        const stream = pending.get(id);
        if (stream === undefined) throw new Error(`forward-floor: a value for unknown id ${id}`);
        pending.delete(id);
        answer(stream, value);
      }
    }),
  );
  await new Promise((resolve) => upstream.once("response", resolve));
  return enqueue;
}

// --- the load side: this process --------------------------------------------------

/** Starts `--serve role` (pushed to `started` first, so a failed start is stopped too). */
async function startServing(started, role, args = []) {
  const state = startChild(
    `forward-floor ${role}`,
    [SELF, "--serve", role, ...args],
    "serving on",
    {
      ipc: true,
      // Measured as run, not under this process's NODE_OPTIONS.
      env: { ...process.env, NODE_OPTIONS: "" },
      keepLines: 50,
      onLine: (line, s) => {
        const m = / serving on [\d.]+:(\d+)$/.exec(line);
        if (m) s.port = Number(m[1]);
      },
    },
  );
  started.push(state);
  await state.ready;
  return state;
}

/** A contender's processes: `port` takes the Gets, `pids` are counted. */
async function startContender(started, name) {
  if (name === "hit") {
    const hit = await startServing(started, "hit");
    return { name, port: hit.port, children: [hit], pids: [hit.child.pid] };
  }
  const owners = [];
  for (let i = name === "forward2" ? 2 : 1; i > 0; i--) {
    owners.push(await startServing(started, "owner"));
  }
  const entry = await startServing(
    started,
    "entry",
    owners.map((o) => String(o.port)),
  );
  const children = [entry, ...owners];
  return {
    name,
    port: entry.port,
    children,
    pids: children.map((c) => c.child.pid),
    entry,
    owners,
  };
}

/** A child's exchange counters over IPC (5 s bound). */
function askStats(state) {
  return new Promise((resolve, reject) => {
    const fail = (why) => reject(new Error(`${state.label}: ${why}:\n${tail(state)}`));
    const timer = setTimeout(() => fail("no stats in 5 s"), 5_000);
    state.child.once("message", (m) => {
      clearTimeout(timer);
      resolve(m);
    });
    // With a callback, a closed channel is this error, not an unhandled 'error' event.
    state.child.send("stats", (error) => {
      if (error === null || error === undefined) return;
      clearTimeout(timer);
      fail(`no stats (${error.message})`);
    });
  });
}

/** Throws if a child of `contender` has exited (between runs: the run below would hang or lie). */
function checkAlive(contender) {
  for (const c of contender.children) {
    if (c.child.exitCode !== null || c.child.signalCode !== null) {
      throw new Error(`${c.label} exited (${c.child.exitCode ?? c.child.signalCode}):\n${tail(c)}`);
    }
  }
}

/** [the entry's counters, its owners' summed] */
async function exchangeStats(contender) {
  const owners = { messages: 0, entries: 0 };
  for (const owner of contender.owners) {
    const { messages, entries } = await askStats(owner);
    owners.messages += messages;
    owners.entries += entries;
  }
  return [await askStats(contender.entry), owners];
}

/** Mean entries per message between two counter readings. */
const perMessage = (a, b) => (b.entries - a.entries) / Math.max(1, b.messages - a.messages);

/** One measured run of `requests` Gets against `contender`; fails if a child exits meanwhile. */
async function runOnce(contender, streams, requests) {
  checkAlive(contender);
  const forward = contender.entry !== undefined;
  const stats0 = forward ? await exchangeStats(contender) : [];
  const cpu0 = totalCpuMs(contender.pids);
  const load = runGrpcLoad({
    port: contender.port,
    group: GROUP,
    keys: KEYS,
    expected: sourceValue,
    requests,
    streams,
    timeoutMs: 120_000,
  });
  load.catch(() => {}); // awaited in the race below, which reports its failure
  const died = Promise.race(
    contender.children.map((c) => c.exited.then((how) => ({ died: c, how }))),
  );
  const r = await Promise.race([load, died]);
  if (r.died !== undefined) {
    throw new Error(
      `${r.died.label} exited (${r.how.code ?? r.how.signal}) during a run:\n${tail(r.died)}`,
    );
  }
  const cpu = totalCpuMs(contender.pids) - cpu0;
  const sample = { ...r, requests, cpuUs: (cpu * 1000) / requests };
  if (forward) {
    const stats1 = await exchangeStats(contender);
    sample.keysPerRequest = perMessage(stats0[0], stats1[0]);
    sample.valuesPerAnswer = perMessage(stats0[1], stats1[1]);
  }
  return sample;
}

const times = (v) => (Number.isFinite(v) ? `${v.toFixed(2)}×` : "n/a");

/**
 * Runs the forward-floor part and returns the report.
 *
 * @param {{quick?: boolean, log?: (line: string) => void}} [options]
 * @returns {Promise<{ok: boolean, markdown: string, results: object[]}>} `ok` is
 *   false when a Get was answered wrong.
 */
export async function runForwardFloor({
  quick = false,
  log = (line) => process.stderr.write(`${line}\n`),
} = {}) {
  const cfg = quick ? QUICK : FULL;
  const t0 = process.hrtime.bigint();
  const say = (line) =>
    log(`[${(Number(process.hrtime.bigint() - t0) / 1e9).toFixed(1)} s] forward-floor: ${line}`);
  const problems = [];
  const samples = new Map(SCENARIOS.map((s) => [s.id, []]));
  const started = [];
  try {
    const contenders = {
      hit: await startContender(started, "hit"),
      forward: await startContender(started, "forward"),
      forward2: await startContender(started, "forward2"),
    };
    for (let round = -cfg.warmup; round < cfg.rounds; round++) {
      // Hit and forward back to back per setting, the first one swapping every round.
      for (const streams of [64, 1]) {
        const pair = SCENARIOS.filter((s) => s.streams === streams);
        if (round % 2 !== 0) pair.reverse();
        for (const scenario of pair) {
          const requests = streams === 1 ? cfg.serial : cfg.requests;
          const r = await runOnce(contenders[scenario.contender], streams, requests);
          if (r.failed > 0)
            problems.push(`${scenario.id}: ${r.failed} Gets failed (${r.failures[0]})`);
          say(
            `${round < 0 ? "warm-up" : `round ${round + 1}/${cfg.rounds}`} ${scenario.id}: ${formatRate(r.rate)} req/s, ${formatUs(r.cpuUs)} CPU/req, p99 ${formatMs(r.p99)}` +
              (r.keysPerRequest === undefined
                ? ""
                : `, ${r.keysPerRequest.toFixed(1)} keys/message`),
          );
          if (round >= 0) samples.get(scenario.id).push(r);
        }
      }
    }
  } finally {
    // Every child started, by pid (SIGTERM, then SIGKILL), the entry before its owner.
    for (const state of started.reverse()) await stopChild(state);
  }

  const results = SCENARIOS.map((s) => {
    const list = samples.get(s.id);
    const m = (key) => medianOf(list.map((x) => x[key]));
    // Paired by round: a slow phase of the machine hits both sides of a ratio.
    const hit = samples.get(`hit${s.streams}`);
    const ratios = s.contender !== "hit" ? list.map((x, r) => x.cpuUs / hit[r].cpuUs) : [];
    return {
      ...s,
      requests: list[0]?.requests,
      rate: m("rate"),
      p50: m("p50"),
      p99: m("p99"),
      cpuUs: m("cpuUs"),
      cpuSamples: list.map((x) => x.cpuUs),
      ratio: medianOf(ratios),
      ratioSamples: ratios,
      keysPerRequest: m("keysPerRequest"),
      valuesPerAnswer: m("valuesPerAnswer"),
    };
  });
  const byId = new Map(results.map((r) => [r.id, r]));
  const table = markdownTable(
    [
      "contender",
      "conns×streams",
      "requests",
      "req/s",
      "p50",
      "p99",
      "CPU per request (summed)",
      "× hit",
    ],
    results.map((r) => [
      LABELS[r.contender],
      `1×${r.streams}`,
      (r.requests ?? 0).toLocaleString("en"),
      formatRate(r.rate),
      formatMs(r.p50),
      formatMs(r.p99),
      formatUs(r.cpuUs),
      r.contender !== "hit" ? times(r.ratio) : "",
    ]),
    ["l", "l", "r", "r", "r", "r", "r", "r"],
  );
  const fwd64 = byId.get("fwd64");
  const fwd64two = byId.get("fwd64two");
  const fwd1 = byId.get("fwd1");
  const straddles =
    Math.min(...fwd64.ratioSamples) <= TARGET && Math.max(...fwd64.ratioSamples) > TARGET;
  const verdict =
    (fwd64.ratio <= TARGET
      ? `at or under the ${TARGET}× target: bare node:http2 leaves ${times(TARGET / fwd64.ratio)} for a forwarder's own work`
      : `over the ${TARGET}× target: in this run the bare floor alone, with no forwarding code, costs more than the target allows`) +
    // One round's ratio moves by a tenth or more on a shared machine.
    (straddles
      ? "; the per-round ratios fall on both sides of the target, so the floor sits at it rather than clearly under or over"
      : "");
  const load = loadAverage();
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  const markdown = [
    "### Forward floor: bare node:http2, no DistCache code",
    "",
    `${cfg.rounds} round(s) after ${cfg.warmup} discarded; in each round hit and forward run back to back per setting, the first swapping every round; medians over the rounds. ` +
      "bare hit: one node:http2 server answering Gets from a Map. bare forward: an entry holding nothing, forwarding every Get over one long-lived HTTP/2 stream to an owner holding the Map (or to one of two owners by a hash of the key), " +
      "keys and values batched once per event-loop turn with ids (no protobuf, no promise per key). " +
      "CPU per request: CPU time (per-thread /proc schedstat, ns) summed over the contender's processes over the run, / requests; the load generator in this process is not counted. " +
      "× hit: forward CPU / hit CPU, median of the per-round ratios.",
    "",
    table,
    "",
    `**Floor vs target (issue 14):** bare forward / bare hit CPU at 1×64 = ${times(fwd64.ratio)} (per round: ${fwd64.ratioSamples.map((v) => v.toFixed(2)).join(" ")}), ${verdict}. ` +
      `With the keys split between two owners (as bench/costs.mjs's forwarded row): ${times(fwd64two.ratio)}. ` +
      `Serial: ${times(fwd1.ratio)} (target ≤ ${SERIAL_TARGET}×).`,
    "",
    `Batches: ${fwd64.keysPerRequest.toFixed(1)} keys per entry→owner message and ${fwd64.valuesPerAnswer.toFixed(1)} values per owner→entry message at 1×64 ` +
      `(two owners: ${fwd64two.keysPerRequest.toFixed(1)} / ${fwd64two.valuesPerAnswer.toFixed(1)}; serial: ${fwd1.keysPerRequest.toFixed(2)} / ${fwd1.valuesPerAnswer.toFixed(2)}; mean per run, median over rounds). ` +
      `Load average at the end: ${load} on ${os.cpus().length} cores. Checked: every Get answered found=true with the expected value. ` +
      `Forward-floor part took ${seconds.toFixed(1)} s.` +
      (problems.length > 0 ? `\n\n**FAILED checks:** ${problems.join("; ")}` : ""),
  ].join("\n");
  return { ok: problems.length === 0, markdown, results };
}

// A child: node bench/forward-floor.mjs --serve hit|owner|entry [OWNER_PORT]
// Standalone: node bench/forward-floor.mjs [--quick]
if (process.argv[1] && path.resolve(process.argv[1]) === SELF) {
  if (process.argv[2] === "--serve") {
    const role = process.argv[3];
    if (role === "hit") serveHit();
    else if (role === "owner") serveOwner();
    else if (role === "entry") await serveEntry(process.argv.slice(4).map(Number));
    else throw new Error(`forward-floor: unknown role "${role}"`);
  } else {
    const report = await runForwardFloor({ quick: process.argv.includes("--quick") });
    console.log(report.markdown);
    process.exit(report.ok ? 0 : 1);
  }
}
