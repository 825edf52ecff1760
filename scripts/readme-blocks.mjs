#!/usr/bin/env node
// Runs the README code blocks marked runnable: extracts them, type-checks them
// with tsc (strict, nodenext), runs them with node and checks their output comments.
//
// Conventions (for README authors):
//
// - Marker. A fence whose info string is the language then `runnable`:
//   ```ts runnable   (also ```js runnable; `typescript` / `javascript`)
//   GitHub colours it by the first word and shows nothing of the rest. The block
//   is type-checked, compiled and run; it must exit 0 within --timeout. A fence
//   ```ts check   is type-checked only (for code that would listen on a port,
//   say). Other fences are left alone (`--list` shows them).
// - Output. A line of a runnable block that is a single-line `console.log(...)`
//   call ending in a comment, `console.log(x); // 630`, asserts what that call
//   prints: its output (console.log's formatting of the arguments) must be the
//   comment's text exactly, `630`. The line is rewritten to
//   `__readme.log(LINE, "630", x); // 630`, which prints and records the
//   output; after the run every record must match, and every such line must
//   have run at least once. Other lines print freely and are not checked. Put
//   explanations on their own comment line, not after an asserted console.log.
// - Hidden setup. An HTML comment directly before the fence (blank lines
//   between are fine), invisible on GitHub:
//     <!-- runnable-setup
//     const db = { get: async (key: string) => ({ score: "630" }) };
//     -->
//   Its lines go in front of the block's, in the same file (imports may follow
//   statements in a module). It must not contain `-->`. A setup not followed by
//   a marked block is an error.
//
// Where the imports resolve: `--modules DIR`, a node_modules folder (a consumer
// with @distcache/* installed from tarballs, and typescript; @types/node is
// taken from it or else from the workspace); by default the workspace:
// @distcache/* are its packages (their dist/, so build first), other packages
// what the workspace's packages have installed. tsc is DIR's typescript when it
// has one, else the workspace's. Each block becomes src/<file>-L<line>.mts (or
// .mjs) in a temp folder; one `tsc --strict --module nodenext --moduleResolution
// nodenext --target es2022` program checks and compiles them all to out/, and
// errors are reported at README lines. Exit 0 when every block passed, 1 when
// one failed (or none was found), 2 on bad usage or setup.
//
//   node scripts/readme-blocks.mjs [--modules DIR] [--root DIR] [--timeout MS]
//                                  [--keep] [--list] [FILE.md ...]
import { spawn, spawnSync } from "node:child_process";
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { parseArgs } from "node:util";

const WORKSPACE = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");

const USAGE = `Usage: node scripts/readme-blocks.mjs [options] [FILE.md ...]

Type-checks, runs and checks the output of every README code block marked
\`\`\`ts runnable (or js); \`\`\`ts check blocks are type-checked only. Without
FILE arguments: README.md, packages/*/README.md and apps/*/README.md of --root.

  --modules DIR   resolve imports (and tsc) from this node_modules folder
                  (default: the workspace's packages, built)
  --root DIR      where the default README files are (default: the workspace)
  --timeout MS    longest run of one block (default 60000)
  --keep          keep the temp folder and print where it is
  --list          list the code blocks found, marked or not; run nothing
  -h, --help      this text`;

const LANGUAGES = { ts: "ts", typescript: "ts", js: "js", javascript: "js" };
const FENCE = /^ {0,3}(`{3,}|~{3,})(.*)$/;
const OUTPUT_LINE = /^(\s*)console\.log\((.*)\);\s*\/\/ ?(.*)$/;

/** A usage or set-up problem: exit 2. */
class SetupError extends Error {}

/**
 * The code blocks of one markdown file.
 * @returns {{file: string, line: number, lang: string|undefined, mode: "run"|"check"|undefined,
 *   code: string[], setup: {line: number, code: string[], firstLine: number}|undefined}[]}
 *   `line` is the fence's line (1-based); code line i is at `line + 1 + i`;
 *   setup code line i at `setup.firstLine + i`.
 */
export function extractBlocks(file, text) {
  const lines = text.split(/\r?\n/);
  const blocks = [];
  let setup;
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    if (/^\s*<!--\s*runnable-setup\b/.test(line)) {
      const start = i;
      const code = [];
      let firstLine; // the README line of the setup's first code line
      const push = (text) => {
        firstLine ??= i + 1;
        code.push(text);
      };
      let rest = line.replace(/^\s*<!--\s*runnable-setup\b/, "");
      for (;;) {
        const end = rest.indexOf("-->");
        if (end >= 0) {
          if (rest.slice(0, end).trim() !== "") push(rest.slice(0, end));
          break;
        }
        if (firstLine !== undefined || rest.trim() !== "") push(rest);
        i++;
        if (i >= lines.length)
          throw new SetupError(`${file}:${start + 1}: runnable-setup without -->`);
        rest = lines[i];
      }
      setup = { line: start + 1, code, firstLine: firstLine ?? start + 1 };
      continue;
    }
    const open = FENCE.exec(line);
    if (open === null) {
      if (setup !== undefined && line.trim() !== "") {
        throw new SetupError(
          `${file}:${setup.line}: runnable-setup is not followed by a marked code block`,
        );
      }
      continue;
    }
    const [, fence, info] = open;
    const words = info.trim().split(/\s+/);
    const lang = LANGUAGES[words[0]?.toLowerCase() ?? ""];
    const mode = words.includes("runnable") ? "run" : words.includes("check") ? "check" : undefined;
    const code = [];
    let j = i + 1;
    const close = new RegExp(`^ {0,3}${fence[0] === "`" ? "`" : "~"}{${fence.length},}\\s*$`);
    while (j < lines.length && !close.test(lines[j])) code.push(lines[j++]);
    if (mode !== undefined && lang === undefined) {
      throw new SetupError(
        `${file}:${i + 1}: "${info.trim()}": only ts and js blocks can be ${mode === "run" ? "runnable" : "checked"}`,
      );
    }
    if (setup !== undefined && mode === undefined) {
      throw new SetupError(
        `${file}:${setup.line}: runnable-setup is not followed by a marked code block`,
      );
    }
    blocks.push({ file, line: i + 1, lang, mode, code, setup });
    setup = undefined;
    i = j;
  }
  if (setup !== undefined) {
    throw new SetupError(
      `${file}:${setup.line}: runnable-setup is not followed by a marked code block`,
    );
  }
  return blocks;
}

/**
 * The block's source as written to disk: setup lines, then the block's lines
 * with each asserted console.log rewritten; `map[k]` is the README line of
 * source line k + 1; `outputs` the asserted lines.
 */
export function blockSource(block) {
  const map = [];
  const lines = [];
  const outputs = [];
  if (block.setup !== undefined) {
    block.setup.code.forEach((code, k) => {
      lines.push(code);
      map.push(block.setup.firstLine + k);
    });
  }
  block.code.forEach((code, k) => {
    const line = block.line + 1 + k;
    map.push(line);
    const output = block.mode === "run" ? OUTPUT_LINE.exec(code) : null;
    if (output === null) {
      lines.push(code);
      return;
    }
    const [, indent, args, expected] = output;
    const text = expected.trimEnd();
    outputs.push({ line, expected: text });
    lines.push(`${indent}__readme.log(${line}, ${JSON.stringify(text)}, ${args}); // ${expected}`);
  });
  return { text: `${lines.join("\n")}\n`, map, outputs };
}

const HARNESS = `// Loaded with node --import before a README block: __readme.log prints like
// console.log and records what an asserted line printed.
import { writeFileSync } from "node:fs";
import { format } from "node:util";
const records = [];
globalThis.__readme = {
  log(line, expected, ...args) {
    const actual = format(...args);
    process.stdout.write(actual + "\\n");
    records.push({ line, expected, actual });
  },
};
process.on("exit", () => writeFileSync(process.env.README_BLOCK_RECORDS, JSON.stringify(records)));
`;

const GLOBALS = `// The helper an asserted console.log line is rewritten to (see readme-blocks.mjs).
declare var __readme: { log(line: number, expected: string, ...args: unknown[]): void };
`;

/** Links every package the workspace's packages see into `target` (a node_modules). */
function workspaceModules(target) {
  mkdirSync(target, { recursive: true });
  const linked = new Set();
  const link = (name, dir) => {
    if (linked.has(name)) return;
    linked.add(name);
    const at = path.join(target, name);
    mkdirSync(path.dirname(at), { recursive: true });
    symlinkSync(dir, at, "dir");
  };
  const members = ["packages", "apps"].flatMap((group) => {
    const dir = path.join(WORKSPACE, group);
    return existsSync(dir) ? readdirSync(dir).map((name) => path.join(dir, name)) : [];
  });
  for (const dir of members) {
    const manifest = path.join(dir, "package.json");
    if (!existsSync(manifest)) continue;
    const { name } = JSON.parse(readFileSync(manifest, "utf8"));
    if (typeof name !== "string") continue;
    if (dir.includes(`${path.sep}packages${path.sep}`) && !existsSync(path.join(dir, "dist"))) {
      throw new SetupError(`${name} has no dist/: build first (npx -y pnpm@12.4.2 build)`);
    }
    link(name, dir);
  }
  for (const dir of [WORKSPACE, ...members]) {
    const modules = path.join(dir, "node_modules");
    if (!existsSync(modules)) continue;
    for (const entry of readdirSync(modules)) {
      if (entry.startsWith(".")) continue;
      if (entry.startsWith("@")) {
        for (const name of readdirSync(path.join(modules, entry))) {
          link(`${entry}/${name}`, path.join(modules, entry, name));
        }
      } else link(entry, path.join(modules, entry));
    }
  }
}

/** The first of `dirs` (node_modules folders) that holds `relative`, as a path. */
function findIn(dirs, relative) {
  for (const dir of dirs) {
    const candidate = path.join(dir, relative);
    if (existsSync(candidate)) return candidate;
  }
  return undefined;
}

function runNode(args, options) {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, args, { ...options, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk) => {
      stdout += chunk;
    });
    child.stderr.on("data", (chunk) => {
      stderr += chunk;
    });
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill("SIGKILL");
    }, options.timeoutMs);
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr, timedOut });
    });
  });
}

/** Type-checks and runs `blocks`; returns one result per marked block. */
export async function runBlocks(
  blocks,
  { modules, timeoutMs = 60_000, keep = false, log = () => {} },
) {
  const marked = blocks.filter((block) => block.mode !== undefined);
  const temp = mkdtempSync(path.join(os.tmpdir(), "readme-blocks-"));
  try {
    const nodeModules = path.join(temp, "node_modules");
    if (modules === undefined) workspaceModules(nodeModules);
    else symlinkSync(modules, nodeModules, "dir");
    const searched =
      modules === undefined ? [nodeModules] : [modules, path.join(WORKSPACE, "node_modules")];
    const tsc =
      findIn(searched, "typescript/bin/tsc") ??
      findIn([path.join(WORKSPACE, "node_modules")], "typescript/bin/tsc");
    if (tsc === undefined)
      throw new SetupError("typescript not found (in --modules, nor in the workspace)");
    const nodeTypes = findIn(searched, "@types/node");
    if (nodeTypes === undefined)
      throw new SetupError("@types/node not found (in --modules, nor in the workspace)");
    mkdirSync(path.join(temp, "src"));
    writeFileSync(path.join(temp, "src", "readme-globals.d.ts"), GLOBALS);
    writeFileSync(path.join(temp, "harness.mjs"), HARNESS);
    const sources = marked.map((block) => {
      const slug = `${path.relative(WORKSPACE, path.resolve(block.file)).replace(/[^A-Za-z0-9]+/g, "-")}-L${block.line}`;
      const ext = block.lang === "js" ? ".mjs" : ".mts";
      const source = blockSource(block);
      writeFileSync(path.join(temp, "src", slug + ext), source.text);
      return { block, slug, file: `src/${slug}${ext}`, ...source, errors: [] };
    });
    // One program for every block: each file is its own module (moduleDetection force).
    const checked = spawnSync(
      process.execPath,
      [
        tsc,
        "--strict",
        "--module",
        "nodenext",
        "--moduleResolution",
        "nodenext",
        "--target",
        "es2022",
        "--moduleDetection",
        "force",
        "--types",
        "node",
        "--typeRoots",
        path.dirname(nodeTypes),
        "--allowJs",
        "--checkJs",
        "--rootDir",
        "src",
        "--outDir",
        "out",
        "--pretty",
        "false",
        "src/readme-globals.d.ts",
        ...sources.map((source) => source.file),
      ],
      { cwd: temp, encoding: "utf8" },
    );
    const diagnostics = `${checked.stdout}${checked.stderr}`.split("\n");
    // Errors outside the blocks (a package's .d.ts, a missing type library) fail every block.
    const outside = [];
    let current;
    for (const line of diagnostics) {
      const at = /^(src\/[^(]+)\((\d+),(\d+)\): (.*)$/.exec(line);
      if (at !== null) {
        current = sources.find((source) => source.file === at[1]);
        const readmeLine = current?.map[Number(at[2]) - 1] ?? "?";
        if (current !== undefined) current.errors.push(`line ${readmeLine}: ${at[4]}`);
        else outside.push(line);
      } else if (line.startsWith("  ") && current !== undefined) {
        current.errors.push(`  ${line.trim()}`);
      } else if (line.trim() !== "") {
        current = undefined;
        outside.push(line);
      }
    }
    if (
      checked.status !== 0 &&
      outside.length === 0 &&
      sources.every((s) => s.errors.length === 0)
    ) {
      outside.push(`tsc exited with ${checked.status ?? checked.signal}`);
    }
    const check = async (source) => {
      const { block } = source;
      const where = `${path.relative(process.cwd(), path.resolve(block.file))}:${block.line}`;
      const result = {
        where,
        block,
        ok: true,
        problems: [...source.errors],
        outputs: source.outputs.length,
      };
      if (result.problems.length > 0) result.problems.unshift("type errors:");
      if (outside.length > 0)
        result.problems.push("tsc errors outside the blocks:", ...outside.map((l) => `  ${l}`));
      if (block.mode === "run" && result.problems.length === 0) {
        const records = path.join(temp, `${source.slug}.records.json`);
        const ran = await runNode(
          [
            "--import",
            pathToFileURL(path.join(temp, "harness.mjs")).href,
            path.join("out", `${source.slug}.mjs`),
          ],
          { cwd: temp, timeoutMs, env: { ...process.env, README_BLOCK_RECORDS: records } },
        );
        if (ran.timedOut) result.problems.push(`did not exit within ${timeoutMs} ms`);
        else if (ran.code !== 0) {
          result.problems.push(
            `exited with ${ran.code ?? ran.signal}:`,
            ...ran.stderr
              .trimEnd()
              .split("\n")
              .slice(-15)
              .map((l) => `  ${l}`),
          );
        }
        const recorded = existsSync(records) ? JSON.parse(readFileSync(records, "utf8")) : [];
        for (const record of recorded) {
          if (record.actual !== record.expected) {
            result.problems.push(
              `line ${record.line}: printed ${JSON.stringify(record.actual)}, the comment says ${JSON.stringify(record.expected)}`,
            );
          }
        }
        for (const output of source.outputs) {
          if (
            !recorded.some((record) => record.line === output.line) &&
            !ran.timedOut &&
            ran.code === 0
          ) {
            result.problems.push(
              `line ${output.line}: never ran (expected ${JSON.stringify(output.expected)})`,
            );
          }
        }
      }
      result.ok = result.problems.length === 0;
      return result;
    };
    // A few blocks at a time; results in README order.
    const results = new Array(sources.length);
    let next = 0;
    const worker = async () => {
      while (next < sources.length) {
        const i = next++;
        results[i] = await check(sources[i]);
      }
    };
    await Promise.all(
      Array.from({ length: Math.min(4, os.availableParallelism?.() ?? 2) }, worker),
    );
    return results;
  } finally {
    if (keep) log(`readme-blocks: kept ${temp}`);
    else rmSync(temp, { recursive: true, force: true });
  }
}

function defaultFiles(root) {
  const files = [path.join(root, "README.md")];
  for (const group of ["packages", "apps"]) {
    const dir = path.join(root, group);
    if (!existsSync(dir)) continue;
    for (const name of readdirSync(dir).sort()) files.push(path.join(dir, name, "README.md"));
  }
  return files.filter((file) => existsSync(file));
}

async function main(argv) {
  const { values, positionals } = parseArgs({
    args: argv,
    options: {
      modules: { type: "string" },
      root: { type: "string" },
      timeout: { type: "string", default: "60000" },
      keep: { type: "boolean", default: false },
      list: { type: "boolean", default: false },
      help: { type: "boolean", short: "h", default: false },
    },
    allowPositionals: true,
  });
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  const timeoutMs = Number(values.timeout);
  if (!Number.isInteger(timeoutMs) || timeoutMs <= 0)
    throw new SetupError("--timeout must be a positive integer");
  const modules = values.modules === undefined ? undefined : path.resolve(values.modules);
  if (modules !== undefined && !existsSync(modules))
    throw new SetupError(`--modules ${modules}: no such folder`);
  const files =
    positionals.length > 0 ? positionals : defaultFiles(path.resolve(values.root ?? WORKSPACE));
  const blocks = files.flatMap((file) => extractBlocks(file, readFileSync(file, "utf8")));
  const rel = (block) => `${path.relative(process.cwd(), path.resolve(block.file))}:${block.line}`;
  if (values.list) {
    for (const block of blocks) {
      const what = block.mode === "run" ? "runnable" : block.mode === "check" ? "check" : "-";
      console.log(
        `${what.padEnd(9)} ${(block.lang ?? "other").padEnd(5)} ${rel(block)}${block.setup ? " (with setup)" : ""}`,
      );
    }
    return 0;
  }
  const unmarked = blocks.filter((block) => block.mode === undefined && block.lang !== undefined);
  if (blocks.every((block) => block.mode === undefined)) {
    console.log(`readme-blocks: no marked block found in ${files.length} file(s)`);
    return 1;
  }
  const results = await runBlocks(blocks, {
    modules,
    timeoutMs,
    keep: values.keep,
    log: (line) => console.error(line),
  });
  for (const result of results) {
    const kind =
      result.block.mode === "run"
        ? `${result.block.lang}, ${result.outputs} output${result.outputs === 1 ? "" : "s"} checked`
        : `${result.block.lang}, type-checked only`;
    console.log(`${result.ok ? "ok  " : "FAIL"} ${result.where} (${kind})`);
    for (const problem of result.problems) console.log(`       ${problem}`);
  }
  const failed = results.filter((result) => !result.ok).length;
  console.log(
    `readme-blocks: ${results.length} marked block${results.length === 1 ? "" : "s"} in ${files.length} file${files.length === 1 ? "" : "s"}, ${failed} failed; ${unmarked.length} ts/js block${unmarked.length === 1 ? "" : "s"} not marked (--list)`,
  );
  return failed === 0 ? 0 : 1;
}

if (
  process.argv[1] !== undefined &&
  path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)
) {
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (error) => {
      console.error(`readme-blocks: ${error instanceof Error ? error.message : String(error)}`);
      if (!(error instanceof SetupError) && !(error instanceof TypeError)) console.error(error);
      process.exitCode = 2;
    },
  );
}
