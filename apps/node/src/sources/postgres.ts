// The PostgreSQL data source: one parameterised query per group ($1 = the
// key), run on a bounded connection pool; the getter's AbortSignal cancels
// the running query on the server (pg_cancel_backend).
import { NotFoundError } from "@distcache/core";
import pg from "pg";

/** Options for {@link PostgresSource}. */
export interface PostgresSourceOptions {
  /** `postgres://user@host:port/db` (or a Unix socket dir as host); else the keys below and libpq's PG* variables. */
  readonly connectionString?: string;
  readonly host?: string;
  readonly port?: number;
  readonly database?: string;
  readonly user?: string;
  readonly password?: string;
  /** The query; `$1` is the key, the first column of the first row the value. */
  readonly query: string;
  /** Connections open at most; further loads wait for one. */
  readonly poolSize: number;
  /** The server's statement_timeout for each query, ms; `0`: none. */
  readonly statementTimeoutMs: number;
  /** Largest value accepted, bytes. */
  readonly maxValueBytes: number;
  /** Longest wait for a connection (new or from the pool), ms. Default 5 000. */
  readonly connectTimeoutMs?: number;
}

/** The backend's process id, which pg's Client keeps (set at connect) but its types leave out. */
interface BackendPid {
  readonly processID: number | null;
}

/**
 * Loads values with a parameterised query. NULL or no row is
 * {@link NotFoundError}; `bytea` is the value's bytes, text its UTF-8, other
 * types their text form. A failed query rejects (a group does not cache
 * errors) and its connection is replaced.
 */
export class PostgresSource {
  private readonly pool: pg.Pool;
  private readonly config: pg.PoolConfig;
  private readonly query: string;
  private readonly maxValueBytes: number;

  /** `onIdleError`: a pooled connection failed while idle (server restart); the pool drops it. */
  constructor(options: PostgresSourceOptions, onIdleError: (error: Error) => void = () => {}) {
    this.query = options.query;
    this.maxValueBytes = options.maxValueBytes;
    this.config = {
      connectionString: options.connectionString,
      host: options.host,
      port: options.port,
      database: options.database,
      user: options.user,
      password: options.password,
      max: options.poolSize,
      statement_timeout: options.statementTimeoutMs === 0 ? undefined : options.statementTimeoutMs,
      connectionTimeoutMillis: options.connectTimeoutMs ?? 5_000,
      idleTimeoutMillis: 30_000,
      application_name: "distcache",
    };
    this.pool = new pg.Pool(this.config);
    // Without a listener an idle connection's error would end the process.
    this.pool.on("error", onIdleError);
  }

  /**
   * Runs the query for `key`. Rejects with {@link NotFoundError} for NULL or no
   * row, with `signal.reason` once `signal` aborts (the query is cancelled on
   * the server), and with pg's error otherwise.
   */
  async load(key: string, signal?: AbortSignal): Promise<Uint8Array> {
    signal?.throwIfAborted();
    const client = await this.pool.connect();
    if (signal?.aborted === true) {
      client.release();
      throw signal.reason;
    }
    return new Promise<Uint8Array>((resolve, reject) => {
      const query = new pg.Query({ text: this.query, values: [key] });
      let first: unknown;
      let rows = 0;
      let cancelled = false;
      const finish = (destroy: boolean) => {
        signal?.removeEventListener("abort", onAbort);
        // A failed or cancelled query's connection is not reused: a cancel that
        // arrives late must not hit the next query run on it.
        client.release(destroy);
      };
      const onAbort = () => {
        cancelled = true;
        reject(signal?.reason);
        void this.cancelBackend((client as unknown as BackendPid).processID);
      };
      query.on("row", (row: Record<string, unknown>) => {
        // The first column: a row's keys keep the column order.
        if (rows++ === 0) first = Object.values(row)[0];
      });
      query.on("error", (error) => {
        finish(true);
        reject(error);
      });
      query.on("end", () => {
        finish(cancelled);
        try {
          resolve(this.valueOf(key, first));
        } catch (error) {
          reject(error);
        }
      });
      signal?.addEventListener("abort", onAbort, { once: true });
      client.query(query);
    });
  }

  /**
   * Cancels the query running on backend `pid`, from a connection of its own
   * (not the pool's: every pooled one may be busy). pg's `Client.cancel`
   * (the cancel protocol) reads a getter pg 8 deprecates, so this uses
   * `pg_cancel_backend`, which the same user may call on its own backends.
   */
  private async cancelBackend(pid: number | null): Promise<void> {
    if (pid === null) return;
    const canceller = new pg.Client({ ...this.config, statement_timeout: undefined });
    canceller.on("error", () => {});
    try {
      await canceller.connect();
      await canceller.query("SELECT pg_cancel_backend($1)", [pid]);
    } catch {
      // The server is gone or refused: the query dies with its connection,
      // which is destroyed once it settles.
    } finally {
      await canceller.end().catch(() => {});
    }
  }

  /** Closes every connection; loads in flight fail. */
  async close(): Promise<void> {
    await this.pool.end();
  }

  private valueOf(key: string, value: unknown): Uint8Array {
    if (value === null || value === undefined) throw new NotFoundError(key);
    const bytes =
      value instanceof Uint8Array
        ? value
        : Buffer.from(
            typeof value === "string"
              ? value
              : value instanceof Date
                ? value.toISOString()
                : typeof value === "object"
                  ? JSON.stringify(value)
                  : String(value),
            "utf8",
          );
    if (bytes.length > this.maxValueBytes) {
      throw new Error(
        `source value for key of ${bytes.length} bytes is over ${this.maxValueBytes} bytes`,
      );
    }
    return bytes;
  }
}
