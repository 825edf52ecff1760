// `buf curl` from the @bufbuild/buf package, run as a child process so the
// node under test (in this process) keeps serving while it waits.
import { execFile } from "node:child_process";
import { createRequire } from "node:module";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

/** The repository root (buf.yaml and proto/ live there). */
export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), "../../..");

/** Runs `buf curl ARGS` in the repository root; rejects with its stderr when it fails. */
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
