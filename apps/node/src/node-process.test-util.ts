// `distcache-node` child processes for this app's tests, on the shared helper
// in scripts/lib: started on a port, ready on their serving line, killed after each test.
import type { ChildProcess } from "node:child_process";
import { afterEach } from "vitest";
import {
  loadedKeyOf,
  READY_TEXT,
  startNode as startNodeProcess,
} from "../../../scripts/lib/node-process.mjs";

/** A `distcache-node` child process and what it printed. */
export interface NodeProcess {
  address: string;
  child: ChildProcess;
  /** Every output line, stdout and stderr as they came. */
  lines: string[];
  /** The exit code (`null` if a signal ended it). */
  exited: Promise<number | null>;
}

const started: NodeProcess[] = [];

/**
 * Starts `distcache-node` on `port` (with an IPC channel if `ipc`, in `env`
 * when given); resolves once it serves. Killed after each test.
 */
export async function startNode(
  port: number,
  peers: string[],
  extraArgs: string[] = [],
  ipc = false,
  env?: NodeJS.ProcessEnv,
): Promise<NodeProcess> {
  const address = `127.0.0.1:${port}`;
  const state = startNodeProcess(
    ["--port", String(port), "--peers", peers.join(","), ...extraArgs],
    {
      label: `node ${address}`,
      ipc,
      // Tests read every line (loads, the last line after exit).
      keepLines: Number.POSITIVE_INFINITY,
      // The test's own timeout bounds the wait.
      timeoutMs: 0,
      ...(env === undefined ? {} : { env }),
    },
  );
  const node: NodeProcess = {
    address,
    child: state.child,
    lines: state.lines,
    exited: state.exited.then(({ code }) => code),
  };
  started.push(node);
  await state.ready;
  return node;
}

/** Keys `node` loaded from its source, in order. */
export function loadedKeys(node: NodeProcess): string[] {
  return node.lines.map(loadedKeyOf).filter((key): key is string => key !== undefined);
}

/** The admin listener's `host:port` from the node's (JSON) ready line; `undefined` if it has none. */
export function adminOf(node: NodeProcess): string | undefined {
  const ready = node.lines.find((line) => line.startsWith("{") && line.includes(READY_TEXT));
  return ready === undefined ? undefined : (JSON.parse(ready) as { admin?: string }).admin;
}

afterEach(async () => {
  for (const node of started.splice(0)) {
    if (node.child.exitCode === null && node.child.signalCode === null) {
      // SIGCONT first: a test may have left the node stopped with SIGSTOP.
      node.child.kill("SIGCONT");
      node.child.kill("SIGKILL");
    }
    await node.exited;
  }
});
