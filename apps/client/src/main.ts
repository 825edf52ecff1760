#!/usr/bin/env node
// distcache: a command-line client for any DistCache node (or the reference's).
// Runs cli.ts on this process's arguments; exit 0 found / done, 1 not found, 2 error.
import { run } from "./cli.js";

process.exitCode = await run(process.argv.slice(2), {
  stdout: (data) => process.stdout.write(data),
  stderr: (line) => process.stderr.write(`${line}\n`),
});
