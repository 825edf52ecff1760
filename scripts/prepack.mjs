#!/usr/bin/env node
// The `prepack` of every published package (run by `pnpm pack` and
// `pnpm publish` in the package's folder): refuses to pack a package whose
// build is missing, older than its sources or mixed with output of files that
// no longer exist, so a tarball can never be "README and package.json only"
// or carry stale modules.
//
//   node ../../scripts/prepack.mjs           check the build
//   node ../../scripts/prepack.mjs --proto   also copy the repository's proto/
//                                            into the package (git-ignored)
//
// What counts as the build: `tsc -b` writes tsconfig.tsbuildinfo on every
// build that did anything (also when it only refreshed output timestamps), so
// its mtime is the build time; without it, the oldest entry file's.
import { cpSync, existsSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { dirname, join, relative, resolve, sep } from "node:path";
import { fileURLToPath } from "node:url";

const dir = process.cwd();
const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const pkg = JSON.parse(readFileSync(join(dir, "package.json"), "utf8"));
const name = pkg.name ?? relative(repoRoot, dir);

const isTestFile = (file) => /\.test\.[^/]*$|\.test-util\.[^/]*$/.test(file);

function walk(root) {
  if (!existsSync(root)) return [];
  const out = [];
  for (const entry of readdirSync(root, { withFileTypes: true, recursive: true })) {
    if (entry.isFile())
      out.push(relative(root, join(entry.parentPath, entry.name)).split(sep).join("/"));
  }
  return out.sort();
}

/** Every file `exports` and `bin` name, but the source condition (that points into src/). */
function entryFiles() {
  const files = new Set();
  const visit = (value, condition) => {
    if (typeof value === "string") {
      if (condition !== "@distcache/source" && value !== "./package.json") files.add(value);
    } else if (value && typeof value === "object") {
      for (const [key, inner] of Object.entries(value)) visit(inner, key);
    }
  };
  visit(pkg.exports);
  visit(pkg.main);
  visit(pkg.types);
  if (typeof pkg.bin === "string") files.add(pkg.bin);
  else visit(pkg.bin);
  return [...files].map((file) => file.replace(/^\.\//, ""));
}

// npm packs `workspace:*` ranges as they are (pnpm rewrites them to versions).
// biome-ignore lint/suspicious/noUndeclaredEnvVars: set by the package manager running prepack; no turbo task reads it
const agent = process.env.npm_config_user_agent ?? "";
if (!agent.startsWith("pnpm/") && JSON.stringify(pkg.dependencies ?? {}).includes("workspace:")) {
  console.error(
    `prepack ${name}: refusing to pack with ${agent.split(" ")[0] || "this tool"}: it would publish ` +
      "`workspace:` ranges. Pack and publish with pnpm: `node scripts/release.mjs` (or `pnpm pack`).",
  );
  process.exit(1);
}

const problems = [];
const entries = entryFiles();
if (!existsSync(join(dir, "dist"))) {
  console.error(`prepack ${name}: refusing to pack an unbuilt package: dist/ does not exist.`);
  console.error("Build first, at the repository root: `npx -y pnpm@12.4.2 build`.");
  process.exit(1);
}
for (const file of entries) {
  if (!existsSync(join(dir, file))) problems.push(`${file} is missing`);
}

// Every source module has its output, and every output its source module.
const sources = walk(join(dir, "src")).filter(
  (f) => f.endsWith(".ts") && !f.endsWith(".d.ts") && !isTestFile(f),
);
const outputs = walk(join(dir, "dist"));
const outputSet = new Set(outputs);
for (const source of sources) {
  const base = source.replace(/\.ts$/, "");
  for (const out of [`${base}.js`, `${base}.d.ts`]) {
    if (!outputSet.has(out)) problems.push(`src/${source} has no dist/${out}`);
  }
}
const sourceSet = new Set(sources);
for (const out of outputs) {
  const base = out.replace(/\.(js|d\.ts)(\.map)?$/, "");
  if (base === out || isTestFile(out)) continue; // not a module output, or never packed
  if (!sourceSet.has(`${base}.ts`))
    problems.push(`dist/${out} is left over from an earlier build (no src/${base}.ts)`);
}

// The build is not older than any source module.
const tsbuildinfo = join(dir, "tsconfig.tsbuildinfo");
const entryTimes = entries
  .filter((f) => existsSync(join(dir, f)))
  .map((f) => statSync(join(dir, f)).mtimeMs);
const builtAt = existsSync(tsbuildinfo)
  ? statSync(tsbuildinfo).mtimeMs
  : entryTimes.length > 0
    ? Math.min(...entryTimes)
    : 0;
const newer = sources.filter((source) => statSync(join(dir, "src", source)).mtimeMs > builtAt);
if (builtAt > 0 && newer.length > 0) {
  const shown = newer
    .slice(0, 5)
    .map((s) => `src/${s}`)
    .join(", ");
  problems.push(
    `the build is older than ${shown}${newer.length > 5 ? ` and ${newer.length - 5} more` : ""}`,
  );
}

if (problems.length > 0) {
  console.error(`prepack ${name}: refusing to pack an unbuilt or stale package:`);
  for (const problem of problems.slice(0, 12)) console.error(`  - ${problem}`);
  if (problems.length > 12) console.error(`  … and ${problems.length - 12} more`);
  console.error(
    "Build first, at the repository root: `npx -y pnpm@12.4.2 build`. Left-over files: delete " +
      "them (or the package's dist/ and tsconfig.tsbuildinfo, then build); " +
      "`node scripts/release.mjs` deletes them after its build.",
  );
  process.exit(1);
}

if (process.argv.includes("--proto")) {
  // The .proto files clients build from, at <package>/proto/ (git-ignored).
  const from = join(repoRoot, "proto");
  if (!existsSync(from)) {
    console.error(`prepack ${name}: ${from} not found; cannot ship proto/`);
    process.exit(1);
  }
  const to = join(dir, "proto");
  rmSync(to, { recursive: true, force: true });
  cpSync(from, to, {
    recursive: true,
    filter: (src) => statSync(src).isDirectory() || src.endsWith(".proto"),
  });
}
