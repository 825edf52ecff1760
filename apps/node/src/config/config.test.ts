import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { afterAll, describe, expect, it } from "vitest";
import { NODE_MAIN as main } from "../../../../scripts/lib/node-process.mjs";
import { ConfigError, parseConfigText } from "./file.js";
import { parseFlags } from "./flags.js";
import { membersWith, resolveConfig, selfAddress } from "./resolve.js";
import { parseDuration, parseSize } from "./units.js";

const run = promisify(execFile);
const dir = mkdtempSync(path.join(tmpdir(), "distcache-config-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const example = fileURLToPath(new URL("../../examples/cluster.yaml", import.meta.url));

function write(name: string, text: string): string {
  const file = path.join(dir, name);
  writeFileSync(file, text);
  return file;
}

/** Runs the built node with `args`; resolves with its exit code and stderr. */
async function node(args: string[]): Promise<{ code: number; stderr: string }> {
  try {
    await run(process.execPath, [main, ...args], { timeout: 60_000 });
    return { code: 0, stderr: "" };
  } catch (error) {
    const { code, stderr } = error as { code: number; stderr: string };
    return { code, stderr };
  }
}

function problemsOf(text: string, file = "c.yaml"): readonly string[] {
  try {
    parseConfigText(text, file);
  } catch (error) {
    if (error instanceof ConfigError) return error.problems;
    throw error;
  }
  return [];
}

describe("sizes and durations", () => {
  it("reads 64MiB-style sizes and 30s-style durations and refuses garbage", () => {
    expect(parseSize("64MiB")).toBe(64 * 2 ** 20);
    expect(parseSize("512KiB")).toBe(512 * 1024);
    expect(parseSize("1GiB")).toBe(2 ** 30);
    expect(parseSize(4096)).toBe(4096);
    expect(parseSize("1.5KiB")).toBe(1536);
    for (const bad of ["12 parsecs", "-1", "0x10", "1e3", "", "MiB", "1.1B"]) {
      expect(typeof parseSize(bad), bad).toBe("string");
    }
    expect(parseDuration("30s")).toBe(30_000);
    expect(parseDuration("500ms")).toBe(500);
    expect(parseDuration("5m")).toBe(300_000);
    expect(parseDuration(250)).toBe(250);
    for (const bad of ["soon", "1d", "-5s", "1.0005s", "9999h"]) {
      expect(typeof parseDuration(bad), bad).toBe("string");
    }
  });
});

describe("config files", () => {
  it("accepts the shipped example (apps/node/examples/cluster.yaml) and flags override it", () => {
    const loaded = parseConfigText(readFileSync(example, "utf8"), example);
    expect(loaded.config.groups?.map((g) => [g.name, g.budget, g.source.type])).toEqual([
      ["scores", 64 * 2 ** 20, "postgres"],
      ["demo", 512 * 1024, "demo"],
    ]);
    const config = resolveConfig(parseFlags(["--port", "8002", "--log-level", "warn"]), loaded);
    expect(config.listen).toEqual({ host: "127.0.0.1", port: 8002 });
    expect(config.admin).toEqual({ host: "127.0.0.1", port: 9002, statusPage: true });
    expect(config.log.level).toBe("warn");
    expect(config.pool.server).toMatchObject({ maxValueBytes: 2 ** 20, drainTimeoutMs: 5_000 });
    expect(config.pool.peer?.timeoutMs).toBe(1_000);
    expect(membersWith(config, selfAddress(config, 8002))).toContain("127.0.0.1:8002");
  });

  it("accepts JSON, and --advertise names the node apart from where it listens", () => {
    const text = JSON.stringify({
      node: { listen: "0.0.0.0:7001", advertise: "cache-1.internal:7001" },
      members: ["cache-1.internal:7001", "cache-2.internal:7001"],
      admin: false,
      groups: [
        {
          name: "users",
          budget: "1GiB",
          loadTimeout: "500ms",
          maxLoadsInFlight: 8,
          maxLoadsQueued: 100,
          source: { type: "http", url: "http://db.internal/api" },
        },
      ],
    });
    const config = resolveConfig(parseFlags([]), parseConfigText(text, "c.json"));
    expect(config.listen).toEqual({ host: "0.0.0.0", port: 7001 });
    expect(config.admin).toBeUndefined();
    expect(config.groups[0]).toMatchObject({
      budget: 2 ** 30,
      loadTimeout: 500,
      maxLoadsInFlight: 8,
      maxLoadsQueued: 100,
    });
    // The one group of the flags takes the same origin limits.
    const flagged = resolveConfig(
      parseFlags(["--group-max-loads", "4", "--group-max-loads-queued", "0"]),
      parseConfigText("{}", "c.json"),
    );
    expect(flagged.groups[0]).toMatchObject({ maxLoadsInFlight: 4, maxLoadsQueued: 0 });
    expect(() => parseFlags(["--group-max-loads", "-1"])).toThrow(/--group-max-loads/);
    expect(() =>
      resolveConfig(parseFlags(["--group-max-loads", "4"]), parseConfigText(text, "c.json")),
    ).toThrow(/--group-max-loads: the one-group flags cannot be combined/);
    expect(membersWith(config, selfAddress(config, 7001))).toHaveLength(2);
    // Listening on a wildcard with nothing to advertise is refused.
    expect(() =>
      resolveConfig(parseFlags(["--listen", "0.0.0.0:7001"]), parseConfigText("{}", "c.json")),
    ).toThrow(/needs an advertised address/);
  });

  it("reports every problem of a file at once, each at its line:column", () => {
    const problems = problemsOf(
      [
        "node:",
        "  listen: 127.0.0.1:8001",
        "  colour: blue", // 3: unknown key
        "replicas: two", // 4: wrong type
        "groups:",
        "  - name: a",
        "    budget: 12 parsecs", // 7: bad size
        "    loadTimeout: soon", // 8: bad duration
        "    source: { type: demo }",
        "  - name: a", // 10: duplicate group
        "    budget: 1KiB",
        "    source: { type: ftp }", // 12: no such source
      ].join("\n"),
    );
    expect(problems).toEqual([
      expect.stringMatching(/^c\.yaml:3:3: node: unknown key "colour"$/),
      expect.stringMatching(/^c\.yaml:4:11: replicas: /),
      expect.stringMatching(/^c\.yaml:7:13: groups\[0\]\.budget: invalid size "12 parsecs"/),
      expect.stringMatching(/^c\.yaml:8:18: groups\[0\]\.loadTimeout: invalid duration "soon"/),
      expect.stringMatching(/^c\.yaml:12:21: groups\[1\]\.source\.type: .*demo.*http.*postgres/),
    ]);
    // The duplicate is found once the rest is valid.
    expect(
      problemsOf(
        "groups:\n  - {name: a, budget: 1, source: {type: demo}}\n  - {name: a, budget: 2, source: {type: demo}}\n",
      ),
    ).toEqual([expect.stringMatching(/^c\.yaml:3:12: groups\[1\]\.name: duplicate group "a"$/)]);
  });

  it("exits 2 naming FILE:LINE:COL for each kind of bad file (the built node)", async () => {
    const cases: [string, string, RegExp][] = [
      ["syntax.yaml", "members: [127.0.0.1:8001\ngroups: {", /syntax\.yaml:\d+:\d+: /],
      ["unknown.yaml", "membres: [127.0.0.1:8001]\n", /unknown\.yaml:1:1: unknown key "membres"/],
      ["type.yaml", "replicas: '2'\n", /type\.yaml:1:11: replicas: /],
      [
        "size.yaml",
        "groups:\n  - name: g\n    budget: 64MB!\n    source: {type: demo}\n",
        /size\.yaml:3:13: groups\[0\]\.budget: invalid size "64MB!"/,
      ],
      [
        "duration.yaml",
        "groups:\n  - name: g\n    budget: 1MiB\n    ttl: 3 weeks\n    source: {type: demo}\n",
        /duration\.yaml:4:10: groups\[0\]\.ttl: invalid duration "3 weeks"/,
      ],
      [
        "dup.json",
        '{"groups": [\n {"name": "g", "budget": 1, "source": {"type": "demo"}},\n {"name": "g", "budget": 1, "source": {"type": "demo"}}]}\n',
        /dup\.json:3:11: groups\[1\]\.name: duplicate group "g"/,
      ],
      [
        "members.yaml",
        "node: {listen: 127.0.0.1:8001}\nmembers:\n  - 127.0.0.1:8002\n  - 127.0.0.1:8003\n",
        /members\.yaml:3:3 \(members\): this node \(127\.0\.0\.1:8001\) is not in its member list/,
      ],
    ];
    const results = await Promise.all(
      cases.map(([name, text]) => node(["--config", write(name, text)])),
    );
    results.forEach((result, i) => {
      const [name, , pattern] = cases[i]!;
      expect(result.code, name).toBe(2);
      expect(result.stderr, name).toMatch(pattern);
    });
  }, 120_000);

  it("refuses --peers without this node, and the one-group flags beside the file's groups", async () => {
    expect(await node(["--port", "8001", "--peers", "127.0.0.1:8002"])).toMatchObject({
      code: 2,
      stderr: expect.stringContaining(
        "--peers: this node (127.0.0.1:8001) is not in its member list",
      ),
    });
    const file = write(
      "groups.yaml",
      "groups:\n  - {name: g, budget: 1KiB, source: {type: demo}}\n",
    );
    expect(await node(["--config", file, "--group", "x:10"])).toMatchObject({
      code: 2,
      stderr: expect.stringContaining(
        `--group: the one-group flags cannot be combined with the groups of ${file}:2:3`,
      ),
    });
  }, 120_000);
});
