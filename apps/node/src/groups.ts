// The node's groups, built from their config: each group's source (demo rows,
// HTTP, PostgreSQL) behind a getter that logs every call ("loaded from
// source: KEY", which the demo and tests count) and its failures, rate-limited.
import { readFileSync } from "node:fs";
import { type Group, NotFoundError, newGroup } from "@distcache/core";
import type { GroupConfig, SourceConfig } from "./config/schema.js";
import { type Logger, RateLimiter } from "./log/logger.js";
import { demoRows } from "./sources/demo.js";
import { HttpSource } from "./sources/http.js";

/** A group and what it needs closed when the node stops. */
export interface NodeGroup {
  readonly config: GroupConfig;
  readonly group: Group;
  close(): Promise<void>;
}

interface Source {
  load(key: string, signal: AbortSignal): Promise<Uint8Array | string> | Uint8Array | string;
  close(): Promise<void> | void;
}

/** Getter failures are logged at most once per group per this many ms. */
const ERROR_LOG_INTERVAL_MS = 10_000;

async function sourceOf(name: string, config: SourceConfig, log: Logger): Promise<Source> {
  switch (config.type) {
    case "demo": {
      const rows = demoRows();
      return {
        load(key) {
          const value = rows.get(key);
          if (value === undefined) throw new NotFoundError(key);
          return value;
        },
        close() {},
      };
    }
    case "http": {
      const http = new HttpSource(config.url, {
        maxBodyBytes: config.maxBodyBytes,
        maxSockets: config.maxSockets,
      });
      return { load: (key, signal) => http.load(name, key, signal), close: () => http.close() };
    }
    case "postgres": {
      // pg loads only for nodes that use it.
      const { PostgresSource } = await import("./sources/postgres.js");
      const db = new PostgresSource(
        {
          connectionString: config.connectionString,
          host: config.host,
          port: config.port,
          database: config.database,
          user: config.user,
          password:
            config.passwordFile === undefined
              ? undefined
              : readFileSync(config.passwordFile, "utf8").trimEnd(),
          query: config.query,
          poolSize: config.poolSize,
          statementTimeoutMs: config.statementTimeout,
          maxValueBytes: config.maxValueBytes,
        },
        (error) =>
          log.warn({ group: name, err: error.message }, "postgres connection lost while idle"),
      );
      return { load: (key, signal) => db.load(key, signal), close: () => db.close() };
    }
  }
}

/** Creates (registers) every configured group. Rejects if a password file cannot be read. */
export async function createGroups(
  configs: readonly GroupConfig[],
  log: Logger,
): Promise<NodeGroup[]> {
  const errors = new RateLimiter(ERROR_LOG_INTERVAL_MS);
  const sources = await Promise.all(
    configs.map((config) => sourceOf(config.name, config.source, log)),
  );
  return configs.map((config, index) => {
    const source = sources[index]!;
    const group = newGroup(
      config.name,
      config.budget,
      async (key, { signal }) => {
        log.info({ group: config.name, key }, `loaded from source: ${key}`);
        try {
          return await source.load(key, signal);
        } catch (error) {
          if (!(error instanceof NotFoundError) && !signal.aborted) {
            const held = errors.take(config.name);
            if (held !== undefined) {
              // The error's message only: never the value, never the query's parameters.
              log.warn(
                { group: config.name, key, err: (error as Error).message, held },
                "getter failed",
              );
            }
          }
          throw error;
        }
      },
      {
        ...(config.loadTimeout === undefined ? {} : { loadTimeout: config.loadTimeout }),
        ...(config.ttl === undefined ? {} : { ttl: config.ttl }),
        ...(config.awaitReplicas === undefined ? {} : { awaitReplicas: config.awaitReplicas }),
        ...(config.maxLoadsInFlight === undefined
          ? {}
          : { maxLoadsInFlight: config.maxLoadsInFlight }),
        ...(config.maxLoadsQueued === undefined ? {} : { maxLoadsQueued: config.maxLoadsQueued }),
      },
    );
    return { config, group, close: async () => void (await source.close()) };
  });
}
