// The pool's events as log lines: one per change, shedding rate-limited.
import { EventEmitter } from "node:events";
import { mkdtempSync, openSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import type { PoolEvents } from "@distcache/transport-connect";
import { afterAll, expect, it } from "vitest";
import { createLogger } from "./logger.js";
import { logPoolEvents, type PoolEventSource } from "./pool-events.js";

const dir = mkdtempSync(path.join(tmpdir(), "distcache-events-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

it("logs each event once, breaker states by level, shedding at most once per reason and direction per 10 s", () => {
  const file = path.join(dir, "events.log");
  const log = createLogger({ level: "info", format: "json", node: "n:1", fd: openSync(file, "w") });
  const emitter = new EventEmitter();
  logPoolEvents(emitter as unknown as PoolEventSource, log);
  const emit = <E extends keyof PoolEvents>(event: E, payload: PoolEvents[E]) =>
    emitter.emit(event, payload);

  emit("members", { members: ["n:1", "n:2"], version: "00000000000000ff" });
  emit("listening", { address: "n:1" });
  emit("breaker", { peer: "n:2", state: "open" });
  emit("breaker", { peer: "n:2", state: "half-open" }); // debug: not at info
  emit("breaker", { peer: "n:2", state: "closed" });
  for (let i = 0; i < 3; i++) {
    emit("shedding", { reason: "in-flight", active: true });
    emit("shedding", { reason: "in-flight", active: false });
  }
  emit("shedding", { reason: "event-loop-delay", active: true });
  emit("draining", {});
  emit("stopped", {});

  const entries = readFileSync(file, "utf8")
    .trim()
    .split("\n")
    .map((line) => JSON.parse(line) as Record<string, unknown>);
  expect(entries.map((e) => [e.level, e.msg])).toEqual([
    ["info", "members (2): n:1, n:2"],
    ["info", "listening on n:1"],
    ["warn", "peer n:2 breaker open: calls to it skipped"],
    ["info", "peer n:2 breaker closed: answering again"],
    ["warn", "shedding requests (in-flight)"],
    ["info", "stopped shedding requests (in-flight)"],
    ["warn", "shedding requests (event-loop-delay)"],
    ["info", "draining"],
    ["info", "stopped"],
  ]);
  expect(entries[0]).toMatchObject({
    members: ["n:1", "n:2"],
    version: "00000000000000ff",
    node: "n:1",
  });
});
