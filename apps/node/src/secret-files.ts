// The node's credential files: peer secrets (--peer-secret-file) and client
// tokens (--client-token-file), read, checked and parsed into pool options.
import { readFileSync, statSync } from "node:fs";

/** A credential file that cannot be used; its message says why and how to fix it. */
export class CredentialFileError extends Error {}

/**
 * Reads a file that holds credentials: refused when anyone may read it
 * (mode o+r; a secret everyone can read protects nothing) or when it is empty.
 * @returns its non-blank lines, trimmed, without `#` comment lines.
 */
function readCredentialLines(flag: string, path: string): string[] {
  let text: string;
  try {
    if (process.platform !== "win32" && (statSync(path).mode & 0o004) !== 0) {
      throw new CredentialFileError(
        `${flag} ${path} is readable by every user; run: chmod o-r,g-w ${path} (e.g. chmod 600)`,
      );
    }
    text = readFileSync(path, "utf8");
  } catch (error) {
    if (error instanceof CredentialFileError) throw error;
    throw new CredentialFileError(`${flag} ${path}: ${(error as Error).message}`);
  }
  const lines = text
    .split(/\r?\n/)
    .map((line) => line.trim())
    .filter((line) => line !== "" && !line.startsWith("#"));
  if (lines.length === 0) throw new CredentialFileError(`${flag} ${path} holds no entry`);
  return lines;
}

/**
 * The peer secrets of `--peer-secret-file`: one per line (the ConnectPool
 * option `peer.secrets`: each signs and is accepted; a rotation lists two).
 */
export function readPeerSecrets(path: string): string[] {
  return readCredentialLines("--peer-secret-file", path);
}

/**
 * The client tokens of `--client-token-file`: lines `write TOKEN` or
 * `read TOKEN` (the ConnectPool option `server.clientTokens`).
 */
export function readClientTokens(path: string): { write: string[]; read: string[] } {
  const tokens = { write: [] as string[], read: [] as string[] };
  for (const [index, line] of readCredentialLines("--client-token-file", path).entries()) {
    const match = /^(write|read)\s+(\S+)$/.exec(line);
    if (match === null) {
      throw new CredentialFileError(
        `--client-token-file ${path}: entry ${index + 1} is not "write TOKEN" or "read TOKEN"`,
      );
    }
    tokens[match[1] as "write" | "read"].push(match[2]!);
  }
  return tokens;
}
