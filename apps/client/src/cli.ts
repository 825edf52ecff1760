// The `distcache` command line: its flags, commands and usage text, and the
// exit code and stderr message of every outcome (main.ts runs it; tests call
// `run` with their own output).
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { type Client, createClient, type Interceptor, type Transport } from "@connectrpc/connect";
import {
  createConnectTransport,
  createGrpcTransport,
  createGrpcWebTransport,
} from "@connectrpc/connect-node";
import { CacheService } from "@distcache/transport-connect";
import { EXIT, type ExitCode, judgeGet, judgeWrite, type Verdict } from "./answers.js";
import { fetchStatus, formatStatus, StatsError } from "./stats.js";
import { type CallTarget, describeCallError } from "./transport-errors.js";

export const USAGE = `Usage: distcache [--addr ADDR] [--protocol NAME] [--timeout MS] COMMAND

Commands:
  get GROUP KEY            print the value; exit 1 if the key is not found
  set GROUP KEY VALUE      write VALUE (as UTF-8) through the key's owner
  delete GROUP KEY         remove the key from every node
  demo                     the reference's client scenario: Get Tom, Jack, Sam;
                           Delete Tom; Get Tom (group "scores")
  stats                    the node's members (breaker, call latency) and groups
                           (hit rate, bytes/budget, items, loads) from its
                           admin port: --addr HOST:ADMINPORT (/status.json)

Options:
  --addr ADDR              any node: HOST:PORT, [V6]:PORT, http://HOST:PORT or
                           https://HOST:PORT (default localhost:8001); http is
                           plain h2c, https a node started with --tls-cert
  --protocol NAME          grpc (default), grpcweb (or grpc-web) or connect,
                           all over HTTP/2
  --timeout MS             deadline of each call (default 2000)
  --tls-ca FILE            trust this CA (PEM) for https:// (implies https)
  --token TOKEN            send authorization: Bearer TOKEN, for a node that
                           wants client tokens; default: $DISTCACHE_TOKEN
  -h, --help               this text

Exit codes: 0 found / done; 1 not found; 2 error (source error, unknown group,
bad key, a set value not cached, transport error, bad usage), said on stderr.`;

/** Where the CLI writes: the process's streams in main.ts, buffers in tests. */
export interface CliOutput {
  /** The value of a get (raw bytes) and the demo's lines. */
  stdout(data: string | Uint8Array): void;
  /** One message line (no trailing newline). */
  stderr(line: string): void;
}

/** `--protocol` values: buf curl's spellings, and `grpc-web` as this CLI always took it. */
const PROTOCOLS = {
  grpc: "grpc",
  grpcweb: "grpc-web",
  "grpc-web": "grpc-web",
  connect: "connect",
} as const;
type Protocol = (typeof PROTOCOLS)[keyof typeof PROTOCOLS];

/** A mistake in the command line: exit 2 with the usage. */
class UsageError extends Error {}

function protocolOf(name: string): Protocol {
  const protocol = (PROTOCOLS as Record<string, Protocol>)[name];
  if (protocol === undefined) {
    throw new UsageError(
      `--protocol must be one of grpc, grpcweb (or grpc-web), connect; got "${name}"`,
    );
  }
  return protocol;
}

/** The base URL of `--addr`: `HOST:PORT` means `http://HOST:PORT`. */
export function addressUrl(addr: string): URL {
  const text = /^[a-z][a-z0-9+.-]*:\/\//i.test(addr) ? addr : `http://${addr}`;
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new UsageError(`--addr must be HOST:PORT or http(s)://HOST:PORT; got "${addr}"`);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new UsageError(
      `--addr takes http:// or https:// (a node serves h2c: http); got "${addr}"`,
    );
  }
  if (url.hostname === "") throw new UsageError(`--addr needs a host; got "${addr}"`);
  return url;
}

/** How calls are made beyond the URL: a CA to trust, a bearer token. */
interface CallSecurity {
  readonly ca: Buffer | undefined;
  readonly token: string | undefined;
}

function transportFor(protocol: Protocol, url: URL, security: CallSecurity): Transport {
  const baseUrl = url.href.replace(/\/$/, "");
  const { ca, token } = security;
  const common = {
    baseUrl,
    ...(ca === undefined ? {} : { nodeOptions: { ca } }),
    interceptors:
      token === undefined
        ? []
        : [
            (next: Parameters<Interceptor>[0]) =>
              (request: Parameters<ReturnType<Interceptor>>[0]) => {
                request.header.set("authorization", `Bearer ${token}`);
                return next(request);
              },
          ],
  };
  switch (protocol) {
    case "grpc":
      return createGrpcTransport(common);
    case "grpc-web":
      return createGrpcWebTransport({ ...common, httpVersion: "2" });
    case "connect":
      return createConnectTransport({ ...common, httpVersion: "2" });
  }
}

/** `--tls-ca` and `--token` (or `DISTCACHE_TOKEN`), read. */
function securityOf(values: {
  "tls-ca"?: string | undefined;
  token?: string | undefined;
}): CallSecurity {
  let ca: Buffer | undefined;
  const caFile = values["tls-ca"];
  if (caFile !== undefined) {
    try {
      ca = readFileSync(caFile);
    } catch (error) {
      throw new UsageError(
        `--tls-ca ${caFile}: ${error instanceof Error ? error.message : String(error)}`,
      );
    }
  }
  const token = values.token ?? process.env.DISTCACHE_TOKEN;
  if (token !== undefined && !/^\S{1,4096}$/.test(token)) {
    throw new UsageError(
      "--token (or DISTCACHE_TOKEN) must be one word of at most 4096 characters",
    );
  }
  return { ca, token: token === "" ? undefined : token };
}

function timeoutOf(text: string): number {
  const timeoutMs = Number(text);
  if (!/^\d+$/.test(text) || !Number.isSafeInteger(timeoutMs) || timeoutMs <= 0) {
    throw new UsageError(`--timeout must be a positive integer (milliseconds); got "${text}"`);
  }
  return timeoutMs;
}

/** Runs one command line (without `node` and the script); resolves to the exit code. */
export async function run(argv: readonly string[], out: CliOutput): Promise<ExitCode> {
  try {
    return await runCommand(argv, out);
  } catch (error) {
    if (error instanceof UsageError) {
      out.stderr(`distcache: ${error.message}\n\n${USAGE}`);
      return EXIT.error;
    }
    out.stderr(`distcache: ${error instanceof Error ? error.message : String(error)}`);
    return EXIT.error;
  }
}

async function runCommand(argv: readonly string[], out: CliOutput): Promise<ExitCode> {
  let parsed: ReturnType<typeof parse>;
  try {
    parsed = parse(argv);
  } catch (error) {
    throw new UsageError(error instanceof Error ? error.message : String(error));
  }
  const { values, positionals } = parsed;
  if (values.help) {
    out.stdout(`${USAGE}\n`);
    return EXIT.ok;
  }
  if (positionals.length === 0) throw new UsageError("a command is required");
  const security = securityOf(values);
  const url = addressUrl(values.addr);
  // A CA to trust only makes sense over TLS: HOST:PORT then means https.
  if (security.ca !== undefined && url.protocol === "http:") {
    if (/^https?:\/\//i.test(values.addr)) {
      throw new UsageError("--tls-ca goes with https:// (or HOST:PORT), not http://");
    }
    url.protocol = "https:";
  }
  const target: CallTarget = { url, timeoutMs: timeoutOf(values.timeout) };
  const protocol = protocolOf(values.protocol);
  const [command, group = "", key = "", value = ""] = positionals;
  const arity = { get: 3, set: 4, delete: 3, demo: 1, stats: 1 }[command ?? ""];
  if (arity === undefined) throw new UsageError(`unknown command "${command}"`);
  if (positionals.length !== arity) {
    throw new UsageError(`${command} takes ${arity - 1} argument${arity === 2 ? "" : "s"}`);
  }
  if (command === "stats") {
    try {
      out.stdout(formatStatus(await fetchStatus(target.url, target.timeoutMs)));
      return EXIT.ok;
    } catch (error) {
      if (!(error instanceof StatsError)) throw error;
      out.stderr(`distcache: ${error.message}`);
      return EXIT.error;
    }
  }
  if (command !== "demo") {
    if (group === "") throw new UsageError("GROUP must not be empty");
    if (key === "") {
      out.stderr("distcache: bad key: the key is empty");
      return EXIT.error;
    }
  }
  const client = createClient(CacheService, transportFor(protocol, target.url, security));
  const call = { timeoutMs: target.timeoutMs };
  try {
    switch (command) {
      case "get": {
        const answer = await client.get({ group, key }, call);
        const verdict = judgeGet(group, key, answer);
        if (verdict.exit === EXIT.ok) {
          out.stdout(answer.data);
          out.stdout("\n");
        }
        return report(verdict, out);
      }
      case "set": {
        const data = new TextEncoder().encode(value);
        return report(judgeWrite("set", group, await client.set({ group, key, data }, call)), out);
      }
      case "delete":
        return report(judgeWrite("delete", group, await client.delete({ group, key }, call)), out);
      default:
        return await demo(client, target, out);
    }
  } catch (error) {
    out.stderr(`distcache: ${describeCallError(error, target)}`);
    return EXIT.error;
  }
}

function parse(argv: readonly string[]) {
  return parseArgs({
    args: [...argv],
    options: {
      addr: { type: "string", default: "localhost:8001" },
      protocol: { type: "string", default: "grpc" },
      timeout: { type: "string", default: "2000" },
      "tls-ca": { type: "string" },
      token: { type: "string" },
      help: { type: "boolean", short: "h", default: false },
    },
    allowPositionals: true,
    strict: true,
  });
}

function report(verdict: Verdict, out: CliOutput): ExitCode {
  for (const warning of verdict.warnings ?? []) out.stderr(`distcache: ${warning}`);
  if (verdict.message !== undefined) out.stderr(`distcache: ${verdict.message}`);
  return verdict.exit;
}

/**
 * The reference's client scenario, printing its lines. Exit: 0 when every
 * step went as expected, 1 when a Get was not found, 2 on any error.
 */
async function demo(
  client: Client<typeof CacheService>,
  target: CallTarget,
  out: CliOutput,
): Promise<ExitCode> {
  const group = "scores";
  const call = { timeoutMs: target.timeoutMs };
  const line = (text: string) => out.stdout(`${text}\n`);
  let status: ExitCode = EXIT.ok;
  const worst = (exit: ExitCode) => {
    if (exit > status) status = exit;
  };
  const failed = (what: string, error: unknown) => {
    line(`❌ ${what} failed: ${describeCallError(error, target)}`);
    worst(EXIT.error);
  };
  const get = async (key: string, found: (text: string) => string) => {
    try {
      const answer = await client.get({ group, key }, call);
      const verdict = judgeGet(group, key, answer);
      worst(verdict.exit);
      if (verdict.exit === EXIT.ok) line(found(new TextDecoder().decode(answer.data)));
      else line(`❌ ${key}: ${verdict.message}`);
    } catch (error) {
      failed(`Get(${key})`, error);
    }
  };
  line("=== Test Get ===");
  for (const key of ["Tom", "Jack", "Sam"]) await get(key, (text) => `✅ ${key}: ${text}`);
  line("\n=== Test Delete ===");
  try {
    const verdict = judgeWrite("delete", group, await client.delete({ group, key: "Tom" }, call));
    worst(verdict.exit);
    if (verdict.exit === EXIT.ok) line("✅ Deleted Tom");
    else line(`❌ Delete: ${verdict.message}`);
    for (const warning of verdict.warnings ?? []) out.stderr(`distcache: ${warning}`);
  } catch (error) {
    failed("Delete", error);
  }
  line("\n=== Verify reload ===");
  await get("Tom", (text) => `✅ Tom reloaded: ${text} (from source)`);
  return status;
}
