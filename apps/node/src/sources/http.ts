// The HTTP data source: a load is GET <base>/<group>/<key>.
import * as http from "node:http";
import { urlToHttpOptions } from "node:url";
import { NotFoundError } from "@distcache/core";

/** Options for {@link HttpSource}. */
export interface HttpSourceOptions {
  /** Largest response body accepted, in bytes. Default 16 MiB. */
  maxBodyBytes?: number;
  /** Sockets open to the source at most at once; further loads queue. Default `64`. */
  maxSockets?: number;
  /**
   * Milliseconds an idle keep-alive socket is kept. Default `4_000`: below
   * Node's HTTP server default keep-alive timeout (5 s), so the client, not
   * the server, closes idle sockets and a request rarely meets a closing one.
   */
  idleSocketMs?: number;
}

/**
 * A data source reached over HTTP/1.1: a load of `key` in `group` is
 * `GET <base>/<group>/<key>` (both URL-encoded). `200` is the value (the body's
 * bytes), `404` is {@link NotFoundError}, anything else is an error. One
 * keep-alive agent serves every load.
 */
export class HttpSource {
  /** The base URL. */
  readonly base: URL;
  /** The base URL's path without its trailing slashes ("" for the root). */
  private readonly prefix: string;
  /** The request options every load shares (host, port, credentials, agent), read from `base` once. */
  private readonly target: http.RequestOptions;
  private readonly agent: http.Agent;
  private readonly maxBodyBytes: number;

  /** Throws a `TypeError` for a URL that is not `http:` or has a fragment. */
  constructor(baseUrl: string, options: HttpSourceOptions = {}) {
    const base = new URL(baseUrl);
    if (base.protocol !== "http:") {
      throw new TypeError(`source URL must be http://, got "${baseUrl}"`);
    }
    if (base.hash !== "") throw new TypeError(`source URL must not have a #fragment: "${baseUrl}"`);
    this.base = base;
    this.prefix = base.pathname.replace(/\/+$/, "");
    this.maxBodyBytes = options.maxBodyBytes ?? 16 << 20;
    this.agent = new http.Agent({
      keepAlive: true,
      maxSockets: options.maxSockets ?? 64,
      timeout: options.idleSocketMs ?? 4_000,
    });
    const { protocol, hostname, port, auth } = urlToHttpOptions(base);
    this.target = { protocol, hostname, port, auth, agent: this.agent };
  }

  /** The URL a load of `key` in `group` requests. */
  urlOf(group: string, key: string): URL {
    const url = new URL(this.base);
    url.pathname = `${this.prefix}/${encodeURIComponent(group)}/${encodeURIComponent(key)}`;
    return url;
  }

  /**
   * The request path (path and query) of {@link urlOf}, without making a
   * URL per load (a URL, its path setter and the conversion to request
   * options were a fifth of this source's CPU per load). The same string:
   * `encodeURIComponent` leaves only characters a path keeps as they are, so
   * the path setter changes nothing, except for a "." or ".." segment, which
   * it resolves; those go through {@link urlOf}.
   */
  pathOf(group: string, key: string): string {
    const g = encodeURIComponent(group);
    const k = encodeURIComponent(key);
    if (isDotSegment(g) || isDotSegment(k)) {
      const url = this.urlOf(group, key);
      return `${url.pathname}${url.search}`;
    }
    return `${this.prefix}/${g}/${k}${this.base.search}`;
  }

  /**
   * Loads `key` of `group`. Rejects with {@link NotFoundError} on `404`, with
   * an `AbortError` (the request is cut) when `signal` aborts, and with an
   * `Error` naming the status for any other status.
   */
  async load(group: string, key: string, signal?: AbortSignal): Promise<Uint8Array> {
    const path = this.pathOf(group, key);
    try {
      return await this.request(path, key, signal);
    } catch (error) {
      // A kept-alive socket the server closed just as we reused it (its idle
      // timeout raced our reuse). A GET is idempotent: retry once on a fresh socket.
      if (error instanceof ReusedSocketReset && signal?.aborted !== true) {
        return await this.request(path, key, signal);
      }
      throw error instanceof ReusedSocketReset ? error.cause : error;
    }
  }

  /** Closes every socket; loads in flight fail. */
  close(): void {
    this.agent.destroy();
  }

  private request(path: string, key: string, signal?: AbortSignal): Promise<Uint8Array> {
    // The error texts name the path without its query, as `URL.pathname` did.
    const pathname = this.base.search === "" ? path : path.slice(0, -this.base.search.length);
    return new Promise<Uint8Array>((resolve, reject) => {
      const request = http.get({ ...this.target, path, signal }, (response) => {
        const status = response.statusCode ?? 0;
        if (status !== 200) {
          response.resume();
          if (status === 404) reject(new NotFoundError(key));
          else reject(new Error(`source answered HTTP ${status} for ${pathname}`));
          return;
        }
        const declared = Number(response.headers["content-length"] ?? 0);
        if (declared > this.maxBodyBytes) {
          response.destroy();
          reject(new Error(`source value for ${pathname} is over ${this.maxBodyBytes} bytes`));
          return;
        }
        readBody(response, this.maxBodyBytes, pathname).then(resolve, reject);
      });
      request.once("error", (error: NodeJS.ErrnoException) => {
        reject(
          error.code === "ECONNRESET" && request.reusedSocket
            ? new ReusedSocketReset(error)
            : error,
        );
      });
    });
  }
}

async function readBody(
  response: http.IncomingMessage,
  maxBytes: number,
  path: string,
): Promise<Uint8Array> {
  const chunks: Buffer[] = [];
  let length = 0;
  // The iterator throws when the response is cut short or the request aborted.
  for await (const chunk of response as AsyncIterable<Buffer>) {
    length += chunk.length;
    if (length > maxBytes) {
      response.destroy();
      throw new Error(`source value for ${path} is over ${maxBytes} bytes`);
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks, length);
}

/** A path segment the URL path setter resolves ("." or ".."; `encodeURIComponent` never writes "%2e"). */
function isDotSegment(segment: string): boolean {
  return segment === "." || segment === "..";
}

class ReusedSocketReset extends Error {
  constructor(override readonly cause: Error) {
    super(cause.message);
  }
}
