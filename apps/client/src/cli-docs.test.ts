// The CLIs' docs match the CLIs: the flag tables of apps/client/README.md and
// apps/node/README.md list exactly the flags of each usage text, and
// bench/run.mjs --help prints its parts and flags without running anything.
import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { USAGE } from "./cli.js";

const root = fileURLToPath(new URL("../../../", import.meta.url));

function exec(script: string, ...args: string[]) {
  return new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
    execFile(
      process.execPath,
      [root + script, ...args],
      { timeout: 30_000 },
      (error, stdout, stderr) => {
        resolve({ code: typeof error?.code === "number" ? error.code : 0, stdout, stderr });
      },
    );
  });
}

/** The flags a usage text defines: the first word of its indented `--flag` lines. */
const usageFlags = (usage: string) =>
  [...usage.matchAll(/^\s+(?:-\w, )?(--[a-z-]+)/gm)].map((m) => m[1]).sort();

/** The flags a README's tables define: rows starting with `--flag`. */
const tableFlags = (readme: string) =>
  [...readme.matchAll(/^\| `(?:-\w`, `)?(--[a-z-]+)/gm)].map((m) => m[1]).sort();

describe("flag tables", () => {
  it("apps/client/README.md lists the flags of distcache --help", () => {
    const readme = readFileSync(`${root}apps/client/README.md`, "utf8");
    expect(tableFlags(readme)).toEqual(usageFlags(USAGE));
    expect(usageFlags(USAGE)).toEqual([
      "--addr",
      "--help",
      "--protocol",
      "--timeout",
      "--tls-ca",
      "--token",
    ]);
  });

  it("apps/node/README.md lists the flags of distcache-node --help", () => {
    // The flag table as written in the source (no build of apps/node needed):
    // the usage text is built from its rows' names — written out, or made by
    // serverLimit("name", ...) for the server limits.
    const source = readFileSync(`${root}apps/node/src/config/flags.ts`, "utf8");
    const flags = [
      ...source.matchAll(/^(?: {4}name: "([a-z-]+)",| {2}serverLimit\("([a-z-]+)",)/gm),
    ]
      .map((m) => `--${m[1] ?? m[2]}`)
      .sort();
    const readme = readFileSync(`${root}apps/node/README.md`, "utf8");
    expect(tableFlags(readme)).toEqual(flags);
    expect(flags.length).toBeGreaterThan(10);
  });
});

describe("bench/run.mjs", () => {
  it("--help prints the parts and flags, runs nothing, exit 0", async () => {
    const started = Date.now();
    const { code, stdout, stderr } = await exec("bench/run.mjs", "--help");
    expect({ code, stderr }).toEqual({ code: 0, stderr: "" });
    for (const word of ["local", "memory", "cluster", "fanin", "--quick", "--only", "--help"]) {
      expect(stdout).toContain(word);
    }
    expect(stdout).not.toContain("## DistCache benchmark");
    expect(Date.now() - started).toBeLessThan(20_000);
  });

  it("a bad flag or part is exit 2", async () => {
    expect((await exec("bench/run.mjs", "--nope")).code).toBe(2);
    expect(await exec("bench/run.mjs", "--only", "nope")).toMatchObject({
      code: 2,
      stderr: expect.stringContaining(
        "--only takes part names among local, memory, cluster, fanin",
      ),
    });
  });
});
