import { createClient, ConnectError } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { CacheService } from "@distcache/transport-connect";
const c = createClient(CacheService, createGrpcTransport({ baseUrl: "http://127.0.0.1:18001" }));
for (const n of [(1<<20), (1<<20)+1, (1<<20)+1500, (1<<20)+3000]) {
  try { const r = await c.set({ group: "scores", key: "Big", data: new Uint8Array(n) }); console.log(n, r); }
  catch (e) { const ce = ConnectError.from(e); console.log(n, ce.code, ce.rawMessage); }
}
