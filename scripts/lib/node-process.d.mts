// Types of node-process.mjs, written by hand so that TypeScript tests can
// import the plain-JS helper that scripts and benches share.
import type { ChildProcess } from "node:child_process";

/** The built `distcache-node` entry point (`apps/node/dist/main.js`), absolute. */
export const NODE_MAIN: string;

/** The text of the line a node prints once it serves. */
export const READY_TEXT: string;

/** The key of a node's "loaded from source: KEY" line (JSON or pretty); `undefined` for other lines. */
export function loadedKeyOf(line: string): string | undefined;

/** How a child ended: its exit code, or the signal that ended it. */
export interface ChildExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** A child started by {@link startChild}, and what it printed. */
export interface ChildState {
  readonly label: string;
  readonly child: ChildProcess;
  /** The last `keepLines` output lines, stdout and stderr interleaved as they came. */
  readonly lines: string[];
  /** Resolves on the ready line; rejects if the child exits first or on timeout. */
  readonly ready: Promise<void>;
  /** Resolves when the child has exited. */
  readonly exited: Promise<ChildExit>;
}

export interface ChildOptions {
  /** Called with every output line, after it is kept in `lines`. */
  onLine?: (line: string, state: ChildState) => void;
  /** Milliseconds to wait for the ready line; `0`: no limit. Default 15,000. */
  timeoutMs?: number;
  /** Output lines kept in `lines` (the last ones); `0`: none. Default 200. */
  keepLines?: number;
  /** Opens an IPC channel (`child.send`, `"message"` events). Default `false`. */
  ipc?: boolean;
  /** The child's environment. Default: this process's. */
  env?: NodeJS.ProcessEnv;
  /** The `node` binary to run (another Node line's, say). Default: this process's. */
  node?: string;
}

export interface NodeOptions extends ChildOptions {
  /** Default `distcache-node`; names the child in error messages. */
  label?: string;
  /** Flags for `node` itself, before the entry point (`--max-old-space-size=128`). */
  nodeFlags?: readonly string[];
}

/** Sends `signal` (default SIGKILL) by pid to every tracked child still running. */
export function killTracked(signal?: NodeJS.Signals): void;

/** Kills `child` by pid if this process exits while it still runs; returns `child`. */
export function track<C extends ChildProcess>(child: C): C;

/** Starts `node ARGS`, tracked; ready once an output line contains `readyText`. */
export function startChild(
  label: string,
  args: readonly string[],
  readyText: string,
  options?: ChildOptions,
): ChildState;

/** Starts `distcache-node ARGS` (`node NODE_FLAGS NODE_MAIN ARGS`, admin on a free port unless ARGS say); ready on its serving line. */
export function startNode(args: readonly string[], options?: NodeOptions): ChildState;

/** The child's last `count` (default 10) output lines, indented, for error messages. */
export function tail(state: ChildState, count?: number): string;

/** SIGTERM by pid, SIGKILL after `graceMs` (default 3,000; `Infinity`: never); resolves on exit. */
export function stopChild(state: ChildState, graceMs?: number): Promise<void>;
