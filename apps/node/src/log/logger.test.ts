// The node's log lines, read back as an operator's tools would: JSON with
// time, level, node, msg and fields; pretty lines readable and one per event;
// the rate limiter letting one line per interval through.
import { execFileSync } from "node:child_process";
import { mkdtempSync, openSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { loadedKeyOf } from "../../../../scripts/lib/node-process.mjs";
import { BurstBuffer, createLogger, RateLimiter } from "./logger.js";

const dir = mkdtempSync(path.join(tmpdir(), "distcache-log-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function logTo(name: string, format: "json" | "pretty", level: "info" | "debug" = "info") {
  const file = path.join(dir, name);
  const log = createLogger({ level, format, node: "127.0.0.1:8001", fd: openSync(file, "w") });
  return {
    log,
    lines: () =>
      readFileSync(file, "utf8")
        .split("\n")
        .filter((l) => l !== ""),
  };
}

describe("createLogger", () => {
  it("writes one JSON object a line: time, level, node, msg and the fields", () => {
    const { log, lines } = logTo("json.log", "json");
    log.info({ group: "scores", key: "a b/c" }, "loaded from source: a b/c");
    log.warn({ group: "scores", err: "db down", held: 3 }, "getter failed");
    log.debug("not at info");
    const entries = lines().map((line) => JSON.parse(line) as Record<string, unknown>);
    expect(entries).toHaveLength(2);
    expect(entries[0]).toEqual({
      level: "info",
      time: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/),
      node: "127.0.0.1:8001",
      group: "scores",
      key: "a b/c",
      msg: "loaded from source: a b/c",
    });
    expect(entries[1]).toMatchObject({
      level: "warn",
      err: "db down",
      held: 3,
      msg: "getter failed",
    });
    expect(lines().map(loadedKeyOf)).toEqual(["a b/c", undefined]);
  });

  it("loads pino-pretty only for pretty lines", () => {
    // A fresh process: this one loaded it for the other tests.
    const logger = fileURLToPath(new URL("../../dist/log/logger.js", import.meta.url));
    const loaded = (format: string) =>
      execFileSync(
        process.execPath,
        [
          "--input-type=module",
          "-e",
          `import { createRequire } from "node:module";
           const { createLogger } = await import(${JSON.stringify(logger)});
           createLogger({ level: "info", format: ${JSON.stringify(format)}, node: "n", fd: 2 });
           const cache = Object.keys(createRequire(import.meta.url).cache);
           process.stdout.write(String(cache.some((file) => file.includes("pino-pretty"))));`,
        ],
        { encoding: "utf8" },
      );
    expect(loaded("json")).toBe("false");
    expect(loaded("pretty")).toBe("true");
  });

  it("writes pretty lines (no colour off a terminal) that the load-line parser reads too", () => {
    const { log, lines } = logTo("pretty.log", "pretty", "debug");
    log.info({ group: "scores", key: "a b/c" }, "loaded from source: a b/c");
    log.debug({ peer: "127.0.0.1:8002", state: "open" }, "peer breaker open");
    const [loaded, breaker] = lines();
    expect(loaded).toMatch(
      /^\[\d\d:\d\d:\d\d\.\d{3}\] INFO: loaded from source: a b\/c \{"group":"scores"\}$/,
    );
    expect(breaker).toMatch(
      /DEBUG: peer breaker open \{"peer":"127\.0\.0\.1:8002","state":"open"\}$/,
    );
    expect(lines().map(loadedKeyOf)).toEqual(["a b/c", undefined]);
  });
});

describe("BurstBuffer", () => {
  it("writes the lines of one burst as one write, in order, before any later task; flushes what waits on demand", async () => {
    const writes: string[] = [];
    const buffer = new BurstBuffer({ write: (text) => writes.push(text) });
    buffer.write("a\n");
    buffer.write("b\n");
    expect(writes).toEqual([]);
    await Promise.resolve(); // the next microtask checkpoint: no event-loop turn needed
    expect(writes).toEqual(["a\nb\n"]);
    buffer.write("c\n");
    let flushed = false;
    buffer.flush(() => {
      flushed = true;
    }); // as on exit, or pino's logger.flush(cb)
    expect(writes).toEqual(["a\nb\n", "c\n"]);
    expect(flushed).toBe(true);
    await new Promise((resolve) => setImmediate(resolve));
    expect(writes).toHaveLength(2);
  });
});

describe("RateLimiter", () => {
  it("lets one line per key through per interval and counts the ones held back", () => {
    let now = 0;
    const limiter = new RateLimiter(1_000, () => now);
    expect(limiter.take("a")).toBe(0);
    expect(limiter.take("a")).toBeUndefined();
    expect(limiter.take("b")).toBe(0);
    now = 500;
    expect(limiter.take("a")).toBeUndefined();
    now = 1_000;
    expect(limiter.take("a")).toBe(2);
    expect(limiter.take("a")).toBeUndefined();
  });
});
