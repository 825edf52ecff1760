// Bearer tokens of clients: which token may write (Set, Delete) and which may
// only read (Get), checked from the `authorization` header in constant time.
import { createHash, timingSafeEqual } from "node:crypto";
import { Code } from "@connectrpc/connect";
import type { AuthCounters, Refusal } from "./peer-identity.js";

/** What a client call needs: `read` for Get, `write` for Set and Delete. */
export type ClientScope = "read" | "write";

/** A token's SHA-256 and what it grants (a write token reads too). */
interface KnownToken {
  readonly digest: Buffer;
  readonly scope: ClientScope;
}

function digest(token: string): Buffer {
  return createHash("sha256").update(token).digest();
}

/**
 * The client tokens of one server. Set and Delete need a `write` token; Get
 * needs a `read` or `write` token only when at least one `read` token is
 * configured ({@link guardsReads}). Tokens are compared as SHA-256 digests
 * with `timingSafeEqual`, every known token each time, so the time taken
 * says nothing about how close a guess came.
 */
export class ClientTokens {
  private readonly known: readonly KnownToken[];
  /** Whether Get needs a token (some `read` token is configured). */
  readonly guardsReads: boolean;

  constructor(
    tokens: { readonly write: readonly string[]; readonly read: readonly string[] },
    private readonly counts: AuthCounters,
  ) {
    this.known = [
      ...tokens.write.map((token) => ({ digest: digest(token), scope: "write" as const })),
      ...tokens.read.map((token) => ({ digest: digest(token), scope: "read" as const })),
    ];
    this.guardsReads = tokens.read.length > 0;
  }

  /**
   * Checks a call needing `scope` given its `authorization` header:
   * UNAUTHENTICATED without a known bearer token, PERMISSION_DENIED for a
   * read token on a write. `undefined`: allowed.
   */
  check(authorization: string | undefined, scope: ClientScope): Refusal | undefined {
    const match =
      typeof authorization === "string" ? /^Bearer +(\S{1,4096})\s*$/i.exec(authorization) : null;
    if (match === null) {
      this.counts.clientUnauthenticated++;
      return [
        Code.Unauthenticated,
        `${scope === "write" ? "writes" : "reads"} need a token: authorization: Bearer <token>`,
      ];
    }
    const presented = digest(match[1]!);
    let granted: ClientScope | undefined;
    for (const token of this.known) {
      if (timingSafeEqual(presented, token.digest) && granted !== "write") granted = token.scope;
    }
    if (granted === undefined) {
      this.counts.clientUnauthenticated++;
      return [Code.Unauthenticated, "unknown client token"];
    }
    if (scope === "write" && granted !== "write") {
      this.counts.clientPermissionDenied++;
      return [Code.PermissionDenied, "this token may read, not write"];
    }
    return undefined;
  }
}
