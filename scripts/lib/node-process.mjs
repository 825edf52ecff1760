// Child processes that run a DistCache node (or any `node` script) for scripts,
// benches and tests: started with `node ARGS`, ready once a line says so,
// stopped by pid, and killed by pid if the parent exits while they still run.
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";

/** The built `distcache-node` entry point (`apps/node/dist/main.js`). */
export const NODE_MAIN = fileURLToPath(new URL("../../apps/node/dist/main.js", import.meta.url));

/** A node logs this once it serves: `serving group "NAME" (...) as HOST:PORT, members: ...`. */
export const READY_TEXT = "serving group";

const LOADED = "loaded from source: ";

/**
 * The key of a node's "loaded from source: KEY" log line (one per getter
 * call), JSON (`{"msg":"loaded from source: KEY","key":"KEY",...}`) or pretty
 * (`[12:00:00.000] INFO: loaded from source: KEY {"group":"scores"}`);
 * `undefined` for any other line.
 */
export function loadedKeyOf(line) {
  const at = line.indexOf(LOADED);
  if (at < 0) return undefined;
  if (line.startsWith("{")) {
    try {
      const entry = JSON.parse(line);
      return typeof entry.msg === "string" && entry.msg.startsWith(LOADED) ? entry.key : undefined;
    } catch {
      return undefined;
    }
  }
  // Pretty: the message, then the line's other fields (the group) as one JSON object.
  return line.slice(at + LOADED.length).replace(/ \{"group":.*\}$/, "");
}

const live = new Set();
let exitHookInstalled = false;

/** Sends `signal` (default SIGKILL) by pid to every tracked child still running. */
export function killTracked(signal = "SIGKILL") {
  for (const child of live) {
    try {
      process.kill(child.pid, signal);
    } catch {
      // already gone
    }
  }
}

/** Kills `child` by pid if this process exits while it still runs; returns `child`. */
export function track(child) {
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    // Last resort if the parent dies between start and stop: no orphans.
    process.on("exit", () => killTracked());
  }
  live.add(child);
  child.once("exit", () => live.delete(child));
  return child;
}

/**
 * Starts `node ARGS` (tracked, see {@link track}); `ready` resolves once an
 * output line contains `readyText` and rejects if the child exits first or
 * `timeoutMs` passes (`0`: no timeout). stdout and stderr are read as lines:
 * each goes to `onLine(line, state)`, and the last `keepLines` stay in `lines`.
 */
export function startChild(
  label,
  args,
  readyText,
  {
    onLine,
    timeoutMs = 15_000,
    keepLines = 200,
    ipc = false,
    env = process.env,
    node = process.execPath,
  } = {},
) {
  const child = track(
    spawn(node, args, {
      stdio: ["ignore", "pipe", "pipe", ...(ipc ? ["ipc"] : [])],
      env,
    }),
  );
  const state = { label, child, lines: [] };
  state.exited = new Promise((resolve) =>
    child.once("exit", (code, signal) => resolve({ code, signal })),
  );
  state.ready = new Promise((resolve, reject) => {
    const timer =
      timeoutMs > 0
        ? setTimeout(
            () => reject(new Error(`${label} not ready after ${timeoutMs} ms:\n${tail(state)}`)),
            timeoutMs,
          )
        : undefined;
    const take = (line) => {
      if (keepLines > 0) {
        state.lines.push(line);
        if (state.lines.length > keepLines) state.lines.shift();
      }
      onLine?.(line, state);
      if (line.includes(readyText)) {
        clearTimeout(timer);
        resolve();
      }
    };
    // One line buffer per stream: a stderr chunk must not split a stdout line.
    const lineReader = () => {
      let buffered = "";
      return {
        data: (chunk) => {
          buffered += chunk;
          let nl = buffered.indexOf("\n");
          while (nl >= 0) {
            take(buffered.slice(0, nl));
            buffered = buffered.slice(nl + 1);
            nl = buffered.indexOf("\n");
          }
        },
        end: () => {
          if (buffered !== "") take(buffered);
          buffered = "";
        },
      };
    };
    for (const stream of [child.stdout, child.stderr]) {
      const reader = lineReader();
      stream.setEncoding("utf8").on("data", reader.data).on("end", reader.end);
    }
    state.exited.then(({ code, signal }) => {
      clearTimeout(timer);
      reject(new Error(`${label} exited (${code ?? signal}) before serving:\n${tail(state)}`));
    });
  });
  // A caller that never awaits `ready` (it stops the child first) is no unhandled rejection.
  state.ready.catch(() => {});
  return state;
}

/**
 * Starts `node NODE_FLAGS apps/node/dist/main.js ARGS` with {@link startChild};
 * `ready` resolves on its "serving group" line. `label` defaults to
 * `distcache-node`; the other options are {@link startChild}'s. Unless ARGS
 * choose (`--admin-port`, `--no-admin`, `--config`), the admin listener takes
 * a free port: its default (the main port + 1000) may be taken on a shared machine.
 */
export function startNode(args, { label = "distcache-node", nodeFlags = [], ...options } = {}) {
  const chosen = args.some((a) => a === "--admin-port" || a === "--no-admin" || a === "--config");
  const admin = chosen ? [] : ["--admin-port", "0"];
  return startChild(label, [...nodeFlags, NODE_MAIN, ...admin, ...args], READY_TEXT, options);
}

/** The child's last `count` output lines, indented, for error messages. */
export function tail(state, count = 10) {
  return state.lines
    .slice(-count)
    .map((l) => `  ${l}`)
    .join("\n");
}

/**
 * SIGTERM by pid, then SIGKILL if it still runs after `graceMs`
 * (`Infinity`: never). Resolves once it has exited.
 */
export async function stopChild(state, graceMs = 3_000) {
  const { child } = state;
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once("exit", resolve));
  child.kill("SIGTERM");
  const timer = Number.isFinite(graceMs)
    ? setTimeout(() => {
        if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
      }, graceMs)
    : undefined;
  await exited;
  clearTimeout(timer);
}
