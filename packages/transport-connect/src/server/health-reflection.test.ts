// grpc.health.v1.Health and gRPC server reflection on a real node, through
// clients that share no code with it: @grpc/grpc-js with health.proto and
// reflection.proto loaded at run time, and `buf curl` with no .proto at hand.
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fromBinary } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import { Group } from "@distcache/core";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { afterEach, describe, expect, it } from "vitest";
import { freePort } from "../../../../scripts/lib/ports.mjs";
import { bufCurl, repoRoot } from "../buf-curl.test-util.js";
import type { ConnectPoolOptions } from "../options.js";
import { ConnectPool } from "../pool.js";
import { MAX_WATCHES } from "./health.js";

const protoDir = join(repoRoot, "proto");
const LOADER = { keepCase: true, longs: String, enums: String, defaults: true, oneofs: true };

type Callback<T> = (error: grpc.ServiceError | null, response?: T) => void;
interface HealthClient extends grpc.Client {
  Check(request: { service: string }, callback: Callback<{ status: string }>): void;
  Watch(request: { service: string }): grpc.ClientReadableStream<{ status: string }>;
}
interface ReflectionResponse {
  message_response: string;
  list_services_response?: { service: { name: string }[] };
  file_descriptor_response?: { file_descriptor_proto: Buffer[] };
  error_response?: { error_code: number; error_message: string };
  all_extension_numbers_response?: { base_type_name: string; extension_number: number[] };
}
interface ReflectionClient extends grpc.Client {
  ServerReflectionInfo(): grpc.ClientDuplexStream<Record<string, unknown>, ReflectionResponse>;
}

function load<T>(file: string, path: string[], port: number): T {
  const loaded = grpc.loadPackageDefinition(
    protoLoader.loadSync(join(protoDir, file), LOADER),
  ) as unknown as Record<string, unknown>;
  let Ctor: unknown = loaded;
  for (const part of path) Ctor = (Ctor as Record<string, unknown>)[part];
  return new (Ctor as grpc.ServiceClientConstructor)(
    `127.0.0.1:${port}`,
    grpc.credentials.createInsecure(),
  ) as unknown as T;
}

const healthClient = (port: number) =>
  load<HealthClient>("grpc/health/v1/health.proto", ["grpc", "health", "v1", "Health"], port);

const check = (client: HealthClient, service: string) =>
  new Promise<{ status?: string; code?: grpc.status }>((resolve) =>
    client.Check({ service }, (error, response) =>
      resolve(error ? { code: error.code } : { status: response!.status }),
    ),
  );

const pools: ConnectPool[] = [];
const clients: grpc.Client[] = [];
afterEach(async () => {
  for (const client of clients.splice(0)) client.close();
  await Promise.all(pools.splice(0).map((pool) => pool.close()));
});

async function startNode(options: ConnectPoolOptions = {}, setPeers = true) {
  const port = await freePort();
  const address = `127.0.0.1:${port}`;
  const pool = new ConnectPool(address, {
    ...options,
    server: { drainTimeoutMs: 2_000, ...options.server },
  });
  pools.push(pool);
  const group = new Group("scores", 1 << 20, (key) => ({ Tom: "630" })[key] ?? "none");
  group.registerPeers(pool);
  if (setPeers) pool.setPeers(address);
  await pool.serve();
  return { pool, port, address };
}

describe("grpc.health.v1.Health", () => {
  it("answers Check for the node and each service, NOT_FOUND for others", async () => {
    const { port } = await startNode();
    const client = healthClient(port);
    clients.push(client);
    expect(await check(client, "")).toEqual({ status: "SERVING" });
    expect(await check(client, "distcache.CacheService")).toEqual({ status: "SERVING" });
    expect(await check(client, "distcache.peer.v1.PeerService")).toEqual({ status: "SERVING" });
    expect(await check(client, "no.such.Service")).toEqual({ code: grpc.status.NOT_FOUND });
  });

  it("is NOT_SERVING until the member list is loaded", async () => {
    const { pool, port, address } = await startNode({}, false);
    const client = healthClient(port);
    clients.push(client);
    expect(await check(client, "")).toEqual({ status: "NOT_SERVING" });
    pool.setPeers(address);
    expect(await check(client, "")).toEqual({ status: "SERVING" });
  });

  it("Watch sees NOT_SERVING as close() begins, then the stream ends with OK", async () => {
    const { pool, port } = await startNode();
    const client = healthClient(port);
    clients.push(client);
    const seen: string[] = [];
    const watch = client.Watch({ service: "" });
    const unknown = client.Watch({ service: "no.such.Service" });
    const unknownSeen: string[] = [];
    unknown.on("data", (message: { status: string }) => unknownSeen.push(message.status));
    unknown.on("error", () => {});
    const ended = new Promise<grpc.StatusObject>((resolve) => {
      watch.on("data", (message: { status: string }) => seen.push(message.status));
      watch.on("status", resolve);
      watch.on("error", () => {});
    });
    await until(() => seen.length === 1 && unknownSeen.length === 1);
    expect(seen).toEqual(["SERVING"]);
    expect(unknownSeen).toEqual(["SERVICE_UNKNOWN"]);
    const events: string[] = [];
    pool.on("draining", () => events.push("draining"));
    pool.on("stopped", () => events.push("stopped"));
    pools.splice(pools.indexOf(pool), 1);
    await pool.close();
    const status = await ended;
    expect(seen).toEqual(["SERVING", "NOT_SERVING"]);
    expect(status.code).toBe(grpc.status.OK);
    expect(events).toEqual(["draining", "stopped"]);
  });

  it(`refuses a Watch past ${MAX_WATCHES} open ones (each holds a request slot), and frees slots as they end`, async () => {
    const { pool, port } = await startNode();
    const client = healthClient(port);
    clients.push(client);
    const calls: grpc.ClientReadableStream<{ status: string }>[] = [];
    let first = 0;
    for (let i = 0; i < MAX_WATCHES; i++) {
      const call = client.Watch({ service: "" });
      call.on("data", () => first++);
      call.on("error", () => {});
      calls.push(call);
    }
    await until(() => first === MAX_WATCHES);
    const refused = await new Promise<grpc.StatusObject>((resolve) => {
      const call = client.Watch({ service: "" });
      call.on("data", () => {});
      call.on("error", () => {});
      call.on("status", resolve);
    });
    expect(refused.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
    expect(await check(client, "")).toEqual({ status: "SERVING" });
    for (const call of calls) call.cancel();
    await until(() => pool.stats().guard.inFlight === 0);
    const again = client.Watch({ service: "" });
    const status = await new Promise<string>((resolve) =>
      again.once("data", (m: { status: string }) => resolve(m.status)),
    );
    expect(status).toBe("SERVING");
    again.cancel();
    again.on("error", () => {});
  });

  it("is absent with server.health: false", async () => {
    const { port } = await startNode({ server: { health: false } });
    const client = healthClient(port);
    clients.push(client);
    expect(await check(client, "")).toEqual({ code: grpc.status.UNIMPLEMENTED });
  });
});

describe("gRPC server reflection", () => {
  function reflect(port: number, version: "v1" | "v1alpha", requests: Record<string, unknown>[]) {
    const client = load<ReflectionClient>(
      `grpc/reflection/${version}/reflection.proto`,
      ["grpc", "reflection", version, "ServerReflection"],
      port,
    );
    clients.push(client);
    return new Promise<ReflectionResponse[]>((resolve, reject) => {
      const answers: ReflectionResponse[] = [];
      const call = client.ServerReflectionInfo();
      call.on("data", (answer: ReflectionResponse) => {
        answers.push(answer);
        if (answers.length === requests.length) call.end();
      });
      call.on("error", reject);
      call.on("end", () => resolve(answers));
      for (const request of requests) call.write(request);
    });
  }

  const SERVICES = [
    "distcache.CacheService",
    "distcache.peer.v1.PeerService",
    "grpc.health.v1.Health",
    "grpc.reflection.v1.ServerReflection",
    "grpc.reflection.v1alpha.ServerReflection",
  ];

  for (const version of ["v1", "v1alpha"] as const) {
    it(`${version}: lists services, finds files by name and by symbol, errors for unknown ones`, async () => {
      const { port } = await startNode();
      const answers = await reflect(port, version, [
        { list_services: "" },
        { file_containing_symbol: "distcache.CacheService" },
        { file_containing_symbol: "distcache.peer.v1.PeerService.FetchMany" },
        { file_by_filename: "grpc/health/v1/health.proto" },
        { file_containing_symbol: "distcache.NoSuchThing" },
        { file_by_filename: "<script>.proto" },
        { all_extension_numbers_of_type: "distcache.GetRequest" },
        {
          file_containing_extension: {
            containing_type: "distcache.GetRequest",
            extension_number: 9,
          },
        },
        { file_containing_symbol: ".distcache.GetResponse.found" },
        { host: "asks nothing" },
      ]);
      expect(answers).toHaveLength(10);
      expect(answers[0]!.list_services_response!.service.map((s) => s.name)).toEqual(SERVICES);
      const fileNames = (answer: ReflectionResponse) =>
        answer.file_descriptor_response!.file_descriptor_proto.map(
          (bytes) => fromBinary(FileDescriptorProtoSchema, bytes).name,
        );
      expect(fileNames(answers[1]!)).toEqual(["distcache/cache.proto"]);
      expect(fileNames(answers[2]!)).toEqual(["distcache/peer/v1/peer.proto"]);
      expect(answers[3]!.error_response).toBeUndefined();
      expect(fileNames(answers[3]!)).toEqual(["grpc/health/v1/health.proto"]);
      const cache = fromBinary(
        FileDescriptorProtoSchema,
        answers[1]!.file_descriptor_response!.file_descriptor_proto[0]!,
      );
      expect(cache.service.map((s) => s.name)).toEqual(["CacheService"]);
      expect(cache.service[0]!.method.map((m) => m.name)).toEqual(["Get", "Set", "Delete"]);
      expect(answers[4]!.error_response!.error_code).toBe(grpc.status.NOT_FOUND);
      expect(answers[4]!.error_response!.error_message).toContain("distcache.NoSuchThing");
      expect(answers[5]!.error_response!.error_code).toBe(grpc.status.NOT_FOUND);
      expect(answers[6]!.all_extension_numbers_response).toEqual({
        base_type_name: "distcache.GetRequest",
        extension_number: [],
      });
      expect(answers[7]!.error_response!.error_code).toBe(grpc.status.NOT_FOUND);
      expect(fileNames(answers[8]!)).toEqual(["distcache/cache.proto"]);
      expect(answers[9]!.error_response!.error_code).toBe(grpc.status.INVALID_ARGUMENT);
    });
  }

  it("serves buf curl --list-services and --reflect with no .proto at hand", async () => {
    const { port } = await startNode();
    // An empty folder: buf finds no buf.yaml and no .proto, so the schema can only come from the node.
    const empty = await mkdtemp(join(tmpdir(), "distcache-reflect-"));
    try {
      const listed = await bufCurl(
        ["--list-services", "--http2-prior-knowledge", `http://127.0.0.1:${port}`],
        empty,
      );
      expect(listed.stdout.trim().split("\n")).toEqual(SERVICES);
      const got = await bufCurl(
        [
          "--reflect",
          "--protocol",
          "grpc",
          "--http2-prior-knowledge",
          "-d",
          '{"group":"scores","key":"Tom"}',
          `http://127.0.0.1:${port}/distcache.CacheService/Get`,
        ],
        empty,
      );
      expect(JSON.parse(got.stdout)).toEqual({
        data: Buffer.from("630").toString("base64"),
        found: true,
      });
    } finally {
      await rm(empty, { recursive: true, force: true });
    }
  });

  it("is absent with server.reflection: false", async () => {
    const { port } = await startNode({ server: { reflection: false } });
    await expect(reflect(port, "v1", [{ list_services: "" }])).rejects.toMatchObject({
      code: grpc.status.UNIMPLEMENTED,
    });
  });
});

async function until(condition: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error("condition not met in time");
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}
