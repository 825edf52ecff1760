// The Exchange fast path (a peer's long-lived `PeerService/Exchange` stream)
// against callers that misbehave, over real HTTP/2: a raw `node:http2` client
// speaks hand-made gRPC envelopes to a NodeServer on a loopback port and pins
// what the node does with a stream that stays open past the stream limits,
// protocol errors, call errors, too many streams, cancelled calls, a caller
// that never reads, and a server that drains.
import * as http2 from "node:http2";
import { performance } from "node:perf_hooks";
import { create, fromBinary, type MessageInitShape, toBinary } from "@bufbuild/protobuf";
import { Code } from "@connectrpc/connect";
import { type Getter, Group, type GroupOptions, NotFoundError } from "@distcache/core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  type ExchangeEnd,
  ExchangeRequestSchema,
  type ExchangeResponse,
  ExchangeResponseSchema,
  FetchManyRequestSchema,
  FetchManyResponseSchema,
  FetchOutcome,
  type FetchResult,
} from "../../gen/distcache/peer/v1/peer_pb.js";
import { type ResolvedServerOptions, SERVER_DEFAULTS } from "../../options.js";
import { makeSender } from "../../peer-wire.js";
import {
  envelope,
  eventually,
  GET_PATH,
  getRequestBytes,
  getResponse,
  rawCall,
} from "../../raw-h2.test-util.js";
import type { ServiceHost } from "../host.js";
import { NodeServer } from "../server.js";
import { MAX_EXCHANGE_CALLS } from "./exchange.js";

const EXCHANGE_PATH = "/distcache.peer.v1.PeerService/Exchange";
const FETCH_MANY_PATH = "/distcache.peer.v1.PeerService/FetchMany";
/** The made-up peer every call below comes from (a member of every server). */
const SENDER = "127.0.0.1:1";
const MAX_KEY_BYTES = 64;
/** grpc-status and ExchangeEnd.code of a call that succeeded. */
const OK = 0;
/** RST_STREAM CANCEL, as the guard resets a stream. */
const CANCEL = http2.constants.NGHTTP2_CANCEL;

type ExchangeRequestInit = MessageInitShape<typeof ExchangeRequestSchema>;

// ---------------------------------------------------------------------------
// Servers and sessions, all closed in afterAll.

interface TestNode {
  readonly server: NodeServer;
  readonly group: Group;
  readonly name: string;
  readonly url: string;
}

const nodes: TestNode[] = [];
const sessions: http2.ClientHttp2Session[] = [];

afterAll(async () => {
  for (const session of sessions) if (!session.destroyed) session.destroy();
  await Promise.all(nodes.map((node) => node.server.close()));
});

/** A NodeServer on 127.0.0.1:0 serving one group `name` (unique per server) with `getter`. */
async function startNode(
  name: string,
  getter: Getter,
  options: Partial<ResolvedServerOptions> = {},
  groupOptions: GroupOptions = {},
): Promise<TestNode> {
  const group = new Group(name, 64 << 20, getter, groupOptions);
  const host: ServiceHost = {
    membershipVersion: () => 7n,
    group: (asked) => (asked === name ? group : undefined),
    heardFrom: () => {},
    epochSeen: () => 0,
  };
  const server = new NodeServer(host, {
    ...SERVER_DEFAULTS,
    maxKeyBytes: MAX_KEY_BYTES,
    // No shedding for event-loop delay: a loaded test machine must not turn
    // a call away for reasons these tests are not about.
    maxEventLoopDelayMs: 0,
    drainTimeoutMs: 200,
    ...options,
  });
  server.setMembers([SENDER]);
  await server.listen("127.0.0.1", 0);
  const node = { server, group, name, url: `http://127.0.0.1:${server.address!.port}` };
  nodes.push(node);
  return node;
}

/** An HTTP/2 session to `node`, connected. */
async function connect(
  node: TestNode,
  options: http2.ClientSessionOptions = {},
): Promise<http2.ClientHttp2Session> {
  const session = http2.connect(node.url, options);
  sessions.push(session);
  session.on("error", () => {});
  await within(
    new Promise<void>((resolve, reject) => {
      session.once("connect", () => resolve());
      session.once("close", () => reject(new Error("session closed before connecting")));
    }),
    10_000,
    "connect",
  );
  return session;
}

/** `promise`, or a rejection after `ms`. */
async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

// ---------------------------------------------------------------------------
// A raw Exchange stream: writes ExchangeRequests, reads ExchangeResponses.

class RawExchange {
  readonly stream: http2.ClientHttp2Stream;
  /** Response headers (for a trailers-only answer, they hold grpc-status). */
  headers: http2.IncomingHttpHeaders | undefined;
  trailers: http2.IncomingHttpHeaders | undefined;
  /** Every ExchangeResponse read, in order. */
  readonly messages: ExchangeResponse[] = [];
  /** Something in the body that is no ExchangeResponse envelope. */
  bodyError: string | undefined;
  closed = false;
  rstCode: number | undefined;
  /** Resolves once the stream has closed. */
  readonly done: Promise<void>;
  private buffered: Buffer = Buffer.alloc(0);
  /** For each call id, how many messages had been read when it was last sent. */
  private readonly sentAt = new Map<number, number>();

  /**
   * Opens the stream as member `peer` (its `distcache-peer` header; `null`:
   * none); with `read: false` its answers are never read (flow control stays
   * shut).
   */
  constructor(
    session: http2.ClientHttp2Session,
    options: { read?: boolean; peer?: string | null } = {},
  ) {
    const peer = options.peer === undefined ? SENDER : options.peer;
    this.stream = session.request(
      {
        ":method": "POST",
        ":path": EXCHANGE_PATH,
        "content-type": "application/grpc",
        te: "trailers",
        ...(peer === null ? {} : { "distcache-peer": peer }),
      },
      { endStream: false },
    );
    const stream = this.stream;
    stream.on("response", (headers) => {
      this.headers = headers;
    });
    stream.on("trailers", (trailers) => {
      this.trailers = trailers;
    });
    stream.on("error", () => {}); // a reset: its code is read on close
    if (options.read ?? true) this.read();
    else stream.pause();
    this.done = new Promise((resolve) =>
      stream.once("close", () => {
        this.closed = true;
        this.rstCode = stream.rstCode;
        resolve();
      }),
    );
  }

  /** Reads the answers (from now on, for a stream opened with `read: false`). */
  read(): void {
    this.stream.on("data", (chunk: Buffer) => this.data(chunk));
    this.stream.resume();
  }

  send(request: ExchangeRequestInit): void {
    // A new call of an id whose call ended: only later answers are its own.
    if (request.call?.case !== "cancel" && request.id !== undefined) {
      this.sentAt.set(request.id, this.messages.length);
    }
    this.sendRaw(envelope(toBinary(ExchangeRequestSchema, create(ExchangeRequestSchema, request))));
  }

  sendRaw(bytes: Uint8Array): void {
    if (!this.stream.destroyed && this.stream.writable) this.stream.write(bytes);
  }

  /** The caller ends its side (no further calls). */
  end(): void {
    this.stream.end();
  }

  /** The messages that answered call `id` (its latest use, when the id was used again). */
  of(id: number): ExchangeResponse[] {
    const since = this.sentAt.get(id) ?? 0;
    return this.messages.filter((message, at) => at >= since && message.id === id);
  }

  /** How call `id` ended, once it has. */
  endOf(id: number): ExchangeEnd | undefined {
    return this.of(id).find((message) => message.end !== undefined)?.end;
  }

  /** Waits for the end of call `id`; throws when the stream closes first. */
  async ended(id: number, timeoutMs = 10_000): Promise<ExchangeEnd> {
    await eventually(() => this.endOf(id) !== undefined || this.closed, timeoutMs);
    const end = this.endOf(id);
    if (end === undefined) {
      throw new Error(
        `call ${id}: the stream closed unanswered (grpc-status ${this.grpcStatus}, rst ${this.rstCode})`,
      );
    }
    return end;
  }

  /** The FetchMany results answered to call `id`, by index. */
  results(id: number): FetchResult[] {
    const out: FetchResult[] = [];
    for (const message of this.of(id)) {
      if (message.body.case === "fetchMany") out.push(...message.body.value.results);
    }
    return out.sort((a, b) => a.index - b.index);
  }

  /** Waits until the response headers are in. */
  async answered(timeoutMs = 10_000): Promise<http2.IncomingHttpHeaders> {
    await eventually(() => this.headers !== undefined || this.closed, timeoutMs);
    if (this.headers === undefined) throw new Error(`closed without headers (rst ${this.rstCode})`);
    return this.headers;
  }

  /** grpc-status from the trailers, or from the headers of a trailers-only answer. */
  get grpcStatus(): number | undefined {
    const status = this.trailers?.["grpc-status"] ?? this.headers?.["grpc-status"];
    return status === undefined ? undefined : Number(status);
  }

  get grpcMessage(): string | undefined {
    const text = this.trailers?.["grpc-message"] ?? this.headers?.["grpc-message"];
    return typeof text === "string" ? decodeURIComponent(text) : undefined;
  }

  /** What the stream ended with, for assertion messages. */
  summary(): string {
    return JSON.stringify({
      closed: this.closed,
      rstCode: this.rstCode,
      headers: this.headers,
      trailers: this.trailers ?? null,
      answered: this.messages.map((m) => m.id),
    });
  }

  /** Waits for the stream to close. */
  async closes(timeoutMs = 10_000): Promise<void> {
    await within(this.done, timeoutMs, "the Exchange stream's close");
  }

  private data(chunk: Buffer): void {
    this.buffered = this.buffered.byteLength === 0 ? chunk : Buffer.concat([this.buffered, chunk]);
    while (this.buffered.byteLength >= 5) {
      const length = this.buffered.readUInt32BE(1);
      if (this.buffered.byteLength < 5 + length) break;
      const flags = this.buffered[0]!;
      const message = this.buffered.subarray(5, 5 + length);
      this.buffered = this.buffered.subarray(5 + length);
      if (flags !== 0) {
        this.bodyError = `message flags ${flags}`;
        continue;
      }
      try {
        this.messages.push(fromBinary(ExchangeResponseSchema, message));
      } catch (error) {
        this.bodyError = String(error);
      }
    }
  }
}

/** An ExchangeRequest carrying a FetchMany call. */
function fetchCall(
  id: number,
  keys: string[],
  init: { group: string; cacheOnly?: boolean },
): ExchangeRequestInit {
  return {
    id,
    call: {
      case: "fetchMany",
      value: {
        sender: makeSender(SENDER, 7n),
        group: init.group,
        keys,
        cacheOnly: init.cacheOnly ?? false,
      },
    },
  };
}

/** An ExchangeRequest carrying a StoreMany call (unstamped pushes). */
function storeCall(
  id: number,
  group: string,
  items: { key: string; data: string | Uint8Array }[],
): ExchangeRequestInit {
  return {
    id,
    call: {
      case: "storeMany",
      value: {
        sender: makeSender(SENDER, 7n),
        group,
        items: items.map(({ key, data }) => ({
          key,
          data: typeof data === "string" ? Buffer.from(data) : data,
        })),
      },
    },
  };
}

function cancelCall(id: number): ExchangeRequestInit {
  return { id, call: { case: "cancel", value: {} } };
}

/** `[outcome, data as text]` of each result. */
function outcomes(results: FetchResult[]): [FetchOutcome, string][] {
  return results.map((result) => [result.outcome, Buffer.from(result.data).toString()]);
}

/** A plain `PeerService/FetchMany` request body (one envelope). */
function fetchManyBody(group: string, keys: string[], cacheOnly = false): Buffer {
  return envelope(
    toBinary(
      FetchManyRequestSchema,
      create(FetchManyRequestSchema, { sender: makeSender(SENDER, 7n), group, keys, cacheOnly }),
    ),
  );
}

/** The results of a plain FetchMany answer's body, by index. */
function fetchManyResults(body: Buffer): FetchResult[] {
  const out: FetchResult[] = [];
  for (let at = 0; at + 5 <= body.byteLength; at += 5 + body.readUInt32BE(at + 1)) {
    const message = body.subarray(at + 5, at + 5 + body.readUInt32BE(at + 1));
    out.push(...fromBinary(FetchManyResponseSchema, message).results);
  }
  return out.sort((a, b) => a.index - b.index);
}

/** What every getter below answers for an ordinary key. */
function plain(key: string): string {
  if (key.startsWith("none")) throw new NotFoundError(key);
  return `v:${key}`;
}

// ---------------------------------------------------------------------------

describe("an Exchange stream outlives the stream time limits", () => {
  const LIMIT_MS = 300;
  let node: TestNode;
  let session: http2.ClientHttp2Session;

  beforeAll(async () => {
    node = await startNode("exchange-abuse-life", (key) => plain(key), {
      maxStreamLifetimeMs: LIMIT_MS,
      requestReceiveTimeoutMs: LIMIT_MS,
    });
    session = await connect(node);
  });

  it("is answered call after call long past maxStreamLifetimeMs and requestReceiveTimeoutMs", async () => {
    const opened = performance.now();
    const exchange = new RawExchange(session);
    exchange.send(fetchCall(1, ["Tom"], { group: node.name }));
    expect((await exchange.ended(1)).code).toBe(OK);
    expect(outcomes(exchange.results(1))).toEqual([[FetchOutcome.FOUND, "v:Tom"]]);
    // Over three times both limits; the sweep runs every ~150 ms meanwhile.
    await eventually(() => performance.now() - opened >= 4 * LIMIT_MS, 10_000);
    expect(exchange.closed).toBe(false);
    exchange.send(fetchCall(2, ["Jack", "Sam"], { group: node.name }));
    expect((await exchange.ended(2)).code).toBe(OK);
    expect(outcomes(exchange.results(2))).toEqual([
      [FetchOutcome.FOUND, "v:Jack"],
      [FetchOutcome.FOUND, "v:Sam"],
    ]);
    const stats = node.server.stats();
    expect([
      stats.resetSlowRequests,
      stats.resetExpiredStreams,
      stats.resetStalledResponses,
      stats.resetOverBudget,
    ]).toEqual([0, 0, 0, 0]);
    expect(exchange.closed).toBe(false);
    exchange.end();
    await exchange.closes();
    expect(exchange.grpcStatus).toBe(OK);
  });

  it("while a FetchMany whose request never ends is reset under the same limits", async () => {
    const before = node.server.stats();
    // Opened first: older than the FetchMany below, so every sweep that sees
    // that one past a limit sees this one past it too.
    const exchange = new RawExchange(session);
    exchange.send(fetchCall(1, ["Tom"], { group: node.name }));
    expect((await exchange.ended(1)).code).toBe(OK);
    // Headers only: its request message never comes, nor its END_STREAM.
    const stuck = await rawCall(session, { path: FETCH_MANY_PATH, end: false, timeoutMs: 15_000 });
    expect(stuck.rstCode).toBe(CANCEL);
    expect(stuck.grpcStatus).toBeUndefined();
    const after = node.server.stats();
    // Only the FetchMany was reset, for one reason or the other.
    expect(
      after.resetSlowRequests +
        after.resetExpiredStreams -
        before.resetSlowRequests -
        before.resetExpiredStreams,
    ).toBe(1);
    expect(stuck.ms).toBeGreaterThanOrEqual(LIMIT_MS - 5);
    expect(exchange.closed).toBe(false);
    exchange.send(fetchCall(2, ["Sam"], { group: node.name }));
    expect((await exchange.ended(2)).code).toBe(OK);
    expect(outcomes(exchange.results(2))).toEqual([[FetchOutcome.FOUND, "v:Sam"]]);
    exchange.end();
    await exchange.closes();
    expect(exchange.grpcStatus).toBe(OK);
  });
});

// ---------------------------------------------------------------------------
// One node for the protocol, call, per-connection and cancel tests. Keys
// "block…" load until their signal aborts (each abort is counted).

const MAIN_VALUE_BYTES = 4_096;
/** readMaxBytes of the main node: maxValueBytes + maxKeyBytes + 1_024 (server.ts). */
const MAIN_READ_MAX = MAIN_VALUE_BYTES + MAX_KEY_BYTES + 1_024;
const loading = new Set<string>();
const aborted = new Map<string, number>();

const blocking: Getter = (key, { signal }) => {
  if (!key.startsWith("block")) return plain(key);
  loading.add(key);
  return new Promise((_, reject) => {
    const abort = () => {
      aborted.set(key, (aborted.get(key) ?? 0) + 1);
      reject(signal.reason);
    };
    if (signal.aborted) abort();
    else signal.addEventListener("abort", abort, { once: true });
  });
};

let main: TestNode;
let mainSession: http2.ClientHttp2Session;

describe("the main node", () => {
  beforeAll(async () => {
    main = await startNode(
      "exchange-abuse-main",
      blocking,
      { maxValueBytes: MAIN_VALUE_BYTES },
      // No load timeout: only the caller's cancel may abort a load here.
      { loadTimeout: 0 },
    );
    mainSession = await connect(main);
  });

  describe("stream-level protocol errors end the stream with their status in the trailers", () => {
    it("a call id repeated while its call is open: INVALID_ARGUMENT, and the open call's load is released", async () => {
      const exchange = new RawExchange(mainSession);
      exchange.send(fetchCall(7, ["block-dup"], { group: main.name }));
      await eventually(() => loading.has("block-dup"), 10_000);
      exchange.send(fetchCall(7, ["Tom"], { group: main.name }));
      await exchange.closes();
      expect(exchange.headers?.[":status"]).toBe(200);
      // Neither call 7 is answered: answers to two calls of one id could not be told apart.
      expect(exchange.messages).toEqual([]);
      await eventually(() => aborted.get("block-dup") === 1, 10_000);
      expect(exchange.trailers?.["grpc-status"], exchange.summary()).toBe(
        String(Code.InvalidArgument),
      );
      expect(exchange.grpcMessage).toContain("call id 7 is already open");
    });

    const valid = envelope(
      toBinary(
        ExchangeRequestSchema,
        create(ExchangeRequestSchema, fetchCall(9, ["Sam"], { group: "exchange-abuse-main" })),
      ),
    );
    const announcedOver = Buffer.alloc(5);
    announcedOver.writeUInt32BE(MAIN_READ_MAX + 1, 1);
    const cases: [string, Buffer, boolean, Code, string][] = [
      [
        "id 0",
        envelope(
          toBinary(
            ExchangeRequestSchema,
            create(ExchangeRequestSchema, fetchCall(0, ["Tom"], { group: "exchange-abuse-main" })),
          ),
        ),
        false,
        Code.InvalidArgument,
        "without an id",
      ],
      [
        "a message with no call",
        envelope(toBinary(ExchangeRequestSchema, create(ExchangeRequestSchema, { id: 5 }))),
        false,
        Code.InvalidArgument,
        "without a call",
      ],
      [
        "garbage bytes in an envelope",
        envelope(Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff])),
        false,
        Code.InvalidArgument,
        "bad ExchangeRequest",
      ],
      [
        "garbage bytes that are no whole envelope, then the end of the request",
        // A header announcing 64 bytes, and 2 of them.
        Buffer.from([0x00, 0x00, 0x00, 0x00, 0x40, 0xde, 0xad]),
        true,
        Code.InvalidArgument,
        "incomplete envelope",
      ],
      [
        "an envelope announcing more than readMaxBytes",
        announcedOver,
        false,
        Code.ResourceExhausted,
        `message size ${MAIN_READ_MAX + 1} is larger than configured readMaxBytes ${MAIN_READ_MAX}`,
      ],
      ["the compressed flag", envelope(valid.subarray(5), 1), false, Code.Internal, "flags 1"],
    ];

    it.each(cases)("%s", async (_, bad, thenEnd, code, message) => {
      const exchange = new RawExchange(mainSession);
      // A good call first: the stream is serving when the bad message comes.
      exchange.send(fetchCall(1, ["Tom"], { group: main.name }));
      expect((await exchange.ended(1)).code).toBe(OK);
      exchange.sendRaw(bad);
      if (thenEnd) exchange.end();
      await exchange.closes();
      expect(exchange.headers?.[":status"]).toBe(200);
      expect(exchange.bodyError).toBeUndefined();
      // Nothing but call 1 was answered.
      expect(new Set(exchange.messages.map((m) => m.id))).toEqual(new Set([1]));
      // The stream's status comes in its trailers.
      expect(exchange.trailers?.["grpc-status"], exchange.summary()).toBe(String(code));
      expect(exchange.grpcMessage).toContain(message);
    });

    it("an envelope of exactly readMaxBytes is read (the limit is not off by one)", async () => {
      const exchange = new RawExchange(mainSession);
      const call = toBinary(
        ExchangeRequestSchema,
        create(ExchangeRequestSchema, fetchCall(3, ["Jack"], { group: main.name })),
      );
      // Padded to the limit with an unknown bytes field (15, a 2-byte
      // length), which readers skip.
      const pad = MAIN_READ_MAX - call.byteLength - 3;
      expect(pad).toBeGreaterThanOrEqual(128);
      expect(pad).toBeLessThan(1 << 14);
      const message = Buffer.concat([
        call,
        Buffer.from([(15 << 3) | 2, 0x80 | (pad & 0x7f), pad >> 7]),
        Buffer.alloc(pad),
      ]);
      expect(message.byteLength).toBe(MAIN_READ_MAX);
      exchange.sendRaw(envelope(message));
      expect((await exchange.ended(3)).code).toBe(OK);
      expect(outcomes(exchange.results(3))).toEqual([[FetchOutcome.FOUND, "v:Jack"]]);
      expect(exchange.closed).toBe(false);
      exchange.end();
      await exchange.closes();
      expect(exchange.grpcStatus).toBe(OK);
    });
  });

  describe("call-level errors end the call, not the stream", () => {
    it("FetchMany: unknown group, no keys, a key too long, not protobuf; then valid calls are answered", async () => {
      const before = main.server.received.exchanges;
      const exchange = new RawExchange(mainSession);
      const group = main.name;
      exchange.send(fetchCall(1, ["Tom"], { group: "no-such-group" }));
      const unknown = await exchange.ended(1);
      expect(unknown.code).toBe(Code.FailedPrecondition);
      exchange.send(fetchCall(2, [], { group }));
      expect((await exchange.ended(2)).code).toBe(Code.InvalidArgument);
      exchange.send(fetchCall(3, ["k".repeat(MAX_KEY_BYTES + 1)], { group }));
      expect((await exchange.ended(3)).code).toBe(Code.InvalidArgument);
      // ExchangeRequest { id: 4, fetch_many: <0xff 0xff> }
      exchange.sendRaw(envelope(Buffer.from([0x08, 4, 0x12, 2, 0xff, 0xff])));
      const garbled = await exchange.ended(4);
      expect(garbled.code).toBe(Code.Internal);
      expect(garbled.message).toContain("parse binary");
      for (const id of [1, 2, 3, 4]) expect(exchange.results(id)).toEqual([]);
      // The stream goes on; an id whose call ended may be used again.
      exchange.send(fetchCall(1, ["Tom", "none-1"], { group }));
      exchange.send(fetchCall(5, ["Jack"], { group }));
      expect((await exchange.ended(1)).code).toBe(OK);
      expect((await exchange.ended(5)).code).toBe(OK);
      expect(outcomes(exchange.results(1))).toEqual([
        [FetchOutcome.FOUND, "v:Tom"],
        [FetchOutcome.NOT_FOUND, ""],
      ]);
      expect(outcomes(exchange.results(5))).toEqual([[FetchOutcome.FOUND, "v:Jack"]]);
      expect(exchange.closed).toBe(false);
      // The caller's end: the stream ends with status OK.
      exchange.end();
      await exchange.closes();
      expect(exchange.trailers?.["grpc-status"]).toBe(String(OK));
      expect(main.server.received.exchanges).toBe(before + 1);
    });

    it("StoreMany: its items are kept; bad calls are refused and the stream goes on", async () => {
      const exchange = new RawExchange(mainSession);
      const group = main.name;
      exchange.send(storeCall(1, "no-such-group", [{ key: "stored-x", data: "x" }]));
      expect((await exchange.ended(1)).code).toBe(Code.FailedPrecondition);
      exchange.send(storeCall(2, group, []));
      expect((await exchange.ended(2)).code).toBe(Code.InvalidArgument);
      exchange.send(
        storeCall(3, group, [
          { key: "stored-ok", data: "fine" },
          { key: "stored-big", data: new Uint8Array(MAIN_VALUE_BYTES + 1) },
        ]),
      );
      // A bad batch keeps nothing.
      expect((await exchange.ended(3)).code).toBe(Code.InvalidArgument);
      exchange.send(
        storeCall(4, group, [
          { key: "stored-1", data: "one" },
          { key: "stored-2", data: "two" },
        ]),
      );
      const stored = await exchange.ended(4);
      expect(stored.code).toBe(OK);
      expect(exchange.of(4).some((m) => m.body.case === "storeMany")).toBe(true);
      exchange.send(
        fetchCall(5, ["stored-1", "stored-2", "stored-ok", "stored-x"], { group, cacheOnly: true }),
      );
      expect((await exchange.ended(5)).code).toBe(OK);
      expect(outcomes(exchange.results(5))).toEqual([
        [FetchOutcome.FOUND, "one"],
        [FetchOutcome.FOUND, "two"],
        [FetchOutcome.NOT_CACHED, ""],
        [FetchOutcome.NOT_CACHED, ""],
      ]);
      const kept = await main.group.peerHandler.get("stored-2", { cacheOnly: true });
      expect(Buffer.from(kept?.value ?? []).toString()).toBe("two");
      exchange.end();
      await exchange.closes();
      expect(exchange.grpcStatus).toBe(OK);
    });
  });

  describe("Exchange streams per connection", () => {
    it("at most 4: the 5th is answered RESOURCE_EXHAUSTED, and a closed one's place is free again", async () => {
      const session = await connect(main);
      const before = main.server.received.exchanges;
      const open: RawExchange[] = [];
      for (let i = 0; i < 4; i++) open.push(new RawExchange(session));
      for (const exchange of open) {
        const headers = await exchange.answered();
        expect(headers[":status"]).toBe(200);
        expect(headers["grpc-status"]).toBeUndefined();
      }
      const fifth = new RawExchange(session);
      await fifth.closes();
      // Trailers-only: the status is in the headers.
      expect(fifth.headers?.[":status"]).toBe(200);
      expect(fifth.headers?.["grpc-status"]).toBe(String(Code.ResourceExhausted));
      expect(fifth.grpcMessage).toContain("at most 4 Exchange streams per connection");
      expect(fifth.messages).toEqual([]);
      expect(main.server.received.exchanges).toBe(before + 4);
      // The four serve calls.
      open.forEach((exchange, i) => {
        exchange.send(fetchCall(1, [`Tom${i}`], { group: main.name }));
      });
      for (const [i, exchange] of open.entries()) {
        expect((await exchange.ended(1)).code).toBe(OK);
        expect(outcomes(exchange.results(1))).toEqual([[FetchOutcome.FOUND, `v:Tom${i}`]]);
      }
      // Another connection has its own four.
      const other = await connect(main);
      const elsewhere = new RawExchange(other);
      expect((await elsewhere.answered())["grpc-status"]).toBeUndefined();

      /** Opens Exchange streams on `session` until one is accepted (bounded). */
      const reopen = async (): Promise<RawExchange> => {
        const deadline = performance.now() + 5_000;
        for (let attempt = 0; attempt < 50; attempt++) {
          const exchange = new RawExchange(session);
          const headers = await exchange.answered();
          if (headers["grpc-status"] === undefined) return exchange;
          await exchange.closes();
          if (performance.now() > deadline) break;
          await sleep(50);
        }
        throw new Error("no Exchange stream accepted after one closed");
      };
      // Ended by the caller: ends OK, and its place is taken again.
      open[0]!.end();
      await open[0]!.closes();
      expect(open[0]!.grpcStatus).toBe(OK);
      const second = await reopen();
      // Reset by the caller: its place is freed too.
      open[1]!.stream.close(CANCEL);
      await open[1]!.closes();
      const third = await reopen();
      for (const exchange of [second, third]) {
        exchange.send(fetchCall(2, ["Sam"], { group: main.name }));
        expect((await exchange.ended(2)).code).toBe(OK);
      }
      // Refused streams are not counted as exchanges.
      expect(main.server.received.exchanges).toBe(before + 4 + 1 + 2);
      for (const exchange of [open[2]!, open[3]!, second, third, elsewhere]) exchange.end();
      await Promise.all(
        [open[2]!, open[3]!, second, third, elsewhere].map((exchange) => exchange.closes()),
      );
    });
  });

  describe("ExchangeCancel", () => {
    it("releases the call's loads; the call gets no answer; the stream serves later calls", async () => {
      const exchange = new RawExchange(mainSession);
      const group = main.name;
      exchange.send(fetchCall(1, ["block-cancel"], { group }));
      await eventually(() => loading.has("block-cancel"), 10_000);
      expect(aborted.get("block-cancel")).toBeUndefined();
      exchange.send(cancelCall(1));
      await eventually(() => aborted.get("block-cancel") === 1, 5_000);
      // A cancel of a call that is not open is ignored.
      exchange.send(cancelCall(99));
      exchange.send(fetchCall(2, ["Tom"], { group }));
      expect((await exchange.ended(2)).code).toBe(OK);
      expect(outcomes(exchange.results(2))).toEqual([[FetchOutcome.FOUND, "v:Tom"]]);
      // The cancelled call's load has failed by now; give its answer, if
      // any were (wrongly) written, time to arrive.
      exchange.send(fetchCall(3, ["Sam"], { group }));
      expect((await exchange.ended(3)).code).toBe(OK);
      await sleep(200);
      expect(exchange.of(1)).toEqual([]);
      expect(exchange.of(99)).toEqual([]);
      // Its id is free again.
      exchange.send(fetchCall(1, ["Jack"], { group }));
      expect((await exchange.ended(1)).code).toBe(OK);
      expect(outcomes(exchange.results(1))).toEqual([[FetchOutcome.FOUND, "v:Jack"]]);
      expect(exchange.closed).toBe(false);
      exchange.end();
      await exchange.closes();
      expect(exchange.grpcStatus).toBe(OK);
      expect(aborted.get("block-cancel")).toBe(1);
    });
  });
});

// ---------------------------------------------------------------------------

describe("an Exchange caller that never reads its answers", () => {
  const VALUE_BYTES = 64 << 10;
  const CALLS = 96; // 6 MiB of answers: past the 4 MiB an Exchange stream queues
  const big = Buffer.alloc(VALUE_BYTES, 0x78);
  const bigValues: Getter = (key) => (key.startsWith("big") ? big : plain(key));

  /** A session whose streams may be sent 1 KiB before the client reads, and an Exchange on it that never reads. */
  async function stall(
    node: TestNode,
  ): Promise<{ exchange: RawExchange; stalled: http2.ClientHttp2Session }> {
    const stalled = await connect(node, { settings: { initialWindowSize: 1_024 } });
    const exchange = new RawExchange(stalled, { read: false });
    expect((await exchange.answered())["grpc-status"]).toBeUndefined();
    const fetched = node.server.received.fetchMany;
    for (let id = 1; id <= CALLS; id++) exchange.send(fetchCall(id, ["big"], { group: node.name }));
    // Served until its answers pile up: at least 2 MiB of them.
    await eventually(() => node.server.received.fetchMany - fetched >= 32, 15_000);
    return { exchange, stalled };
  }

  /** A well-behaved peer and client on their own connection are answered promptly. */
  async function expectServing(node: TestNode, session: http2.ClientHttp2Session): Promise<void> {
    const fetched = await rawCall(session, {
      path: FETCH_MANY_PATH,
      body: fetchManyBody(node.name, ["big", "small"]),
      timeoutMs: 5_000,
    });
    expect(fetched.grpcStatus, fetched.grpcMessage).toBe(OK);
    const results = fetchManyResults(fetched.body);
    expect(results.map((r) => [r.outcome, r.data.byteLength])).toEqual([
      [FetchOutcome.FOUND, VALUE_BYTES],
      [FetchOutcome.FOUND, "v:small".length],
    ]);
    expect(fetched.ms).toBeLessThan(5_000);
  }

  it("does not hold up a well-behaved caller on another connection", async () => {
    const node = await startNode("exchange-abuse-stall", bigValues, {
      responseWriteTimeoutMs: 60_000,
    });
    const { exchange, stalled } = await stall(node);
    const session = await connect(node);
    await expectServing(node, session);
    const got = await rawCall(session, {
      path: GET_PATH,
      body: envelope(getRequestBytes(node.name, "Tom")),
      timeoutMs: 5_000,
    });
    expect(got.grpcStatus, got.grpcMessage).toBe(OK);
    expect(Buffer.from(getResponse(got).data).toString()).toBe("v:Tom");
    // Not reset: its write timeout is a minute.
    expect(exchange.closed).toBe(false);
    expect(node.server.stats().resetStalledResponses).toBe(0);
    // Once it opens its windows and reads, every call is answered (reading
    // paused for the queued answers resumes when they are sent).
    stalled.setLocalWindowSize(16 << 20);
    stalled.settings({ initialWindowSize: 8 << 20 });
    exchange.read();
    await eventually(
      () => exchange.messages.filter((m) => m.end !== undefined).length === CALLS,
      20_000,
    );
    for (let id = 1; id <= CALLS; id++) expect(exchange.endOf(id)?.code).toBe(OK);
    exchange.end();
    await exchange.closes();
    expect(exchange.grpcStatus).toBe(OK);
  });

  it("is reset after responseWriteTimeoutMs, and the node keeps serving", async () => {
    const node = await startNode("exchange-abuse-stall-reset", bigValues, {
      responseWriteTimeoutMs: 500,
    });
    const { exchange } = await stall(node);
    await eventually(() => node.server.stats().resetStalledResponses >= 1, 15_000);
    await exchange.closes();
    expect(exchange.rstCode).toBe(CANCEL);
    const session = await connect(node);
    await expectServing(node, session);
  });
});

// ---------------------------------------------------------------------------

describe("who may hold an Exchange stream, and for how long", () => {
  it("without peer authentication, only a caller naming a member in distcache-peer", async () => {
    const node = await startNode("exchange-abuse-who", (key) => plain(key));
    const session = await connect(node);
    const before = node.server.received.exchanges;
    for (const peer of [null, "10.9.9.9:1"]) {
      const outsider = new RawExchange(session, { peer });
      await outsider.closes();
      // Trailers-only, before any call is read.
      expect(outsider.headers?.["grpc-status"]).toBe(String(Code.PermissionDenied));
      expect(outsider.grpcMessage).toContain("is not a member of this node's cluster");
    }
    expect(node.server.received.exchanges).toBe(before);
    const member = new RawExchange(session);
    member.send(fetchCall(1, ["Tom"], { group: node.name }));
    expect((await member.ended(1)).code).toBe(OK);
    member.end();
    await member.closes();
  });

  it("a stream with no call open for idleSessionTimeoutMs is ended with status OK", async () => {
    const IDLE_MS = 1_000;
    const node = await startNode("exchange-abuse-idle", (key) => plain(key), {
      idleSessionTimeoutMs: IDLE_MS,
    });
    const session = await connect(node);
    const exchange = new RawExchange(session);
    const opened = performance.now();
    exchange.send(fetchCall(1, ["Tom"], { group: node.name }));
    expect((await exchange.ended(1)).code).toBe(OK);
    await within(exchange.closes(), 15_000, "the idle stream's end");
    expect(performance.now() - opened).toBeGreaterThanOrEqual(IDLE_MS - 50);
    expect(exchange.grpcStatus).toBe(OK);
    // The connection is no worse for it: a new stream serves.
    const next = new RawExchange(session);
    next.send(fetchCall(1, ["Jack"], { group: node.name }));
    expect((await next.ended(1)).code).toBe(OK);
    next.end();
    await next.closes();
  });
});

describe("calls open on one stream", () => {
  it(`at most MAX_EXCHANGE_CALLS: one more is answered RESOURCE_EXHAUSTED, and the stream goes on`, async () => {
    let release: () => void = () => {};
    const held = new Promise<void>((resolve) => {
      release = resolve;
    });
    // Every call waits on one shared load of "hold" until released.
    const node = await startNode(
      "exchange-abuse-calls",
      async (key) => {
        if (key === "hold") await held;
        return plain(key);
      },
      { maxRequestsInFlight: 4 * MAX_EXCHANGE_CALLS },
    );
    const session = await connect(node);
    const exchange = new RawExchange(session);
    for (let id = 1; id <= MAX_EXCHANGE_CALLS; id++) {
      exchange.send(fetchCall(id, ["hold"], { group: node.name }));
    }
    const over = MAX_EXCHANGE_CALLS + 1;
    exchange.send(fetchCall(over, ["Tom"], { group: node.name }));
    const refused = await exchange.ended(over, 30_000);
    expect(refused.code).toBe(Code.ResourceExhausted);
    expect(refused.message).toBe(
      `overloaded: ${MAX_EXCHANGE_CALLS} calls already open on this Exchange stream`,
    );
    release();
    // Every held call is answered, and the stream takes calls again.
    await exchange.ended(MAX_EXCHANGE_CALLS, 30_000);
    expect(outcomes(exchange.results(1))).toEqual([[FetchOutcome.FOUND, "v:hold"]]);
    exchange.send(fetchCall(over + 1, ["Tom"], { group: node.name }));
    expect((await exchange.ended(over + 1)).code).toBe(OK);
    exchange.end();
    await exchange.closes();
    expect(exchange.grpcStatus).toBe(OK);
  });
});

describe("a draining node", () => {
  it("answers the calls open when close() began, refuses later ones UNAVAILABLE, then ends the stream and closes", async () => {
    let release: (value: string) => void = () => {};
    let slowStarted = false;
    const slow = new Promise<string>((resolve) => {
      release = resolve;
    });
    const node = await startNode(
      "exchange-abuse-drain",
      (key) => {
        if (key !== "slow") return plain(key);
        slowStarted = true;
        return slow;
      },
      // Long enough that only the calls' ends can end the sessions.
      { drainTimeoutMs: 20_000 },
    );
    const session = await connect(node);
    const goaway = new Promise<void>((resolve) => session.once("goaway", () => resolve()));
    const exchange = new RawExchange(session);
    exchange.send(fetchCall(1, ["slow"], { group: node.name }));
    await eventually(() => slowStarted, 10_000);
    exchange.send(fetchCall(2, ["Tom"], { group: node.name }));
    expect((await exchange.ended(2)).code).toBe(OK);

    let closed = false;
    const closing = node.server.close().then(() => {
      closed = true;
    });
    try {
      await within(goaway, 10_000, "GOAWAY");
      exchange.send(fetchCall(3, ["Jack"], { group: node.name }));
      const refused = await exchange.ended(3);
      expect(refused.code).toBe(Code.Unavailable);
      expect(exchange.results(3)).toEqual([]);
      // The slow call holds the stream, and the server, open.
      await sleep(100);
      expect(exchange.closed).toBe(false);
      expect(closed).toBe(false);
    } finally {
      release("slow-value");
    }
    const answered = await exchange.ended(1);
    expect(answered.code).toBe(OK);
    expect(outcomes(exchange.results(1))).toEqual([[FetchOutcome.FOUND, "slow-value"]]);
    await exchange.closes();
    await within(closing, 15_000, "server.close()");
    expect(closed).toBe(true);
    // The drained stream ended with status OK, in its trailers.
    expect(exchange.trailers?.["grpc-status"], exchange.summary()).toBe(String(OK));
  });
});
