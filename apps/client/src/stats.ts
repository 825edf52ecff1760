// `distcache stats`: reads a node's /status.json from its admin port and
// prints it as tables (members with breaker and call latency; groups with hit
// rate, bytes against budget, items and loads). The JSON is network input:
// its size is bounded and every field read is checked.

/** What `stats` reads of `/status.json` (the library's StatusReport, as far as used). */
export interface NodeStatus {
  readonly node: string;
  readonly phase: string;
  readonly draining: boolean;
  readonly version: string;
  readonly members: readonly {
    readonly address: string;
    readonly self: boolean;
    readonly breaker: string | null;
    readonly calls: number;
    readonly failedCalls: number;
    readonly meanMs: number | null;
    readonly p99Ms: number | null;
  }[];
  readonly groups: readonly {
    readonly name: string;
    readonly gets: number;
    readonly hitRate: number | null;
    readonly bytes: number;
    readonly limitBytes: number;
    readonly items: number;
    readonly loads: number;
    readonly localLoads: number;
    readonly localLoadErrors: number;
    readonly errors: number;
  }[];
}

/** Largest /status.json read: thousands of members and groups fit. */
const MAX_STATUS_BYTES = 4 << 20;

/** A failure of `stats`, said as is on stderr (exit 2). */
export class StatsError extends Error {}

/** GETs `<base>/status.json` within `timeoutMs`; throws {@link StatsError} saying what went wrong. */
export async function fetchStatus(base: URL, timeoutMs: number): Promise<NodeStatus> {
  const url = new URL("/status.json", base);
  let response: Response;
  try {
    response = await fetch(url, { signal: AbortSignal.timeout(timeoutMs), redirect: "error" });
  } catch (error) {
    const cause = (error as { cause?: { code?: string; message?: string } }).cause;
    const why =
      (error as Error).name === "TimeoutError"
        ? `no answer within ${timeoutMs} ms`
        : (cause?.code ?? cause?.message ?? (error as Error).message);
    throw new StatsError(`cannot read ${url.href}: ${why} (is --addr the node's admin port?)`);
  }
  if (response.status !== 200) {
    await response.body?.cancel();
    throw new StatsError(
      `${url.href} answered HTTP ${response.status} (is --addr the node's admin port, with the status page on?)`,
    );
  }
  const declared = Number(response.headers.get("content-length") ?? 0);
  if (declared > MAX_STATUS_BYTES) {
    await response.body?.cancel();
    throw new StatsError(`${url.href}: answer over ${MAX_STATUS_BYTES} bytes`);
  }
  const text = await readBounded(response, url);
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new StatsError(`${url.href} did not answer JSON`);
  }
  return checkStatus(json, url.href);
}

async function readBounded(response: Response, url: URL): Promise<string> {
  const chunks: Uint8Array[] = [];
  let length = 0;
  for await (const chunk of response.body ?? []) {
    length += chunk.length;
    if (length > MAX_STATUS_BYTES)
      throw new StatsError(`${url.href}: answer over ${MAX_STATUS_BYTES} bytes`);
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString("utf8");
}

type Check = (value: unknown) => boolean;
const isString: Check = (v) => typeof v === "string";
const isNumber: Check = (v) => typeof v === "number" && Number.isFinite(v);
const orNull =
  (check: Check): Check =>
  (v) =>
    v === null || check(v);

function checkFields(value: unknown, fields: Record<string, Check>, where: string): void {
  if (typeof value !== "object" || value === null)
    throw new StatsError(`${where} is not an object`);
  for (const [name, check] of Object.entries(fields)) {
    if (!check((value as Record<string, unknown>)[name])) {
      throw new StatsError(`${where}.${name} is missing or of the wrong type`);
    }
  }
}

function checkStatus(json: unknown, from: string): NodeStatus {
  const where = `${from}: status`;
  checkFields(
    json,
    {
      node: isString,
      phase: isString,
      draining: (v) => typeof v === "boolean",
      version: isString,
      members: Array.isArray,
      groups: Array.isArray,
    },
    where,
  );
  const status = json as NodeStatus;
  status.members.forEach((member, i) => {
    checkFields(
      member,
      {
        address: isString,
        self: (v) => typeof v === "boolean",
        breaker: orNull(isString),
        calls: isNumber,
        failedCalls: isNumber,
        meanMs: orNull(isNumber),
        p99Ms: orNull(isNumber),
      },
      `${where}.members[${i}]`,
    );
  });
  status.groups.forEach((group, i) => {
    checkFields(
      group,
      {
        name: isString,
        gets: isNumber,
        hitRate: orNull(isNumber),
        bytes: isNumber,
        limitBytes: isNumber,
        items: isNumber,
        loads: isNumber,
        localLoads: isNumber,
        localLoadErrors: isNumber,
        errors: isNumber,
      },
      `${where}.groups[${i}]`,
    );
  });
  return status;
}

/** `1536` → `1.5 KiB`. */
export function formatBytes(bytes: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${value} B` : `${value.toFixed(1)} ${units[unit]}`;
}

/** Columns padded to their widest cell; numbers right-aligned. */
function table(
  header: readonly string[],
  rows: readonly (readonly string[])[],
  right: ReadonlySet<number>,
): string[] {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: readonly string[]) =>
    cells
      .map((cell, i) => (right.has(i) ? cell.padStart(widths[i]!) : cell.padEnd(widths[i]!)))
      .join("  ")
      .trimEnd();
  return [line(header), ...rows.map(line)];
}

const ms = (value: number | null) => (value === null ? "-" : value.toFixed(2));

/** The status as text: a heading line, the members table, the groups table. */
export function formatStatus(status: NodeStatus): string {
  // Text from the network is printed to a terminal: no control characters.
  const clean = (text: string) =>
    Array.from(text, (c) => {
      const code = c.codePointAt(0)!;
      return code < 0x20 || (code >= 0x7f && code <= 0x9f) ? "?" : c;
    }).join("");
  const lines = [
    `node ${clean(status.node)} · ${clean(status.phase)}${status.draining ? " (draining)" : ""} · version ${clean(status.version)}`,
    "",
    ...table(
      ["MEMBER", "BREAKER", "CALLS", "FAILED", "MEAN MS", "P99 MS"],
      status.members.map((m) => [
        clean(m.address) + (m.self ? " (self)" : ""),
        m.self ? "-" : clean(m.breaker ?? "-"),
        String(m.calls),
        String(m.failedCalls),
        ms(m.meanMs),
        ms(m.p99Ms),
      ]),
      new Set([2, 3, 4, 5]),
    ),
    "",
    ...table(
      ["GROUP", "GETS", "HIT RATE", "BYTES / BUDGET", "ITEMS", "LOADS", "GETTER CALLS", "ERRORS"],
      status.groups.map((g) => [
        clean(g.name),
        String(g.gets),
        g.hitRate === null ? "-" : `${(g.hitRate * 100).toFixed(1)}%`,
        `${formatBytes(g.bytes)} / ${g.limitBytes === 0 ? "unbounded" : formatBytes(g.limitBytes)}`,
        String(g.items),
        String(g.loads),
        String(g.localLoads),
        String(g.errors),
      ]),
      new Set([1, 2, 4, 5, 6, 7]),
    ),
  ];
  return `${lines.join("\n")}\n`;
}
