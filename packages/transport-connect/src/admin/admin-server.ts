// The admin listener: plain HTTP/1.1 on its own port for Prometheus
// (/metrics), Kubernetes probes (/livez, /readyz) and people (/, /status.json,
// /lookup). GET and HEAD only; every input bounded; loopback by default.
import * as http from "node:http";
import type { AddressInfo, Socket } from "node:net";
import { isIP } from "node:net";
import { ByteView, type Group } from "@distcache/core";
import type { Registry } from "prom-client";
import { errorMessage } from "../error-message.js";
import type { ResolvedAdminOptions } from "../options.js";
import type { StatusReport } from "./status.js";
import { STATUS_PAGE, STATUS_PAGE_CSP } from "./status-page.js";

/** What the admin listener serves from. */
export interface AdminHost {
  metrics(): Registry;
  /** Listening, member list loaded, not draining. */
  ready(): boolean;
  status(): StatusReport;
  group(name: string): Group | undefined;
  /** Longest key accepted, in UTF-8 bytes (the server's `maxKeyBytes`). */
  readonly maxKeyBytes: number;
}

/** Longest request target accepted (path and query); longer is 414. */
const MAX_URL_BYTES = 4_096;
/** Longest group name a lookup accepts. */
const MAX_GROUP_CHARS = 256;
/** Bytes of a looked-up value shown in `preview`. */
const PREVIEW_BYTES = 256;
/** Connections the admin port holds at once: it serves a scraper, probes and a person or two. */
const MAX_CONNECTIONS = 64;

/** `GET /lookup`'s answer. */
export interface LookupAnswer {
  readonly found: boolean;
  /** Why it was not found or failed ("" when found). */
  readonly err: string;
  /** The value's length in bytes (0 when not found). */
  readonly bytes: number;
  /** The first bytes of the value as UTF-8 (invalid bytes as U+FFFD), at most 256 bytes; `null` when not found. */
  readonly preview: string | null;
  /** Whether the preview is cut short. */
  readonly truncated: boolean;
}

/** The admin HTTP/1.1 server of one pool. */
export class AdminServer {
  private server: http.Server | undefined;
  private readonly sockets = new Set<Socket>();

  constructor(
    private readonly host: AdminHost,
    private readonly options: ResolvedAdminOptions,
  ) {}

  /** Binds `options.host:options.port`; resolves once listening. */
  async listen(): Promise<void> {
    if (this.server !== undefined) throw new Error("admin listener already started");
    const server = http.createServer(
      {
        // Slow or huge requests get nowhere: headers within 10 s, the whole request within 15 s.
        headersTimeout: 10_000,
        requestTimeout: 15_000,
        maxHeaderSize: 16_384,
      },
      (request, response) => {
        this.handle(request, response).catch((error: unknown) => {
          if (!response.headersSent) send(response, 500, "text/plain", `${errorMessage(error)}\n`);
          else response.destroy();
        });
      },
    );
    server.maxConnections = MAX_CONNECTIONS;
    server.keepAliveTimeout = 5_000;
    server.on("connection", (socket: Socket) => {
      this.sockets.add(socket);
      socket.once("close", () => this.sockets.delete(socket));
    });
    this.server = server;
    try {
      await new Promise<void>((resolve, reject) => {
        server.once("error", reject);
        server.listen(this.options.port, this.options.host, () => {
          server.off("error", reject);
          resolve();
        });
      });
    } catch (error) {
      this.server = undefined;
      throw error;
    }
  }

  /** The bound address, while listening. */
  get address(): { host: string; port: number } | undefined {
    const bound = this.server?.address() as AddressInfo | null | undefined;
    return bound ? { host: bound.address, port: bound.port } : undefined;
  }

  /** Stops listening and closes every connection (a scrape in flight is cut). */
  async close(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    if (server === undefined) return;
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    server.closeIdleConnections();
    for (const socket of this.sockets) socket.destroy();
    await closed;
  }

  private async handle(
    request: http.IncomingMessage,
    response: http.ServerResponse,
  ): Promise<void> {
    response.setHeader("X-Content-Type-Options", "nosniff");
    response.setHeader("Cache-Control", "no-store");
    const target = request.url ?? "/";
    if (Buffer.byteLength(target) > MAX_URL_BYTES) {
      send(response, 414, "text/plain", "request target too long\n");
      return;
    }
    if (!this.hostAllowed(request.headers.host)) {
      // A page on another site reaching loopback through DNS rebinding names its own host.
      send(response, 421, "text/plain", "this admin port answers to its loopback address only\n");
      return;
    }
    let url: URL;
    try {
      url = new URL(target, "http://admin.invalid");
    } catch {
      send(response, 400, "text/plain", "bad request target\n");
      return;
    }
    const route = this.route(url.pathname);
    if (route === undefined) {
      send(response, 404, "text/plain", "not found\n");
      return;
    }
    if (request.method !== "GET" && request.method !== "HEAD") {
      response.setHeader("Allow", "GET, HEAD");
      send(response, 405, "text/plain", "only GET and HEAD\n");
      return;
    }
    // A HEAD gets the GET's status and headers, without the body (Node drops it).
    await route(url, response);
  }

  private route(
    path: string,
  ): ((url: URL, response: http.ServerResponse) => Promise<void> | void) | undefined {
    switch (path) {
      case "/metrics":
        return async (_url, response) => {
          const registry = this.host.metrics();
          send(response, 200, registry.contentType, await registry.metrics());
        };
      case "/livez":
        // Answering at all shows the event loop runs; nothing else is checked.
        return (_url, response) => send(response, 200, "text/plain", "ok\n");
      case "/readyz":
        return (_url, response) =>
          this.host.ready()
            ? send(response, 200, "text/plain", "ready\n")
            : send(response, 503, "text/plain", `not ready: ${this.host.status().phase}\n`);
    }
    if (!this.options.statusPage) return undefined;
    switch (path) {
      case "/":
        return (_url, response) => {
          response.setHeader("Content-Security-Policy", STATUS_PAGE_CSP);
          response.setHeader("X-Frame-Options", "DENY");
          send(response, 200, "text/html; charset=utf-8", STATUS_PAGE);
        };
      case "/status.json":
        return (_url, response) => sendJson(response, 200, this.host.status());
      case "/lookup":
        return (url, response) => this.lookup(url, response);
    }
    return undefined;
  }

  /** `GET /lookup?group=G&key=K`: a Get through this node, bounded by `lookupTimeoutMs`. */
  private async lookup(url: URL, response: http.ServerResponse): Promise<void> {
    const groupName = url.searchParams.get("group");
    const key = url.searchParams.get("key");
    if (groupName === null || groupName === "" || key === null || key === "") {
      sendJson(response, 400, { error: "group and key are required" });
      return;
    }
    if (groupName.length > MAX_GROUP_CHARS) {
      sendJson(response, 400, { error: `group name longer than ${MAX_GROUP_CHARS} characters` });
      return;
    }
    if (Buffer.byteLength(key) > this.host.maxKeyBytes) {
      sendJson(response, 400, { error: `key longer than ${this.host.maxKeyBytes} bytes` });
      return;
    }
    const group = this.host.group(groupName);
    if (group === undefined) {
      sendJson(response, 404, { error: `no such group: ${groupName}` });
      return;
    }
    let answer: LookupAnswer;
    try {
      const view = await group.get(key, {
        signal: AbortSignal.timeout(this.options.lookupTimeoutMs),
      });
      answer = preview(view);
    } catch (error) {
      answer = {
        found: false,
        err: errorMessage(error),
        bytes: 0,
        preview: null,
        truncated: false,
      };
    }
    sendJson(response, 200, answer);
  }

  /**
   * Whether a request naming `host` may be served: any, unless the listener
   * is bound to loopback, where only loopback names are (a browser reaching
   * it from another site's page sends that site's name).
   */
  private hostAllowed(header: string | undefined): boolean {
    const bound = this.options.host;
    if (!isLoopback(bound)) return true;
    if (header === undefined) return false;
    const name = header.startsWith("[")
      ? header.slice(1, header.indexOf("]"))
      : header.split(":")[0]!;
    return isLoopback(name) || name === bound;
  }
}

function isLoopback(host: string): boolean {
  if (host === "localhost") return true;
  if (isIP(host) === 4) return host.startsWith("127.");
  return host === "::1";
}

function preview(view: ByteView): LookupAnswer {
  const bytes = view.length;
  const shown = ByteView.unwrap(view).subarray(0, PREVIEW_BYTES);
  return {
    found: true,
    err: "",
    bytes,
    preview: new TextDecoder("utf-8", { fatal: false }).decode(shown),
    truncated: bytes > PREVIEW_BYTES,
  };
}

function send(
  response: http.ServerResponse,
  status: number,
  contentType: string,
  body: string,
): void {
  response.writeHead(status, {
    "Content-Type": contentType,
    "Content-Length": Buffer.byteLength(body),
  });
  response.end(body);
}

/**
 * JSON with `<`, `>` and `&` escaped as \u00XX: still the same JSON, and no
 * value (a key, an error message) can read as markup if something renders
 * the body as HTML.
 */
function sendJson(response: http.ServerResponse, status: number, value: unknown): void {
  const body = JSON.stringify(value).replace(
    /[<>&\u2028\u2029]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`,
  );
  send(response, status, "application/json; charset=utf-8", body);
}
