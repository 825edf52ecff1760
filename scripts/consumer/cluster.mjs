// A 3-node cluster in one process, as a user builds it after
// `npm install @distcache/core @distcache/transport-connect @connectrpc/connect
// @connectrpc/connect-node`: three ConnectPools on free loopback ports, one
// unregistered Group per node (core's registry is process-wide), and a Get of
// every key through every node with a plain Connect gRPC client.
import { strict as assert } from "node:assert";
import { createServer } from "node:net";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { Group, NotFoundError } from "@distcache/core";
import { CacheService, ConnectPool } from "@distcache/transport-connect";

const rows = { Tom: "630", Jack: "589", Sam: "567" };

/** Free loopback ports, all held open at once so none is handed out twice. */
async function freePorts(count) {
  const servers = await Promise.all(
    Array.from({ length: count }, () => {
      const server = createServer();
      return new Promise((resolve, reject) => {
        server.once("error", reject);
        server.listen(0, "127.0.0.1", () => resolve(server));
      });
    }),
  );
  const ports = servers.map((server) => server.address().port);
  await Promise.all(servers.map((server) => new Promise((resolve) => server.close(resolve))));
  return ports;
}

const members = (await freePorts(3)).map((port) => `127.0.0.1:${port}`);
const nodes = [];
try {
  for (const self of members) {
    const loads = [];
    const group = new Group("scores", 1 << 20, async (key) => {
      loads.push(key);
      const value = rows[key];
      if (value === undefined) throw new NotFoundError(key);
      return value;
    });
    const pool = new ConnectPool(self);
    pool.setPeers(...members);
    group.registerPeers(pool);
    nodes.push({ self, group, pool, loads });
    await pool.serve();
  }
  const clients = nodes.map(({ self }) =>
    createClient(CacheService, createGrpcTransport({ baseUrl: `http://${self}` })),
  );
  const text = (bytes) => new TextDecoder().decode(bytes);

  for (const [i, client] of clients.entries()) {
    for (const [key, want] of Object.entries(rows)) {
      const answer = await client.get({ group: "scores", key });
      assert.equal(answer.found, true, `node ${i} Get ${key}: not found (${answer.err})`);
      assert.equal(text(answer.data), want, `node ${i} Get ${key}`);
    }
    console.log(`node ${i + 1}: Tom 630, Jack 589, Sam 567`);
  }
  const loads = nodes.flatMap((node) => node.loads).sort();
  assert.deepEqual(loads, ["Jack", "Sam", "Tom"], "each key loads once in the cluster");
  console.log("each key loaded once in the cluster");

  const miss = await clients[0].get({ group: "scores", key: "nobody" });
  assert.equal(miss.found, false, "Get nobody");
  const unknown = await clients[1].get({ group: "nope", key: "Tom" });
  assert.equal(unknown.found, false, "Get from an unknown group");
  console.log(`not found: nobody (${miss.err}); unknown group (${unknown.err})`);

  const deleted = await clients[2].delete({ group: "scores", key: "Tom" });
  assert.equal(deleted.success, true, `Delete Tom: ${deleted.err}`);
  const reloaded = await clients[1].get({ group: "scores", key: "Tom" });
  assert.equal(text(reloaded.data), "630", "Get Tom after the delete");
  const tomLoads = nodes.flatMap((node) => node.loads).filter((key) => key === "Tom").length;
  assert.equal(tomLoads, 2, "Tom loads again once after the delete");
  console.log("deleted Tom through node 3; node 2 reloaded it: 630");
} finally {
  await Promise.all(nodes.map((node) => node.pool.close()));
}
