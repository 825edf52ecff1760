// A realistic program against the published types: a clustered group with
// error handling, a Connect client, stats. scripts/registry-check.sh
// type-checks it (strict) with moduleResolution nodenext and bundler; the
// expected errors at the end (ts-expect-error) prove the types are real, not `any`.
import { type Client, Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import {
  type ByteView,
  type Getter,
  type GetterContext,
  Group,
  type GroupStats,
  InvalidKeyError,
  NotFoundError,
  newGroup,
  PropagationError,
  RemoteLoadError,
  TimeoutError,
} from "@distcache/core";
import {
  CacheService,
  ConnectPool,
  type ConnectPoolOptions,
  type PoolStats,
} from "@distcache/transport-connect";

interface Row {
  readonly score: number;
}

const table = new Map<string, Row>([
  ["Tom", { score: 630 }],
  ["Jack", { score: 589 }],
]);

async function queryRow(key: string, signal: AbortSignal): Promise<Row | undefined> {
  signal.throwIfAborted();
  await new Promise((resolve) => setTimeout(resolve, 1));
  return table.get(key);
}

const getter: Getter = async (key: string, { signal }: GetterContext) => {
  const row = await queryRow(key, signal);
  if (row === undefined) throw new NotFoundError(key);
  return String(row.score);
};

const poolOptions: ConnectPoolOptions = {
  replicas: 1,
  peer: { timeoutMs: 500 },
  server: { allowClientSet: false },
};

export interface CacheNode {
  readonly group: Group;
  readonly pool: ConnectPool;
}

export async function startNode(self: string, members: readonly string[]): Promise<CacheNode> {
  const group = new Group("scores", 64 << 20, getter, { loadTimeout: 2_000, ttl: 60_000 });
  const pool = new ConnectPool(self, poolOptions);
  pool.setPeers(...members);
  group.registerPeers(pool);
  await pool.serve();
  return { group, pool };
}

/** The score of `key`, `undefined` when the source has none. */
export async function score(
  group: Group,
  key: string,
  signal?: AbortSignal,
): Promise<number | undefined> {
  try {
    const view: ByteView = await group.get(key, signal === undefined ? {} : { signal });
    return Number(view.toString());
  } catch (error) {
    if (error instanceof NotFoundError) return undefined;
    if (error instanceof TimeoutError)
      throw new Error(`loading ${key} timed out`, { cause: error });
    if (error instanceof RemoteLoadError)
      throw new Error(`the owner failed: ${error.message}`, { cause: error });
    if (error instanceof InvalidKeyError) throw new RangeError(error.message);
    throw error;
  }
}

export async function forget(group: Group, key: string): Promise<readonly string[]> {
  try {
    const { failed } = await group.delete(key);
    return failed.map(({ peer, reason }) => `${peer}: ${reason}`);
  } catch (error) {
    if (error instanceof PropagationError) return error.failed.map(({ peer }) => peer);
    throw error;
  }
}

export async function remoteScore(
  client: Client<typeof CacheService>,
  key: string,
): Promise<number | undefined> {
  try {
    const answer = await client.get({ group: "scores", key }, { timeoutMs: 1_000 });
    if (!answer.found) return undefined;
    return Number(new TextDecoder().decode(answer.data));
  } catch (error) {
    const connectError = ConnectError.from(error);
    if (connectError.code === Code.Unavailable || connectError.code === Code.ResourceExhausted) {
      return undefined; // shed or down: the caller retries elsewhere
    }
    throw connectError;
  }
}

export function report({ group, pool }: CacheNode): string {
  const stats: GroupStats = group.stats();
  const poolStats: PoolStats = pool.stats();
  return `${group.name}: ${stats.hits}/${stats.gets} hits, ${stats.loads} loads, ${poolStats.members.length} members`;
}

export async function main(): Promise<void> {
  const members = ["127.0.0.1:8001", "127.0.0.1:8002"];
  const node = await startNode("127.0.0.1:8001", members);
  const client = createClient(
    CacheService,
    createGrpcTransport({ baseUrl: "http://127.0.0.1:8001" }),
  );
  const local: number | undefined = await score(node.group, "Tom", AbortSignal.timeout(1_000));
  const remote: number | undefined = await remoteScore(client, "Jack");
  console.log(local, remote, await forget(node.group, "Tom"), report(node));
  await node.pool.close();

  const counter = newGroup("counter", 0, () => new Uint8Array([1]), { replace: true });
  const bytes: Uint8Array = (await counter.get("x")).bytes();
  console.log(bytes.length);

  // @ts-expect-error cacheBytes is a number
  newGroup("bad", "2 KiB", getter);
  // @ts-expect-error a getter returns bytes or a string
  new Group("bad", 1024, async () => 42);
  // @ts-expect-error the peer timeout lives under `peer`
  new ConnectPool("127.0.0.1:8003", { peerTimeoutMs: 5 });
  // @ts-expect-error a view is not a string
  const notString: string = await node.group.get("Tom");
  console.log(notString);
}
