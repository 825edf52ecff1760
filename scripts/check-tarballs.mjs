#!/usr/bin/env node
// Packs every workspace package (`pnpm -r pack`, which runs each package's
// prepack: an unbuilt package fails here) and checks what each tarball holds
// against an expected-files rule. Fails on anything else:
//   - a file no rule allows (tests, test utils, build info, stray files), or a
//     required one missing (LICENSE, README.md, CHANGELOG.md, the entry points);
//   - a dist/ module without its src/ module or the other way round;
//   - `workspace:` anywhere in the packed package.json, a private flag, wrong
//     engines, an @distcache dependency that is not the exact workspace version;
//   - an exports/main/types/bin target, a `sourceMappingURL`, a map's
//     `sources` entry, a relative import or a README link that points at a
//     file not in the tarball, a bare import of a package not in `dependencies`.
//
//   node scripts/check-tarballs.mjs            check, print a summary per package
//   node scripts/check-tarballs.mjs --list     also print every file
//   node scripts/check-tarballs.mjs --keep DIR leave the tarballs in DIR
import { execFileSync } from "node:child_process";
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
} from "node:fs";
import { builtinModules } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join, posix, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const args = process.argv.slice(2);
const list = args.includes("--list");
const keepIndex = args.indexOf("--keep");
const keep = keepIndex >= 0 ? resolve(args[keepIndex + 1] ?? "") : undefined;

const ENGINES = ">=22.12";
const COMMON_REQUIRED = ["package.json", "README.md", "LICENSE", "CHANGELOG.md"];
const MODULES = [/^dist\/.+\.(js|d\.ts)(\.map)?$/, /^src\/.+\.ts$/];
const LIBRARY = {
  required: ["dist/index.js", "dist/index.d.ts", "src/index.ts"],
  allowed: MODULES,
};
/** The expected-files rule of every package that is published. */
const RULES = {
  "@distcache/lru": LIBRARY,
  "@distcache/singleflight": LIBRARY,
  "@distcache/hashring": LIBRARY,
  "@distcache/core": LIBRARY,
  "@distcache/transport-connect": {
    required: [
      ...LIBRARY.required,
      "src/gen/distcache/cache_pb.ts",
      "proto/distcache/cache.proto",
      "proto/distcache/peer/v1/peer.proto",
    ],
    allowed: [...MODULES, /^proto\/.+\.proto$/],
  },
  "@distcache/node-app": {
    required: ["dist/main.js", "src/main.ts", "examples/cluster.yaml"],
    allowed: [...MODULES, /^examples\/[^/]+\.yaml$/],
  },
  "@distcache/client-app": {
    required: ["dist/main.js", "dist/scenario1.js", "src/main.ts"],
    allowed: MODULES,
  },
};
const FORBIDDEN = [
  /\.test\./,
  /\.test-util\./,
  /\.tsbuildinfo$/,
  /(^|\/)node_modules\//,
  /(^|\/)\.turbo\//,
];

function pnpm(cmdArgs, options) {
  const version = JSON.parse(readFileSync(join(root, "package.json"), "utf8")).packageManager;
  return execFileSync("npx", ["-y", version ?? "pnpm@12.4.2", ...cmdArgs], {
    cwd: root,
    encoding: "utf8",
    stdio: ["ignore", "pipe", "inherit"],
    ...options,
  });
}

// The workspace's packages and their versions.
const workspace = new Map();
for (const parent of ["packages", "apps"]) {
  for (const name of readdirSync(join(root, parent))) {
    const file = join(root, parent, name, "package.json");
    if (!existsSync(file)) continue;
    const pkg = JSON.parse(readFileSync(file, "utf8"));
    workspace.set(pkg.name, { dir: `${parent}/${name}`, pkg });
  }
}

const failures = [];
const fail = (pkgName, message) => failures.push(`${pkgName}: ${message}`);

for (const [name, { pkg }] of workspace) {
  if (pkg.private) fail(name, "is private: it would not be published");
  if (!RULES[name]) fail(name, "has no expected-files rule in scripts/check-tarballs.mjs");
}
for (const name of Object.keys(RULES)) {
  if (!workspace.has(name)) fail(name, "has a rule but is not in the workspace");
}

const out = keep ?? mkdtempSync(join(tmpdir(), "distcache-tarballs-"));
mkdirSync(out, { recursive: true });
let packed;
try {
  packed = JSON.parse(pnpm(["-r", "pack", "--pack-destination", out, "--json"]));
} catch (error) {
  console.error(
    `check-tarballs: \`pnpm -r pack\` failed (see above): ${error.message.split("\n")[0]}`,
  );
  if (!keep) rmSync(out, { recursive: true, force: true });
  process.exit(1);
}
if (!Array.isArray(packed)) packed = [packed];

const isBuiltin = (spec) => spec.startsWith("node:") || builtinModules.includes(spec.split("/")[0]);
const packageOf = (spec) =>
  spec.startsWith("@") ? spec.split("/").slice(0, 2).join("/") : spec.split("/")[0];
const kib = (bytes) => `${(bytes / 1024).toFixed(1)} KiB`;

for (const { name, filename } of packed) {
  const rule = RULES[name];
  if (!rule) continue; // reported above
  const extract = join(out, `x-${name.replace(/[@/]/g, "_")}`);
  rmSync(extract, { recursive: true, force: true });
  mkdirSync(extract);
  execFileSync("tar", ["-xzf", filename, "-C", extract]);
  const base = join(extract, "package");
  const files = execFileSync("tar", ["-tzf", filename], { encoding: "utf8" })
    .split("\n")
    .filter((line) => line && !line.endsWith("/"))
    .map((line) => line.replace(/^package\//, ""))
    .sort();
  const shipped = new Set(files);
  const has = (file) => shipped.has(posix.normalize(file));

  // Allowed and required files.
  for (const file of files) {
    if (FORBIDDEN.some((re) => re.test(file))) fail(name, `ships ${file} (forbidden)`);
    else if (!COMMON_REQUIRED.includes(file) && !rule.allowed.some((re) => re.test(file)))
      fail(name, `ships ${file}, which no rule allows`);
  }
  for (const file of [...COMMON_REQUIRED, ...rule.required]) {
    if (!shipped.has(file)) fail(name, `does not ship ${file}`);
  }

  // dist/ and src/ pair up.
  const sources = new Set(files.filter((f) => /^src\/.+\.ts$/.test(f)));
  for (const file of files.filter((f) => /^dist\/.+\.(js|d\.ts)$/.test(f))) {
    const src = file.replace(/^dist\//, "src/").replace(/\.(js|d\.ts)$/, ".ts");
    if (!sources.has(src))
      fail(name, `ships ${file} but not ${src} (left over from an earlier build?)`);
  }
  for (const src of sources) {
    const js = src.replace(/^src\//, "dist/").replace(/\.ts$/, ".js");
    if (!shipped.has(js)) fail(name, `ships ${src} but not ${js}`);
  }

  // The packed manifest.
  const manifestText = readFileSync(join(base, "package.json"), "utf8");
  const manifest = JSON.parse(manifestText);
  if (manifestText.includes("workspace:")) fail(name, "packed package.json contains `workspace:`");
  if (manifest.private) fail(name, "packed package.json is private");
  if (manifest.license !== "MIT") fail(name, `license is ${manifest.license}, not MIT`);
  if (manifest.engines?.node !== ENGINES)
    fail(name, `engines.node is ${JSON.stringify(manifest.engines?.node)}, not "${ENGINES}"`);
  if (manifest.version !== workspace.get(name)?.pkg.version)
    fail(name, `packed version ${manifest.version} is not the workspace's`);
  const deps = { ...manifest.dependencies };
  for (const [dep, range] of Object.entries(deps)) {
    const local = workspace.get(dep);
    if (local && range !== local.pkg.version)
      fail(name, `depends on ${dep}@${range}, not the workspace version ${local.pkg.version}`);
  }
  const targets = [];
  const visit = (value) => {
    if (typeof value === "string") targets.push(value);
    else if (value && typeof value === "object") Object.values(value).forEach(visit);
  };
  visit(manifest.exports);
  visit(manifest.main);
  visit(manifest.types);
  visit(manifest.bin);
  for (const target of targets) {
    if (!has(target)) fail(name, `package.json points at ${target}, which is not shipped`);
  }
  for (const bin of Object.values(
    typeof manifest.bin === "string" ? { x: manifest.bin } : (manifest.bin ?? {}),
  )) {
    if (has(bin) && !readFileSync(join(base, bin), "utf8").startsWith("#!/usr/bin/env node"))
      fail(name, `bin ${bin} does not start with #!/usr/bin/env node`);
  }

  // Maps, imports and links resolve inside the tarball.
  for (const file of files) {
    const dir = posix.dirname(file);
    if (file.endsWith(".map")) {
      const map = JSON.parse(readFileSync(join(base, file), "utf8"));
      for (const source of map.sources ?? []) {
        const target = posix.join(dir, map.sourceRoot ?? "", source);
        if (!has(target)) fail(name, `${file} maps to ${target}, which is not shipped`);
      }
    } else if (/\.(js|d\.ts)$/.test(file)) {
      const text = readFileSync(join(base, file), "utf8");
      for (const [, url] of text.matchAll(/\/\/# sourceMappingURL=(\S+)/g)) {
        if (!url.startsWith("data:") && !has(posix.join(dir, url)))
          fail(name, `${file} names the map ${url}, which is not shipped`);
      }
      const specs = [
        ...text.matchAll(/(?:^|[\s;])(?:import|export)\s[^;]*?\sfrom\s*["']([^"']+)["']/g),
        ...text.matchAll(/(?:^|[\s;])import\s*["']([^"']+)["']/g),
        ...text.matchAll(/\bimport\(\s*["']([^"']+)["']\s*\)/g),
      ].map((match) => match[1]);
      for (const spec of specs) {
        if (spec.startsWith(".")) {
          if (!has(posix.join(dir, spec)))
            fail(name, `${file} imports ${spec}, which is not shipped`);
        } else if (!isBuiltin(spec) && packageOf(spec) !== name && !(packageOf(spec) in deps)) {
          fail(name, `${file} imports ${spec}, which is not in dependencies`);
        }
      }
    } else if (file.endsWith(".md")) {
      const text = readFileSync(join(base, file), "utf8").replace(/```[\s\S]*?```/g, "");
      for (const [, target] of text.matchAll(/\]\(([^)\s]+)(?:\s+"[^"]*")?\)/g)) {
        if (/^([a-z]+:|#)/i.test(target)) continue;
        const path = posix.join(dir, decodeURI(target.split("#")[0]));
        if (!has(path) && !files.some((f) => f.startsWith(`${path.replace(/\/$/, "")}/`)))
          fail(name, `${file} links to ${target}, which is not shipped`);
      }
    }
  }

  const size = statSync(filename).size;
  const groups = {};
  for (const file of files) {
    const top = file.includes("/") ? `${file.split("/")[0]}/` : file;
    groups[top] = (groups[top] ?? 0) + 1;
  }
  const summary = Object.entries(groups)
    .map(([top, n]) => (top.endsWith("/") ? `${top} (${n})` : top))
    .join(", ");
  console.log(`${name}@${manifest.version}: ${files.length} files, ${kib(size)}: ${summary}`);
  if (list) for (const file of files) console.log(`  ${file}`);
}

for (const name of Object.keys(RULES)) {
  if (workspace.has(name) && !packed.some((p) => p.name === name)) fail(name, "was not packed");
}

if (!keep) rmSync(out, { recursive: true, force: true });
if (failures.length > 0) {
  console.error(`\ncheck-tarballs: ${failures.length} problem(s):`);
  for (const failure of failures) console.error(`  - ${failure}`);
  process.exit(1);
}
console.log(`check-tarballs: ${packed.length} tarballs OK${keep ? ` (in ${keep})` : ""}`);
