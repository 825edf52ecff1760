import { NotFoundError, newGroup, removeGroup } from "@distcache/core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PostgresSource, type PostgresSourceOptions } from "./postgres.js";
import { postgresMissing, startPostgres, type TestPostgres } from "./postgres.test-util.js";

const missing = postgresMissing();
if (missing !== undefined) console.warn(`SKIP PostgreSQL source tests: ${missing}`);

/** Polls `check` every 50 ms until it holds or `ms` pass; returns the last result. */
async function eventually(check: () => Promise<boolean>, ms = 10_000): Promise<boolean> {
  const deadline = performance.now() + ms;
  for (;;) {
    if (await check()) return true;
    if (performance.now() > deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

describe.skipIf(missing !== undefined)("PostgresSource against a real PostgreSQL", () => {
  let db: TestPostgres;
  const sources: PostgresSource[] = [];
  const source = (options: Partial<PostgresSourceOptions> = {}) => {
    const created = new PostgresSource({
      host: db.host,
      port: db.port,
      database: db.database,
      user: db.user,
      query: "SELECT value FROM scores WHERE name = $1",
      poolSize: 2,
      statementTimeoutMs: 0,
      maxValueBytes: 1 << 20,
      ...options,
    });
    sources.push(created);
    return created;
  };
  /** Backends of this test's sources running pg_sleep now. */
  const sleepers = async () =>
    Number(
      (
        await db.sql(
          "SELECT count(*) AS n FROM pg_stat_activity WHERE application_name = 'distcache' AND state = 'active' AND query LIKE '%pg_sleep%'",
        )
      ).rows[0].n,
    );

  beforeAll(async () => {
    db = await startPostgres();
    await db.sql("CREATE TABLE scores (name text PRIMARY KEY, value text)");
    await db.sql("CREATE TABLE blobs (name text PRIMARY KEY, value bytea)");
    await db.sql("INSERT INTO scores VALUES ('Tom', '630'), ('Jack', '589'), ('Nobody', NULL)");
    await db.sql("INSERT INTO blobs VALUES ('b', '\\x00ff10'::bytea)");
  }, 60_000);
  afterAll(async () => {
    await Promise.all(sources.map((s) => s.close().catch(() => {})));
    await db?.destroy();
  }, 60_000);

  it("finds text as UTF-8 and bytea as bytes; no row and NULL are not found", async () => {
    const scores = source();
    expect(Buffer.from(await scores.load("Tom")).toString()).toBe("630");
    await expect(scores.load("Alice")).rejects.toBeInstanceOf(NotFoundError);
    await expect(scores.load("Nobody")).rejects.toBeInstanceOf(NotFoundError);
    // A key is a parameter, never SQL.
    await expect(scores.load("' OR '1'='1")).rejects.toBeInstanceOf(NotFoundError);
    const blobs = source({ query: "SELECT value FROM blobs WHERE name = $1" });
    expect([...(await blobs.load("b"))]).toEqual([0, 255, 16]);
  });

  it("fails a query past the statement timeout", async () => {
    const slow = source({
      query: "SELECT $1::text || pg_sleep(5)::text AS value",
      statementTimeoutMs: 300,
    });
    const started = performance.now();
    await expect(slow.load("k")).rejects.toThrow(/statement timeout/);
    expect(performance.now() - started).toBeLessThan(4_000);
  });

  it("cancels the running query on the server when the getter's signal aborts", async () => {
    const slow = source({ query: "SELECT $1::text || pg_sleep(30)::text AS value" });
    const controller = new AbortController();
    const loading = slow.load("k", controller.signal);
    loading.catch(() => {});
    expect(await eventually(async () => (await sleepers()) === 1)).toBe(true);
    const reason = new Error("deadline");
    controller.abort(reason);
    await expect(loading).rejects.toBe(reason);
    // The backend really stopped: no pg_sleep left running.
    expect(await eventually(async () => (await sleepers()) === 0)).toBe(true);
    // The source still works after a cancel.
    const scores = source();
    expect(Buffer.from(await scores.load("Jack")).toString()).toBe("589");
  });

  it("returns errors while the server is down, caches none of them, and recovers", async () => {
    const scores = source({ connectTimeoutMs: 1_000 });
    let calls = 0;
    const group = newGroup(
      "pg-restart",
      1 << 16,
      (key, { signal }) => {
        calls++;
        return scores.load(key, signal);
      },
      { replace: true },
    );
    try {
      expect((await group.get("Tom")).toString()).toBe("630");
      await db.stop();
      // Cached keys are still served; uncached ones fail, each time (not cached).
      expect((await group.get("Tom")).toString()).toBe("630");
      await expect(group.get("Jack")).rejects.toThrow();
      await expect(group.get("Jack")).rejects.toThrow();
      expect(calls).toBe(3);
      await db.start();
      expect(
        await eventually(async () => {
          try {
            return (await group.get("Jack")).toString() === "589";
          } catch {
            return false;
          }
        }),
      ).toBe(true);
    } finally {
      removeGroup("pg-restart");
    }
  }, 60_000);
});
