// The node's logger (pino): one JSON object a line (time, level, node, msg,
// fields) by default, one readable line each (pino-pretty) when stdout is a
// terminal or the format is "pretty". JSON lines to stdout are gathered while
// the code that logs them runs, written together before the process goes back
// to the event loop, and go through process.stdout (synchronous for files and
// pipes on Linux, so the last lines before an exit are kept; and never a busy
// retry when a reader is slow).
import { createRequire } from "node:module";
import { type Logger, pino } from "pino";
import type PinoPretty from "pino-pretty";
import type { LogFormat, LogLevel } from "../config/schema.js";

/**
 * pino-pretty, loaded only for pretty lines. A node in service logs JSON,
 * and what a module loads stays on V8's heap for the process's life: a
 * node's heap after a full collection at rest was 18.6 MiB without it,
 * 19.0 MiB with it.
 */
const loadPretty = (): typeof PinoPretty => createRequire(import.meta.url)("pino-pretty");

export type { Logger } from "pino";

export interface LoggerOptions {
  readonly level: LogLevel;
  /** `undefined`: pretty on a terminal, JSON otherwise. */
  readonly format: LogFormat | undefined;
  /** This node's address (the `node` field of every line). */
  readonly node: string;
  /** The file descriptor lines go to. Default: 1 (stdout). */
  readonly fd?: number;
}

/** A logger for this node. */
export function createLogger(options: LoggerOptions): Logger {
  const fd = options.fd ?? 1;
  const isTty = fd === 1 && process.stdout.isTTY === true;
  const format = options.format ?? (isTty ? "pretty" : "json");
  const base = { node: options.node };
  // SonicBoom's synchronous writes retry EAGAIN in a loop: on a full pipe (a
  // slow reader) that stalls the event loop. process.stdout queues instead.
  const out = fd === 1 ? process.stdout : undefined;
  if (format === "pretty") {
    const pretty = loadPretty();
    return pino(
      { level: options.level, base },
      pretty({
        destination: out ?? fd,
        sync: true,
        singleLine: true,
        colorize: isTty,
        // The node is known where pretty lines are read (one terminal per node);
        // the key is in the message already.
        ignore: "pid,hostname,node,key",
        translateTime: "SYS:HH:MM:ss.l",
      }),
    );
  }
  return pino(
    {
      level: options.level,
      base,
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    out === undefined ? pino.destination({ dest: fd, sync: true }) : stdoutByBurst(out),
  );
}

/** Where a {@link TurnBuffer} writes: process.stdout, or a test's recorder. */
export interface LineSink {
  write(text: string): unknown;
}

/**
 * Lines logged by one burst of synchronous work (up to the next microtask
 * checkpoint: e.g. every load a FetchMany of cold keys starts) written
 * together, as one write, instead of one write per line. Why: a burst of cold
 * keys logs a "loaded from source" line per key, and each write to a pipe is
 * a system call (the line cost 5–6% of a cold key's CPU; docs/benchmarks.md,
 * "Costs (issue 14)"). A microtask, not `setImmediate`: the lines still leave
 * before the work they describe answers anyone (a load's line before its
 * value), and before the process could be killed between two turns. Lines
 * keep their order and content; {@link BurstBuffer.flush} writes what waits
 * at once (on exit).
 */
export class BurstBuffer implements LineSink {
  private lines: string[] = [];
  private scheduled = false;

  constructor(private readonly out: LineSink) {}

  write(line: string): boolean {
    this.lines.push(line);
    if (!this.scheduled) {
      this.scheduled = true;
      queueMicrotask(this.flushNow);
    }
    return true;
  }

  /** Writes every line that waits, as one write, then calls `done` (pino's `logger.flush(cb)`). */
  flush(done?: () => void): void {
    this.scheduled = false;
    const lines = this.lines;
    if (lines.length > 0) {
      this.lines = [];
      this.out.write(lines.length === 1 ? lines[0]! : lines.join(""));
    }
    done?.();
  }

  private readonly flushNow = (): void => this.flush();
}

/** `out` (process.stdout) behind a {@link BurstBuffer}, flushed on exit: process.stdout writes files and pipes synchronously then. */
function stdoutByBurst(out: NodeJS.WriteStream): BurstBuffer {
  const buffer = new BurstBuffer(out);
  process.once("exit", () => buffer.flush());
  return buffer;
}

/**
 * Lets one line per `key` through every `intervalMs`; the next line let
 * through says how many were held back meanwhile.
 */
export class RateLimiter {
  private readonly last = new Map<string, { at: number; held: number }>();

  constructor(
    private readonly intervalMs: number,
    private readonly now: () => number = () => performance.now(),
  ) {}

  /** `undefined`: hold this one back; else the number held back since the last one let through. */
  take(key: string): number | undefined {
    const now = this.now();
    const entry = this.last.get(key);
    if (entry !== undefined && now - entry.at < this.intervalMs) {
      entry.held++;
      return undefined;
    }
    // Bounded: keys are group names and reasons, a fixed set per node.
    this.last.set(key, { at: now, held: 0 });
    return entry?.held ?? 0;
  }
}
