// Docs that cannot drift: every README block marked runnable type-checks, runs
// and prints what its comments say (scripts/readme-blocks.mjs, against the
// built workspace), and the runner itself catches each kind of mismatch.
import { execFile } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";

const root = fileURLToPath(new URL("../../../", import.meta.url));
const runner = path.join(root, "scripts", "readme-blocks.mjs");

/**
 * READMEs that must keep at least one marked block (a marker dropped by
 * mistake would otherwise pass silently).
 */
const REQUIRED = [
  "README.md",
  "packages/core/README.md",
  "packages/lru/README.md",
  "packages/hashring/README.md",
  "packages/singleflight/README.md",
  "packages/transport-connect/README.md",
];

function runBlocks(...args: string[]) {
  return new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
    execFile(
      process.execPath,
      [runner, ...args],
      { cwd: root, timeout: 240_000 },
      (error, stdout, stderr) => {
        resolve({ code: typeof error?.code === "number" ? error.code : 0, stdout, stderr });
      },
    );
  });
}

describe("the README code blocks", () => {
  it("every marked block in README.md, packages/*/README.md and apps/*/README.md passes", async () => {
    const { code, stdout, stderr } = await runBlocks();
    expect(stdout).not.toContain("FAIL");
    expect({ code, stderr }).toEqual({ code: 0, stderr: "" });
    for (const file of REQUIRED) expect(stdout).toMatch(new RegExp(`^ok {3}${file}:\\d+ `, "m"));
  }, 240_000);
});

describe("scripts/readme-blocks.mjs", () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), "readme-blocks-test-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const markdown = (name: string, text: string) => {
    const file = path.join(dir, name);
    writeFileSync(file, text);
    return file;
  };

  it("reports each kind of mismatch at its README line, and passes what is right", async () => {
    const fence = "```";
    const file = markdown(
      "cases.md",
      [
        "# Cases", // 1
        "", // 2
        "<!-- runnable-setup", // 3
        "const base: number = 40;", // 4
        "-->", // 5
        "", // 6
        `${fence}ts runnable`, // 7
        'import { HashRing } from "@distcache/hashring";', // 8
        "console.log(base + 2); // 42", // 9
        "console.log(new HashRing().size, base); // 0 41", // 10
        "if (base < 0) {", // 11
        '  console.log("never"); // never', // 12
        "}", // 13
        fence, // 14
        "", // 15
        `${fence}ts runnable`, // 16
        'const n: number = "seven";', // 17
        fence, // 18
        "", // 19
        `${fence}js runnable`, // 20
        'throw new Error("boom");', // 21
        fence, // 22
        "", // 23
        `${fence}ts check`, // 24
        'import { LRU } from "@distcache/lru";', // 25
        "const cache: LRU<string> = new LRU({ maxBytes: 0 });", // 26
        "await new Promise(() => setInterval(() => {}, 1000)); // never settles: not run", // 27
        fence, // 28
        "", // 29
        `${fence}ts runnable`, // 30
        "await new Promise(() => setInterval(() => {}, 1000));", // 31
        fence, // 32
        "", // 33
        `${fence}ts`, // 34
        "not code: not marked", // 35
        fence, // 36
        "",
      ].join("\n"),
    );
    const { code, stdout } = await runBlocks("--timeout", "3000", file);
    expect(code).toBe(1);
    const rel = path.relative(root, file);
    const report = stdout.split("\n");
    const at = (line: number) => report.findIndex((l) => l.includes(`${rel}:${line} `));
    const problems = (line: number) => {
      const start = at(line);
      const end = report.findIndex((l, i) => i > start && !l.startsWith("       "));
      return report.slice(start + 1, end).map((l) => l.trim());
    };
    expect(report[at(7)]).toMatch(/^FAIL /);
    expect(problems(7)).toEqual([
      'line 10: printed "0 40", the comment says "0 41"',
      'line 12: never ran (expected "never")',
    ]);
    expect(report[at(16)]).toMatch(/^FAIL /);
    expect(problems(16)).toEqual([
      "type errors:",
      "line 17: error TS2322: Type 'string' is not assignable to type 'number'.",
    ]);
    expect(problems(20)[0]).toBe("exited with 1:");
    expect(problems(20).join("\n")).toContain("Error: boom");
    expect(report[at(24)]).toMatch(/^ok {3}.* \(ts, type-checked only\)$/);
    expect(problems(30)).toEqual(["did not exit within 3000 ms"]);
    expect(stdout).toContain(
      "readme-blocks: 5 marked blocks in 1 file, 4 failed; 1 ts/js block not marked (--list)",
    );
  }, 120_000);

  it("a setup not followed by a marked block is a setup error, exit 2", async () => {
    const file = markdown(
      "orphan.md",
      "<!-- runnable-setup\nconst x = 1;\n-->\n\n```ts\nx;\n```\n",
    );
    const { code, stderr } = await runBlocks(file);
    expect(code).toBe(2);
    expect(stderr).toContain(":1: runnable-setup is not followed by a marked code block");
  });

  it("no marked block at all fails", async () => {
    const { code, stdout } = await runBlocks(markdown("none.md", "```ts\nlet x = 1;\n```\n"));
    expect(code).toBe(1);
    expect(stdout).toContain("no marked block found");
  });

  it("--help prints the usage, exit 0", async () => {
    const { code, stdout } = await runBlocks("--help");
    expect(code).toBe(0);
    expect(stdout).toContain("--modules DIR");
  });
});
