// Reading a config file (YAML, or JSON, which YAML 1.2 reads too): every
// syntax and schema error is reported as FILE:LINE:COL of the offending value,
// all at once, so a bad file is fixed in one pass.
import { readFileSync } from "node:fs";
import { isMap, isPair, isScalar, LineCounter, type Node, parseDocument } from "yaml";
import type { z } from "zod";
import { type ConfigFile, configFileSchema } from "./schema.js";

/** Thrown for a config that cannot be used; `problems` are the lines to print. */
export class ConfigError extends Error {
  constructor(readonly problems: readonly string[]) {
    super(problems.join("\n"));
    this.name = "ConfigError";
  }
}

/** A config file read and validated, and where each of its values is. */
export interface LoadedConfig {
  readonly path: string;
  readonly config: ConfigFile;
  /** `FILE:LINE:COL` of the value at `path` (or its nearest parent). */
  where(path: readonly PropertyKey[]): string;
}

/** Largest config file read: a config is hand-written; anything bigger is a mistake. */
const MAX_CONFIG_BYTES = 1 << 20;

/** Reads and validates `path`; throws {@link ConfigError} listing every problem. */
export function loadConfigFile(path: string): LoadedConfig {
  let text: string;
  try {
    const bytes = readFileSync(path);
    if (bytes.length > MAX_CONFIG_BYTES) throw new Error(`over ${MAX_CONFIG_BYTES} bytes`);
    text = bytes.toString("utf8");
  } catch (error) {
    throw new ConfigError([`${path}: cannot read: ${(error as Error).message}`]);
  }
  return parseConfigText(text, path);
}

/** Validates config `text` as if read from `path` (tests, and {@link loadConfigFile}). */
export function parseConfigText(text: string, path: string): LoadedConfig {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true });
  const at = (offset: number) => {
    const { line, col } = lineCounter.linePos(offset);
    return `${path}:${line}:${col}`;
  };
  if (doc.errors.length > 0) {
    throw new ConfigError(doc.errors.map((e) => `${at(e.pos[0])}: ${firstLine(e.message)}`));
  }
  const where = (issuePath: readonly PropertyKey[]) => at(rangeOf(doc.contents, issuePath));
  const result = configFileSchema.safeParse(doc.toJS() ?? {});
  if (!result.success) {
    throw new ConfigError(
      result.error.issues.flatMap((issue) => describe(issue, doc.contents, at)),
    );
  }
  return { path, config: result.data, where };
}

function firstLine(message: string): string {
  return message.split("\n")[0]!;
}

/** The source offset of the node at `path`, or of its nearest ancestor that exists. */
function rangeOf(root: unknown, path: readonly PropertyKey[]): number {
  let node = root as Node | null | undefined;
  let offset = node?.range?.[0] ?? 0;
  for (const key of path) {
    const child = childOf(node, key);
    if (child === undefined) break;
    node = child.value;
    offset = child.offset;
  }
  return offset;
}

/** The child of a map or sequence and where it starts (a key's value, or the key when the value is empty). */
function childOf(
  node: unknown,
  key: PropertyKey,
): { value: Node | null; offset: number } | undefined {
  if (node === null || node === undefined || typeof node !== "object" || !("items" in node)) {
    return undefined;
  }
  const items = (node as { items: unknown[] }).items;
  if (isMap(node)) {
    const pair = items.find(
      (p) => isPair(p) && isScalar(p.key) && String(p.key.value) === String(key),
    );
    if (!isPair(pair)) return undefined;
    const value = pair.value as Node | null;
    const keyNode = pair.key as Node;
    return { value, offset: value?.range?.[0] ?? keyNode.range?.[0] ?? 0 };
  }
  const item = typeof key === "number" ? (items[key] as Node | undefined) : undefined;
  return item === undefined ? undefined : { value: item, offset: item.range?.[0] ?? 0 };
}

/** One line per problem: `FILE:LINE:COL: dotted.path: message`. */
function describe(
  issue: z.core.$ZodIssue,
  root: unknown,
  at: (offset: number) => string,
): string[] {
  const dotted = issue.path
    .map((p) => (typeof p === "number" ? `[${p}]` : `.${String(p)}`))
    .join("");
  const label = dotted === "" ? "(top level)" : dotted.replace(/^\./, "");
  if (issue.code === "unrecognized_keys") {
    // Point at each unknown key itself, not at the object holding it.
    return issue.keys.map((key) => {
      const parent = nodeAt(root, issue.path);
      const pair = isMap(parent)
        ? parent.items.find((p) => isScalar(p.key) && String(p.key.value) === key)
        : undefined;
      const offset = (pair?.key as Node | undefined)?.range?.[0] ?? rangeOf(root, issue.path);
      return `${at(offset)}: ${dotted === "" ? "" : `${label}: `}unknown key "${key}"`;
    });
  }
  return [`${at(rangeOf(root, issue.path))}: ${label}: ${issue.message}`];
}

function nodeAt(root: unknown, path: readonly PropertyKey[]): unknown {
  let node = root;
  for (const key of path) {
    const child = childOf(node, key);
    if (child === undefined) return undefined;
    node = child.value;
  }
  return node;
}
