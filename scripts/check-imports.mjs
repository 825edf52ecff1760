#!/usr/bin/env node
// Checks the import graph of every package and app: no import cycle between
// the source files of one package, and no package importing across the
// layering of docs/architecture.md ("Packages and layers"). Exit 1 on a finding.
import { readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");

/** What each workspace package may import from the workspace (docs/architecture.md). */
const ALLOWED = {
  "@distcache/lru": [],
  "@distcache/singleflight": [],
  "@distcache/hashring": [],
  "@distcache/core": ["@distcache/lru", "@distcache/singleflight"],
  "@distcache/transport-connect": ["@distcache/core", "@distcache/hashring"],
  "@distcache/node-app": ["@distcache/core", "@distcache/transport-connect"],
  "@distcache/client-app": ["@distcache/core", "@distcache/transport-connect"],
};

const IMPORT = /^\s*(?:import|export)\s[^;]*?from\s+"([^"]+)"|^\s*import\s+"([^"]+)"/gm;

function sourceFiles(dir) {
  const files = [];
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) files.push(...sourceFiles(path));
    else if (name.endsWith(".ts") && !name.endsWith(".d.ts")) files.push(path);
  }
  return files;
}

const problems = [];
for (const group of ["packages", "apps"]) {
  for (const name of readdirSync(join(root, group))) {
    const dir = join(root, group, name);
    const pkg = JSON.parse(readFileSync(join(dir, "package.json"), "utf8"));
    const allowed = ALLOWED[pkg.name];
    if (allowed === undefined) {
      problems.push(`${pkg.name}: not in scripts/check-imports.mjs's layering table`);
      continue;
    }
    const src = join(dir, "src");
    const edges = new Map();
    for (const file of sourceFiles(src)) {
      const isTest = /\.test(-util)?\.ts$/.test(file);
      const targets = [];
      for (const match of readFileSync(file, "utf8").matchAll(IMPORT)) {
        const spec = match[1] ?? match[2];
        if (spec.startsWith(".")) {
          targets.push(resolve(dirname(file), spec.replace(/\.js$/, ".ts")));
        } else if (spec.startsWith("@distcache/")) {
          const target = spec.split("/").slice(0, 2).join("/");
          // Tests may use any workspace package below them; sources only their layer.
          if (!isTest && target !== pkg.name && !allowed.includes(target)) {
            problems.push(`${relative(root, file)} imports ${target}: not allowed for ${pkg.name}`);
          }
        }
      }
      edges.set(file, targets);
    }
    // Depth-first search for a back edge: a cycle.
    const state = new Map();
    const stack = [];
    const visit = (file) => {
      state.set(file, "open");
      stack.push(file);
      for (const target of edges.get(file) ?? []) {
        if (!edges.has(target)) continue;
        if (state.get(target) === "open") {
          const cycle = stack.slice(stack.indexOf(target)).concat(target);
          problems.push(`import cycle: ${cycle.map((f) => relative(root, f)).join(" -> ")}`);
        } else if (!state.has(target)) visit(target);
      }
      stack.pop();
      state.set(file, "done");
    };
    for (const file of edges.keys()) if (!state.has(file)) visit(file);
  }
}

if (problems.length > 0) {
  for (const problem of problems) console.error(problem);
  process.exit(1);
}
console.log("imports: no cycles, layering respected");
