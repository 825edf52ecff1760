#!/usr/bin/env node
// Builds, checks and publishes every workspace package, in dependency order.
//
//   node scripts/release.mjs [--registry URL] [--userconfig FILE] [--tag TAG]
//                            [--dry-run] [--no-git-checks] [--clean]
//   (also `npx -y pnpm@12.4.2 release -- …`)
//
// 1. Each package's CHANGELOG.md has a section for its version.
// 2. Build: `turbo run build` (generate → build), then outputs left over from
//    an earlier build (dist/ files whose src/ module no longer exists) are
//    deleted. With --clean: dist/ and tsconfig.tsbuildinfo removed first and
//    `turbo run build --force` (no cache replay).
// 3. scripts/check-tarballs.mjs: every tarball holds what its rule expects.
// 4. `pnpm -r publish`: dependency order, `workspace:*` rewritten to the exact
//    version, versions already in the registry skipped, each package's
//    prepack (scripts/prepack.mjs) checks its build once more.
// 5. Without --dry-run: every name@version is asked back from the registry.
//
// --registry defaults to the npm configuration's registry; --userconfig is an
// .npmrc with the registry's auth token (`//host:port/:_authToken=…`).
import { execFileSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { dirname, join, relative, resolve, sep } from "node:path";
import { fileURLToPath } from "node:url";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const args = process.argv.slice(2).filter((arg) => arg !== "--");
const value = (flag) => {
  const i = args.indexOf(flag);
  if (i < 0) return undefined;
  const v = args[i + 1];
  if (v === undefined || v.startsWith("--")) usage(`${flag} needs a value`);
  return v;
};
function usage(message) {
  if (message) console.error(`release: ${message}`);
  console.error(
    "usage: node scripts/release.mjs [--registry URL] [--userconfig FILE] [--tag TAG] [--dry-run] [--no-git-checks] [--clean]",
  );
  process.exit(2);
}
const known = new Set([
  "--registry",
  "--userconfig",
  "--tag",
  "--dry-run",
  "--no-git-checks",
  "--clean",
  "--help",
]);
for (const [i, arg] of args.entries()) {
  if (arg.startsWith("--") && !known.has(arg)) usage(`unknown flag ${arg}`);
  if (!arg.startsWith("--") && !["--registry", "--userconfig", "--tag"].includes(args[i - 1] ?? ""))
    usage(`unexpected argument ${arg}`);
}
if (args.includes("--help")) usage();
const registry = value("--registry");
const userconfig = value("--userconfig");
const tag = value("--tag");
const dryRun = args.includes("--dry-run");
const clean = args.includes("--clean");

const pnpmSpec =
  JSON.parse(readFileSync(join(root, "package.json"), "utf8")).packageManager ?? "pnpm@12.4.2";
const run = (command, commandArgs, options = {}) => {
  console.log(`release: $ ${command} ${commandArgs.join(" ")}`);
  return execFileSync(command, commandArgs, { cwd: root, stdio: "inherit", ...options });
};
const pnpm = (commandArgs, options) => run("npx", ["-y", pnpmSpec, ...commandArgs], options);
const step = (name) => console.log(`\nrelease: == ${name}`);

const isTestFile = (file) => /\.test\.[^/]*$|\.test-util\.[^/]*$/.test(file);

/** dist/ files (relative to dist/) that are module output without a src/ module. */
function leftOvers(dir) {
  const dist = join(dir, "dist");
  if (!existsSync(dist)) return [];
  const out = [];
  for (const entry of readdirSync(dist, { withFileTypes: true, recursive: true })) {
    if (!entry.isFile()) continue;
    const file = relative(dist, join(entry.parentPath, entry.name)).split(sep).join("/");
    const base = file.replace(/\.(js|d\.ts)(\.map)?$/, "");
    if (base === file || isTestFile(file)) continue;
    if (!existsSync(join(dir, "src", `${base}.ts`))) out.push(file);
  }
  return out.sort();
}

// The packages to publish.
const packages = [];
for (const parent of ["packages", "apps"]) {
  for (const name of readdirSync(join(root, parent)).sort()) {
    const dir = join(root, parent, name);
    if (!existsSync(join(dir, "package.json"))) continue;
    const pkg = JSON.parse(readFileSync(join(dir, "package.json"), "utf8"));
    if (!pkg.private) packages.push({ dir, name: pkg.name, version: pkg.version });
  }
}

try {
  step("changelogs");
  for (const { dir, name, version } of packages) {
    const file = join(dir, "CHANGELOG.md");
    const text = existsSync(file) ? readFileSync(file, "utf8") : "";
    if (!text.includes(`## [${version}]`))
      throw new Error(`${name}: CHANGELOG.md has no "## [${version}]" section`);
  }
  console.log(packages.map((p) => `${p.name}@${p.version}`).join(", "));

  step(clean ? "clean build" : "build");
  if (clean) {
    for (const { dir } of packages) {
      rmSync(join(dir, "dist"), { recursive: true, force: true });
      rmSync(join(dir, "tsconfig.tsbuildinfo"), { force: true });
    }
  }
  pnpm([
    "exec",
    "turbo",
    "run",
    "build",
    "--output-logs=errors-only",
    ...(clean ? ["--force"] : []),
  ]);
  // tsc -b never deletes the output of a module that was moved or removed.
  for (const { dir, name } of packages) {
    for (const file of leftOvers(dir)) {
      console.log(
        `release: ${name}: deleting dist/${file} (no src/ module: left over from an earlier build)`,
      );
      rmSync(join(dir, "dist", file));
    }
  }

  step("tarballs");
  run(process.execPath, [join(root, "scripts", "check-tarballs.mjs")]);

  step(`publish${dryRun ? " (dry run)" : ""}${registry ? ` to ${registry}` : ""}`);
  const publishArgs = ["-r", "publish", "--access", "public"];
  if (registry) publishArgs.push("--registry", registry);
  if (userconfig) publishArgs.push("--npmrc-auth-file", resolve(userconfig));
  if (tag) publishArgs.push("--tag", tag);
  if (dryRun) publishArgs.push("--dry-run");
  if (args.includes("--no-git-checks")) publishArgs.push("--no-git-checks");
  pnpm(publishArgs);

  if (!dryRun) {
    step("published versions, as the registry has them");
    for (const { name, version } of packages) {
      const viewArgs = ["view", `${name}@${version}`, "version"];
      if (registry) viewArgs.push("--registry", registry);
      if (userconfig) viewArgs.push("--userconfig", resolve(userconfig));
      const got = execFileSync("npm", viewArgs, { cwd: root, encoding: "utf8" }).trim();
      if (got !== version) throw new Error(`${name}@${version}: the registry answers "${got}"`);
      console.log(`  ${name}@${version}`);
    }
  }
  console.log(`\nrelease: done (${packages.length} packages${dryRun ? ", dry run" : ""})`);
} catch (error) {
  console.error(`\nrelease: FAILED: ${error.message.split("\n")[0]}`);
  process.exit(1);
}
