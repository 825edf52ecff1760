#!/usr/bin/env node
/**
 * distcache: a command-line client for any DistCache node (or the reference's).
 * Exit codes: 0 found / success, 1 not found, 2 error.
 */
import { parseArgs } from "node:util";
import { type Client, ConnectError, createClient, type Transport } from "@connectrpc/connect";
import {
  createConnectTransport,
  createGrpcTransport,
  createGrpcWebTransport,
} from "@connectrpc/connect-node";
import { CacheService } from "@distcache/transport-connect";

const usage = `Usage: distcache [--addr HOST:PORT] [--protocol grpc|grpc-web|connect] [--timeout MS] COMMAND

  get GROUP KEY            print the value (exit 1 if not found)
  set GROUP KEY VALUE      write a value through the key's owner
  delete GROUP KEY         remove a key from every node
  demo                     the reference's client scenario (Get Tom/Jack/Sam, Delete Tom, Get Tom)

  --addr HOST:PORT         any node (default localhost:8001)
  --protocol NAME          grpc (default), grpc-web or connect
  --timeout MS             deadline per call (default 2000)`;

const EXIT = { ok: 0, notFound: 1, error: 2 } as const;

function transportFor(protocol: string, baseUrl: string): Transport {
  switch (protocol) {
    case "grpc":
      return createGrpcTransport({ baseUrl });
    case "grpc-web":
      return createGrpcWebTransport({ baseUrl, httpVersion: "2" });
    case "connect":
      return createConnectTransport({ baseUrl, httpVersion: "2" });
    default:
      throw new Error(`unknown protocol "${protocol}"`);
  }
}

function describeError(error: unknown): string {
  if (error instanceof ConnectError) return error.message;
  return error instanceof Error ? error.message : String(error);
}

async function demo(client: Client<typeof CacheService>, timeoutMs: number): Promise<number> {
  let status: number = EXIT.ok;
  console.log("=== Test Get ===");
  for (const key of ["Tom", "Jack", "Sam"]) {
    try {
      const response = await client.get({ group: "scores", key }, { timeoutMs });
      if (response.found) console.log(`✅ ${key}: ${new TextDecoder().decode(response.data)}`);
      else {
        console.log(`❌ ${key}: not found (${response.err})`);
        status = EXIT.notFound;
      }
    } catch (error) {
      console.log(`❌ Get(${key}) failed: ${describeError(error)}`);
      status = EXIT.error;
    }
  }
  console.log("\n=== Test Delete ===");
  try {
    const response = await client.delete({ group: "scores", key: "Tom" }, { timeoutMs });
    if (response.success) console.log("✅ Deleted Tom");
    else {
      console.log(`❌ Delete failed: ${response.err}`);
      status = EXIT.error;
    }
  } catch (error) {
    console.log(`❌ Delete failed: ${describeError(error)}`);
    status = EXIT.error;
  }
  console.log("\n=== Verify reload ===");
  try {
    const response = await client.get({ group: "scores", key: "Tom" }, { timeoutMs });
    if (response.found) {
      console.log(`✅ Tom reloaded: ${new TextDecoder().decode(response.data)} (from source)`);
    } else {
      console.log(`❌ Tom: not found (${response.err})`);
      status = EXIT.notFound;
    }
  } catch (error) {
    console.log(`❌ Get(Tom) failed: ${describeError(error)}`);
    status = EXIT.error;
  }
  return status;
}

async function main(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    options: {
      addr: { type: "string", default: "localhost:8001" },
      protocol: { type: "string", default: "grpc" },
      timeout: { type: "string", default: "2000" },
      help: { type: "boolean", default: false },
    },
    allowPositionals: true,
  });
  if (values.help || positionals.length === 0) {
    console.log(usage);
    return values.help ? EXIT.ok : EXIT.error;
  }
  const timeoutMs = Number(values.timeout);
  if (!Number.isInteger(timeoutMs) || timeoutMs <= 0)
    throw new Error("--timeout must be a positive integer");
  const host = values.addr.startsWith("http") ? values.addr : `http://${values.addr}`;
  const client = createClient(CacheService, transportFor(values.protocol, host));
  const [command, group, key, value] = positionals;
  const need = (count: number) => {
    if (positionals.length !== count)
      throw new Error(`${command} takes ${count - 1} arguments\n\n${usage}`);
  };
  switch (command) {
    case "demo":
      need(1);
      return demo(client, timeoutMs);
    case "get": {
      need(3);
      const response = await client.get({ group, key }, { timeoutMs });
      if (response.found) {
        process.stdout.write(response.data);
        process.stdout.write("\n");
        return EXIT.ok;
      }
      console.error(`not found: ${response.err}`);
      return EXIT.notFound;
    }
    case "set": {
      need(4);
      const response = await client.set(
        { group, key, data: new TextEncoder().encode(value) },
        { timeoutMs },
      );
      if (!response.success) throw new Error(response.err);
      if (response.err !== "") console.error(`warning: ${response.err}`);
      return EXIT.ok;
    }
    case "delete": {
      need(3);
      const response = await client.delete({ group, key }, { timeoutMs });
      if (!response.success) throw new Error(response.err);
      if (response.err !== "") console.error(`warning: ${response.err}`);
      return EXIT.ok;
    }
    default:
      throw new Error(`unknown command "${command}"\n\n${usage}`);
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    console.error(`distcache: ${describeError(error)}`);
    process.exitCode = EXIT.error;
  },
);
