// Clients that share no code with the node, for the interop, auth and TLS
// tests: grpc-js service constructors from a .proto parsed at run time, and
// `buf curl`.
import { execFile } from "node:child_process";
import { createRequire } from "node:module";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";

export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), "../../..");
export const protoDir = join(repoRoot, "proto");

/**
 * The grpc-js client constructor of `service` (e.g. "distcache.peer.v1.PeerService")
 * from `proto` (a path under proto/), loaded at run time with keepCase.
 */
export function grpcServiceFromProto(
  proto: string,
  service: string,
): grpc.ServiceClientConstructor {
  const definition = protoLoader.loadSync(join(protoDir, proto), {
    keepCase: true,
    longs: String,
    enums: String,
    defaults: true,
    oneofs: true,
  });
  let found: unknown = grpc.loadPackageDefinition(definition);
  for (const part of service.split(".")) found = (found as Record<string, unknown>)[part];
  return found as grpc.ServiceClientConstructor;
}

/**
 * Runs `buf curl ARGS` in `cwd` (default: the repository root, where buf.yaml
 * and proto/ live) without blocking the event loop (the server runs in this
 * process); rejects with its stderr when it fails.
 */
export function bufCurl(
  args: string[],
  cwd: string = repoRoot,
): Promise<{ stdout: string; stderr: string }> {
  const require = createRequire(import.meta.url);
  const pkg = require.resolve("@bufbuild/buf/package.json");
  const bin = (require(pkg) as { bin: Record<string, string> }).bin.buf!;
  const script = join(dirname(pkg), bin);
  return new Promise((ok, fail) => {
    execFile(
      process.execPath,
      [script, "curl", ...args],
      { cwd, timeout: 60_000 },
      (error, stdout, stderr) => {
        if (error) fail(new Error(`buf curl failed: ${error.message}\n${stderr}`));
        else ok({ stdout, stderr });
      },
    );
  });
}
