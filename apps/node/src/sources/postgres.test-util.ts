// A throwaway PostgreSQL server for tests: Debian's binaries, a cluster in a
// temp dir owned by the `postgres` user (postgres refuses to run as root),
// reached on a Unix socket in that dir only; stopped with pg_ctl, and killed
// by its pid if the test process exits first.
import { execFile } from "node:child_process";
import { chownSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir, userInfo } from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import pg from "pg";

const run = promisify(execFile);

/** A running test server. */
export interface TestPostgres {
  /** The socket directory: pg's `host`. */
  readonly host: string;
  readonly port: number;
  readonly database: string;
  readonly user: string;
  /** Runs SQL as the superuser on {@link TestPostgres.database}. */
  sql(text: string, values?: unknown[]): Promise<pg.QueryResult>;
  /** Stops the server (fast shutdown: connections are cut). */
  stop(): Promise<void>;
  /** Starts it again after {@link TestPostgres.stop}. */
  start(): Promise<void>;
  /** Stops it for good and removes its folder. */
  destroy(): Promise<void>;
}

/** Debian's PostgreSQL binaries (newest major version), or `undefined`. */
export function postgresBin(): string | undefined {
  const root = "/usr/lib/postgresql";
  if (!existsSync(root)) return undefined;
  const versions = readdirSync(root)
    .filter((v) => existsSync(path.join(root, v, "bin", "pg_ctl")))
    .sort((a, b) => Number(b) - Number(a));
  return versions[0] === undefined ? undefined : path.join(root, versions[0], "bin");
}

/**
 * Why PostgreSQL tests cannot run here, or `undefined` when they can. Under
 * CI=true a missing server is an error (thrown), not a skip.
 */
export function postgresMissing(): string | undefined {
  if (postgresBin() !== undefined) return undefined;
  const why =
    "PostgreSQL binaries not found under /usr/lib/postgresql (apt-get install postgresql)";
  if (process.env.CI === "true") throw new Error(`${why}; CI must run the PostgreSQL tests`);
  return why;
}

/** Starts a fresh server with database `distcache`. */
export async function startPostgres(): Promise<TestPostgres> {
  const bin = postgresBin();
  if (bin === undefined) throw new Error("PostgreSQL binaries not found");
  const dir = mkdtempSync(path.join(tmpdir(), "distcache-pg-"));
  // As root, run the server as `postgres` (it refuses root); otherwise as ourselves.
  const asRoot = userInfo().uid === 0;
  const user = asRoot ? "postgres" : userInfo().username;
  if (asRoot) {
    const { stdout } = await run("id", ["-u", "postgres"]);
    const { stdout: gid } = await run("id", ["-g", "postgres"]);
    chownSync(dir, Number(stdout.trim()), Number(gid.trim()));
  }
  const as = (command: string, args: string[]) =>
    asRoot
      ? run("runuser", ["-u", "postgres", "--", path.join(bin, command), ...args], { cwd: dir })
      : run(path.join(bin, command), args, { cwd: dir });
  const data = path.join(dir, "data");
  const port = 5432;
  await as("initdb", ["-D", data, "-A", "trust", "-U", user, "-E", "UTF8", "--no-sync"]);
  const options = `-k ${dir} -p ${port} -c listen_addresses= -c fsync=off -c max_connections=40`;
  const start = async () => {
    await as("pg_ctl", [
      "-D",
      data,
      "-o",
      options,
      "-l",
      path.join(dir, "log"),
      "-w",
      "-t",
      "30",
      "start",
    ]);
  };
  const stop = async () => {
    await as("pg_ctl", ["-D", data, "-m", "fast", "-w", "-t", "30", "stop"]);
  };
  const killOnExit = () => {
    try {
      const pid = Number(readFileSync(path.join(data, "postmaster.pid"), "utf8").split("\n")[0]);
      if (pid > 0) process.kill(pid, "SIGQUIT");
    } catch {
      // not running
    }
  };
  process.once("exit", killOnExit);
  await start();
  const connect = async (database: string) => {
    const client = new pg.Client({ host: dir, port, user, database });
    await client.connect();
    return client;
  };
  const admin = await connect("postgres");
  await admin.query("CREATE DATABASE distcache");
  await admin.end();
  const sql = async (text: string, values?: unknown[]) => {
    const client = await connect("distcache");
    try {
      return await client.query(text, values);
    } finally {
      await client.end();
    }
  };
  return {
    host: dir,
    port,
    database: "distcache",
    user,
    sql,
    start,
    stop,
    async destroy() {
      try {
        await stop();
      } catch {
        // already stopped
      }
      process.off("exit", killOnExit);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
