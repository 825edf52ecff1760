// The node's logger (pino): one JSON object a line (time, level, node, msg,
// fields) by default, one readable line each (pino-pretty) when stdout is a
// terminal or the format is "pretty". Lines to stdout go through
// process.stdout (synchronous for files and pipes on Linux, so the last lines
// before an exit are kept; and never a busy retry when a reader is slow).
import { type Logger, pino } from "pino";
import pretty from "pino-pretty";
import type { LogFormat, LogLevel } from "../config/schema.js";

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
    out ?? pino.destination({ dest: fd, sync: true }),
  );
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
