// Child processes of the bench: started with `node ARGS`, ready once a line
// says so, stopped by pid (SIGTERM, then SIGKILL), and killed on exit if the
// bench dies between start and stop.

import { spawn } from "node:child_process";

const live = new Set();
let exitHookInstalled = false;
function installExitHook() {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  // Last resort if the bench dies between start and stop: no orphans.
  process.on("exit", () => {
    for (const child of live) {
      try {
        process.kill(child.pid, "SIGKILL");
      } catch {}
    }
  });
}

/** Kills `child` by pid if the bench exits while it still runs. */
export function track(child) {
  installExitHook();
  live.add(child);
  child.once("exit", () => live.delete(child));
  return child;
}

/**
 * Starts `node ARGS`; `state.ready` resolves once a line contains `readyText`
 * and rejects if the child exits first or `timeoutMs` passes. Every output
 * line goes to `onLine(line, state)`; the last 200 are kept in `state.lines`.
 */
export function startChild(label, args, readyText, { onLine, timeoutMs = 15_000 } = {}) {
  const child = track(
    spawn(process.execPath, args, {
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, NODE_OPTIONS: "" },
    }),
  );
  const state = { label, child, lines: [] };
  state.ready = new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`${label} not ready after ${timeoutMs} ms:\n${tail(state)}`)),
      timeoutMs,
    );
    let buffered = "";
    const onData = (chunk) => {
      buffered += chunk;
      let nl = buffered.indexOf("\n");
      while (nl >= 0) {
        const line = buffered.slice(0, nl);
        buffered = buffered.slice(nl + 1);
        state.lines.push(line);
        if (state.lines.length > 200) state.lines.shift();
        onLine?.(line, state);
        if (line.includes(readyText)) {
          clearTimeout(timer);
          resolve();
        }
        nl = buffered.indexOf("\n");
      }
    };
    child.stdout.setEncoding("utf8").on("data", onData);
    child.stderr.setEncoding("utf8").on("data", onData);
    child.once("exit", (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`${label} exited (${code ?? signal}) before serving:\n${tail(state)}`));
    });
  });
  state.ready.catch(() => {});
  return state;
}

/** The child's last output lines, indented, for error messages. */
export function tail(state) {
  return state.lines
    .slice(-10)
    .map((l) => `  ${l}`)
    .join("\n");
}

/** SIGTERM by pid, SIGKILL after `graceMs`. */
export async function stopChild(state, graceMs = 3_000) {
  const { child } = state;
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once("exit", resolve));
  child.kill("SIGTERM");
  const timer = setTimeout(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
  }, graceMs);
  await exited;
  clearTimeout(timer);
}
