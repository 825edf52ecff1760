// Three distcache-node processes from one config file in front of a real
// PostgreSQL (the docs/operations.md example): Gets through any node, each key
// loaded once in the cluster, not-found and NULL rows, and the JSON log lines.
import { writeFileSync } from "node:fs";
import path from "node:path";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { CacheService } from "@distcache/transport-connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadedKeyOf } from "../../../scripts/lib/node-process.mjs";
import { freePorts } from "../../../scripts/lib/ports.mjs";
import { startNode } from "./node-process.test-util.js";
import { postgresMissing, startPostgres, type TestPostgres } from "./sources/postgres.test-util.js";

const missing = postgresMissing();
if (missing !== undefined) console.warn(`SKIP distcache-node with PostgreSQL: ${missing}`);

describe.skipIf(missing !== undefined)("distcache-node --config with a postgres group", () => {
  let db: TestPostgres;
  beforeAll(async () => {
    db = await startPostgres();
    await db.sql("CREATE TABLE scores (name text PRIMARY KEY, value text)");
    await db.sql("INSERT INTO scores VALUES ('Tom', '630'), ('Jack', '589'), ('Nobody', NULL)");
  }, 60_000);
  afterAll(async () => db?.destroy(), 60_000);

  it("serves the table through any of 3 nodes started from one file, logging JSON lines", async () => {
    const ports = await freePorts(3);
    const members = ports.map((port) => `127.0.0.1:${port}`);
    const file = path.join(db.host, "cluster.yaml");
    writeFileSync(
      file,
      [
        `node: {listen: "127.0.0.1:${ports[0]}"}`,
        `members: [${members.join(", ")}]`,
        "admin: false",
        "groups:",
        "  - name: scores",
        "    budget: 1MiB",
        "    loadTimeout: 2s",
        "    source:",
        "      type: postgres",
        `      host: ${db.host}`,
        `      port: ${db.port}`,
        `      database: ${db.database}`,
        `      user: ${db.user}`,
        "      query: SELECT value FROM scores WHERE name = $1",
        "      poolSize: 2",
        "      statementTimeout: 1s",
      ].join("\n"),
    );
    // startNode passes --port and --peers; --peers repeats the file's members (flags win).
    const nodes = await Promise.all(
      ports.map((port) => startNode(port, members, ["--config", file])),
    );
    const client = (i: number) =>
      createClient(CacheService, createGrpcTransport({ baseUrl: `http://${nodes[i]!.address}` }));
    const text = (data: Uint8Array) => new TextDecoder().decode(data);

    for (let i = 0; i < 3; i++) {
      const answer = await client(i).get({ group: "scores", key: "Tom" });
      expect(text(answer.data)).toBe("630");
    }
    expect(await client(1).get({ group: "scores", key: "Alice" })).toMatchObject({
      found: false,
      err: "key not found: Alice",
    });
    expect(await client(2).get({ group: "scores", key: "Nobody" })).toMatchObject({ found: false });
    // Log lines come through the children's stdout pipes: wait for them, not for a turn.
    const loads = () =>
      nodes.flatMap((node) => node.lines.map(loadedKeyOf).filter((k) => k !== undefined)).sort();
    await expect.poll(loads, { timeout: 10_000 }).toEqual(["Alice", "Nobody", "Tom"]);

    // Every line a node wrote is one JSON object with time, level, node and msg.
    for (const node of nodes) {
      for (const line of node.lines) {
        const entry = JSON.parse(line) as Record<string, unknown>;
        expect(entry).toMatchObject({
          time: expect.any(String),
          level: expect.stringMatching(/^(debug|info|warn|error)$/),
          node: node.address,
          msg: expect.any(String),
        });
      }
    }
    const loaded = nodes
      .flatMap((node) => node.lines.map((line) => JSON.parse(line) as Record<string, unknown>))
      .find((entry) => entry.key === "Tom");
    expect(loaded).toMatchObject({
      level: "info",
      group: "scores",
      msg: "loaded from source: Tom",
    });
  }, 60_000);
});
