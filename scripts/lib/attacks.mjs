// Hostile clients for the fairness tests and `pnpm bench`'s fairness part
// (issue 11): each attack opens raw `node:http2` (or bare TCP) connections to
// one node and misbehaves until stopped; plus the well-behaved client whose
// Gets measure what everyone else sees meanwhile.
import * as http2 from "node:http2";
import * as net from "node:net";

const H2 = http2.constants;
const REFILL_MS = 1_000;
/** A connection the node closed is opened again after this long. */
const RECONNECT_MS = 1_000;
/**
 * Attackers connect from this loopback address, the good client from
 * 127.0.0.1: a node tells hosts apart by address (its per-address limits).
 */
export const ATTACKER_ADDRESS = "127.0.0.2";

/** A gRPC length-prefixed message. */
export function envelope(message, flags = 0) {
  const frame = Buffer.alloc(5 + message.byteLength);
  frame[0] = flags;
  frame.writeUInt32BE(message.byteLength, 1);
  frame.set(message, 5);
  return frame;
}

/** A protobuf length-delimited field (tag = field << 3 | 2). */
function field(number, bytes) {
  const body = typeof bytes === "string" ? Buffer.from(bytes, "utf8") : Buffer.from(bytes);
  const length = [];
  let n = body.byteLength;
  do {
    length.push((n & 0x7f) | (n > 0x7f ? 0x80 : 0));
    n >>>= 7;
  } while (n > 0);
  return Buffer.concat([Buffer.from([(number << 3) | 2, ...length]), body]);
}

/** `GetRequest { group, key }`. */
export function getRequest(group, key) {
  return Buffer.concat([field(1, group), field(2, key)]);
}

/** `SetRequest { group, key, data }`. */
export function setRequest(group, key, data) {
  return Buffer.concat([field(1, group), field(2, key), field(3, data)]);
}

/** `FetchManyRequest { sender { address }, group, keys }`. */
export function fetchManyRequest(sender, group, keys) {
  return Buffer.concat([
    field(1, field(1, sender)),
    field(2, group),
    ...keys.map((key) => field(3, key)),
  ]);
}

/** Opens an HTTP/2 session; resolves once connected (errors are swallowed). */
export function openSession(url, settings = {}, localAddress = ATTACKER_ADDRESS) {
  const session = http2.connect(url, { settings, localAddress });
  session.on("error", () => {});
  return new Promise((resolve, reject) => {
    session.once("connect", () => resolve(session));
    session.once("close", () => reject(new Error("session closed before connecting")));
  });
}

/** Sends one request and never reads or ends anything else; errors swallowed. */
function fire(session, headers, body, end = true) {
  if (session.closed || session.destroyed) return undefined;
  let stream;
  try {
    stream = session.request(headers, { endStream: false });
  } catch {
    return undefined; // the session is going away
  }
  stream.on("error", () => {});
  if (body !== undefined) stream.write(body);
  if (end) stream.end();
  return stream;
}

const grpcHeaders = (path) => ({
  ":method": "POST",
  ":path": path,
  "content-type": "application/grpc",
  te: "trailers",
});

/**
 * The running attack: `stop()` ends it (every connection destroyed);
 * `streams` counts the streams it opened.
 */
class Attack {
  constructor() {
    this.stopped = false;
    this.sessions = [];
    this.sockets = [];
    this.timers = [];
    this.streams = 0;
  }
  every(ms, task) {
    const timer = setInterval(() => {
      if (!this.stopped) task();
    }, ms);
    this.timers.push(timer);
  }
  stop() {
    this.stopped = true;
    for (const timer of this.timers) clearInterval(timer);
    for (const session of this.sessions) session.destroy();
    for (const socket of this.sockets) socket.destroy();
  }
}

/**
 * Keeps up to `perSession` streams open on each session, refilling 1 s
 * after they close (a persistent attacker, not a request flood: floods are
 * the event-loop probe's and the rapid-reset defence's).
 */
function keepStreamsOpen(attack, sessions, perSession, open) {
  for (const session of sessions) {
    let live = 0;
    const top = () => {
      while (!attack.stopped && live < perSession && !session.closed && !session.destroyed) {
        const stream = open(session);
        if (stream === undefined) return;
        attack.streams++;
        live++;
        stream.once("close", () => {
          live--;
          if (!attack.stopped && live === perSession - 1) setTimeout(top, REFILL_MS);
        });
      }
    };
    top();
  }
}

/**
 * Slow read: `connections` sessions advertising SETTINGS_INITIAL_WINDOW_SIZE=0,
 * each with up to `perSession` complete Gets of `key` it never reads.
 */
export async function slowRead(url, { group, key, connections = 2, perSession = 1_000 }) {
  const attack = new Attack();
  attack.sessions = await Promise.all(
    Array.from({ length: connections }, () => openSession(url, { initialWindowSize: 0 })),
  );
  const body = envelope(getRequest(group, key));
  keepStreamsOpen(attack, attack.sessions, perSession, (s) =>
    fire(s, grpcHeaders("/distcache.CacheService/Get"), body),
  );
  return attack;
}

/**
 * Slowloris: `connections` sessions, each with up to `perSession` Gets whose
 * body stops after its first bytes; one more byte now and then, never the end.
 */
export async function slowloris(url, { group, connections = 5, perSession = 1_000 }) {
  const attack = new Attack();
  attack.sessions = await Promise.all(Array.from({ length: connections }, () => openSession(url)));
  const whole = envelope(getRequest(group, "Tom"));
  const open = [];
  keepStreamsOpen(attack, attack.sessions, perSession, (s) => {
    const stream = fire(s, grpcHeaders("/distcache.CacheService/Get"), whole.subarray(0, 3), false);
    if (stream !== undefined) open.push({ stream, sent: 3 });
    return stream;
  });
  attack.every(1_000, () => {
    for (const entry of open) {
      if (entry.stream.closed || entry.sent >= whole.byteLength - 1) continue;
      entry.stream.write(whole.subarray(entry.sent, entry.sent + 1));
      entry.sent++;
    }
  });
  return attack;
}

/**
 * Unread large responses on the Connect and gRPC-Web paths: `connections`
 * sessions (window 0, never read), each with `perSession` Gets of `key` (a
 * large value), alternately Connect (application/proto) and gRPC-Web; with
 * `json`, Connect JSON only (an answer that must be a copy: base64).
 */
export async function unreadLarge(
  url,
  { group, key, connections = 60, perSession = 8, json = false },
) {
  const attack = new Attack();
  attack.sessions = await Promise.all(
    Array.from({ length: connections }, () => openSession(url, { initialWindowSize: 0 })),
  );
  const proto = getRequest(group, key);
  const jsonBody = Buffer.from(JSON.stringify({ group, key }));
  let n = 0;
  keepStreamsOpen(attack, attack.sessions, perSession, (s) =>
    json
      ? fire(
          s,
          {
            ":method": "POST",
            ":path": "/distcache.CacheService/Get",
            "content-type": "application/json",
            "connect-protocol-version": "1",
          },
          jsonBody,
        )
      : n++ % 2 === 0
        ? fire(
            s,
            {
              ":method": "POST",
              ":path": "/distcache.CacheService/Get",
              "content-type": "application/proto",
              "connect-protocol-version": "1",
            },
            proto,
          )
        : fire(
            s,
            {
              ":method": "POST",
              ":path": "/distcache.CacheService/Get",
              "content-type": "application/grpc-web+proto",
              "x-grpc-web": "1",
            },
            envelope(proto),
          ),
  );
  return attack;
}

/**
 * Large partial request bodies: `connections` sessions, each with
 * `perSession` Connect Sets of a `valueBytes` value sent all but its last
 * byte, then held.
 */
export async function partialBodies(
  url,
  { group, connections = 60, perSession = 8, valueBytes = 1_000_000 },
) {
  const attack = new Attack();
  attack.sessions = await Promise.all(Array.from({ length: connections }, () => openSession(url)));
  const body = setRequest(group, "victim", Buffer.alloc(valueBytes, 0x61));
  keepStreamsOpen(attack, attack.sessions, perSession, (s) =>
    fire(
      s,
      {
        ":method": "POST",
        ":path": "/distcache.CacheService/Set",
        "content-type": "application/proto",
        "connect-protocol-version": "1",
        "content-length": body.byteLength,
      },
      body.subarray(0, body.byteLength - 1),
      false,
    ),
  );
  return attack;
}

/**
 * Idle connections: `connections` of them, half bare TCP that never send the
 * HTTP/2 preface, half HTTP/2 sessions that never open a stream. With
 * `reconnect`, each one the node closes is opened again a second later (a
 * connection flood, which only the kernel's accept queue bounds).
 */
export async function idleConnections(url, { connections = 2_000, reconnect = false }) {
  const attack = new Attack();
  const { hostname, port } = new URL(url);
  const bare = () => {
    if (attack.stopped) return;
    const socket = net.connect({
      port: Number(port),
      host: hostname,
      localAddress: ATTACKER_ADDRESS,
    });
    socket.on("error", () => {});
    if (reconnect) socket.once("close", () => setTimeout(bare, RECONNECT_MS));
    attack.sockets.push(socket);
  };
  const idle = () => {
    if (attack.stopped) return;
    const session = http2.connect(url, { localAddress: ATTACKER_ADDRESS });
    session.on("error", () => {});
    if (reconnect) session.once("close", () => setTimeout(idle, RECONNECT_MS));
    attack.sessions.push(session);
  };
  for (let i = 0; i < connections; i++) (i % 2 === 0 ? bare : idle)();
  return attack;
}

/**
 * FetchMany fan-in: `streams` concurrent `PeerService/FetchMany` calls of
 * `keys` distinct cold keys each (`prefix` + number), from one session,
 * repeated with fresh keys as they end.
 */
export async function fetchManyFanIn(
  url,
  { group, sender, prefix = "slow:", streams = 40, keys = 1_024 },
) {
  const attack = new Attack();
  attack.sessions = [await openSession(url)];
  let next = 0;
  keepStreamsOpen(attack, attack.sessions, streams, (s) => {
    const batch = Array.from({ length: keys }, () => `${prefix}${next++}`);
    const stream = fire(
      s,
      grpcHeaders("/distcache.peer.v1.PeerService/FetchMany"),
      envelope(fetchManyRequest(sender, group, batch)),
    );
    stream?.resume(); // read the answers: this attack is about the loads, not the window
    return stream;
  });
  return attack;
}

/**
 * The well-behaved client: `concurrency` loops of gRPC Gets of `key` on its
 * own session (or a fresh connection per Get with `fresh`), each with
 * `timeoutMs`, until `stop()`; `result()` gives the success count and
 * latency percentiles (failures counted by reason).
 */
export function goodClient(url, { group, key, concurrency = 4, timeoutMs = 2_000, fresh = false }) {
  let stopped = false;
  const latencies = [];
  const failures = new Map();
  let session;
  const body = envelope(getRequest(group, key));
  const one = async () => {
    let own;
    if (fresh || session === undefined || session.closed || session.destroyed) {
      own = http2.connect(url);
      own.on("error", () => {});
      if (!fresh) session = own;
    }
    const s = fresh ? own : session;
    const started = performance.now();
    const outcome = await new Promise((resolve) => {
      let stream;
      try {
        stream = s.request(grpcHeaders("/distcache.CacheService/Get"), { endStream: false });
      } catch (error) {
        resolve(`request: ${error.code ?? error.message}`);
        return;
      }
      const timer = setTimeout(() => {
        stream.close(H2.NGHTTP2_CANCEL);
        resolve("timeout");
      }, timeoutMs);
      let status;
      let message = "";
      stream.on("response", (h) => {
        if (h["grpc-status"] !== undefined) {
          status = h["grpc-status"];
          message = h["grpc-message"] ?? "";
        }
      });
      stream.on("trailers", (t) => {
        status = t["grpc-status"];
        message = t["grpc-message"] ?? "";
      });
      stream.on("data", () => {});
      stream.on("error", () => {});
      stream.on("close", () => {
        clearTimeout(timer);
        resolve(
          status === "0"
            ? "ok"
            : status === undefined
              ? `reset ${stream.rstCode}`
              : `grpc-status ${status}: ${decodeURIComponent(message).slice(0, 60)}`,
        );
      });
      stream.end(body);
    });
    if (fresh) own.destroy();
    if (outcome === "ok") latencies.push(performance.now() - started);
    else failures.set(outcome, (failures.get(outcome) ?? 0) + 1);
  };
  const loops = Array.from({ length: concurrency }, async () => {
    while (!stopped) await one();
  });
  return {
    async stop() {
      stopped = true;
      await Promise.all(loops);
      session?.destroy();
    },
    result() {
      const sorted = [...latencies].sort((a, b) => a - b);
      const failed = [...failures.values()].reduce((a, b) => a + b, 0);
      const total = sorted.length + failed;
      const at = (p) => sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] ?? NaN;
      return {
        total,
        ok: sorted.length,
        successRate: total === 0 ? 0 : sorted.length / total,
        p50: at(0.5),
        p99: at(0.99),
        failures: Object.fromEntries(failures),
      };
    },
  };
}

/** The resident set size of process `pid` in bytes (Linux /proc), or undefined. */
export async function rssOf(pid) {
  const { readFile } = await import("node:fs/promises");
  try {
    const status = await readFile(`/proc/${pid}/status`, "utf8");
    const kb = /VmRSS:\s+(\d+) kB/.exec(status);
    return kb === null ? undefined : Number(kb[1]) * 1024;
  } catch {
    return undefined;
  }
}

/**
 * The attacks by name, each started as `(url, group, overrides)`: the sizes
 * of issue 11's runs, which `overrides` (the attack's own options) may change.
 */
export const ATTACKS = {
  "slow read": (url, group, o) => slowRead(url, { group, key: "Tom", connections: 5, ...o }),
  slowloris: (url, group, o) => slowloris(url, { group, connections: 5, ...o }),
  "unread large": (url, group, o) =>
    unreadLarge(url, { group, key: "big:1", connections: 60, perSession: 8, ...o }),
  "unread large JSON": (url, group, o) =>
    unreadLarge(url, { group, key: "big:1", connections: 60, perSession: 8, json: true, ...o }),
  "partial bodies": (url, group, o) => partialBodies(url, { group, ...o }),
  "idle connections": (url, _group, o) => idleConnections(url, { connections: 5_000, ...o }),
  "FetchMany fan-in": (url, group, o) =>
    fetchManyFanIn(url, {
      group,
      // A member's name (the node's own address): an open loopback node serves members only.
      sender: new URL(url).host,
      streams: 40,
      keys: 1_024,
      ...o,
    }),
};

// `node scripts/lib/attacks.mjs NAME URL GROUP [JSON]`: runs one attack in
// its own process until killed (prints "attacking" once started), so its CPU
// use does not slow the measuring client's event loop. JSON: overrides.
if (import.meta.url === `file://${process.argv[1]}`) {
  const [name, url, group, overrides] = process.argv.slice(2);
  const start = ATTACKS[name];
  if (start === undefined) {
    console.error(`unknown attack "${name}"; one of: ${Object.keys(ATTACKS).join(", ")}`);
    process.exit(2);
  }
  await start(url, group, overrides === undefined ? {} : JSON.parse(overrides));
  console.log("attacking");
}
