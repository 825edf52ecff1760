// Who may make a peer request: the members, each proving its address with a
// token of the shared secret and/or a client certificate naming its host.
// Checked from the headers at admission, then the body's sender against them.
import { timingSafeEqual } from "node:crypto";
import type * as http2 from "node:http2";
import { checkServerIdentity, type TLSSocket } from "node:tls";
import { Code, ConnectError } from "@connectrpc/connect";
import { parseAddress } from "../address.js";
import { PEER_AUTH_HEADER, PEER_HEADER, peerToken } from "../auth/peer-token.js";

/** Longest `distcache-peer` header accepted (a member address is far shorter). */
const MAX_PEER_HEADER_LENGTH = 512;

/** A refusal at admission: the status and its message. */
export type Refusal = readonly [Code, string];

/** Counters of refused requests; see `PoolStats.auth`. */
export interface AuthStats {
  /** Peer calls without valid credentials (no or wrong token, no client certificate): UNAUTHENTICATED. */
  readonly peerUnauthenticated: number;
  /**
   * Peer calls from a caller that is not a member, whose certificate names
   * another host, or whose body names another sender than its headers: PERMISSION_DENIED.
   */
  readonly peerPermissionDenied: number;
  /** Client calls without a valid bearer token where one is required: UNAUTHENTICATED. */
  readonly clientUnauthenticated: number;
  /** Client calls whose token lacks the scope (a read token on Set or Delete): PERMISSION_DENIED. */
  readonly clientPermissionDenied: number;
}

/** Mutable {@link AuthStats}, shared by the checks of one server. */
export type AuthCounters = { -readonly [K in keyof AuthStats]: number };

/** Counters that have counted nothing yet. */
export function noAuthCounts(): AuthCounters {
  return {
    peerUnauthenticated: 0,
    peerPermissionDenied: 0,
    clientUnauthenticated: 0,
    clientPermissionDenied: 0,
  };
}

/**
 * The members of this node's cluster and how a peer request proves it comes
 * from one. With secrets, the expected token of every member is computed when
 * the members change, so a check is a Map lookup and a constant-time compare.
 * With `mtls`, the TLS layer has verified the client certificate against the
 * CA; this checks it names the host of the claimed member address.
 */
export class PeerIdentity {
  private members = new Set<string>();
  /** Each member's expected token under each secret. */
  private expected = new Map<string, Buffer[]>();
  /** Per TLS session: the member address its certificate was found to match. */
  private readonly certified = new WeakMap<http2.ServerHttp2Session, string>();

  constructor(
    private secrets: readonly string[],
    private readonly mtls: boolean,
    private readonly counts: AuthCounters,
  ) {}

  /**
   * Replaces the accepted secrets (a rotation step). Secrets can be replaced,
   * not turned on or off: the server decided at start whether calls are checked.
   * @throws Error for an empty list when there were secrets, or the reverse.
   */
  setSecrets(secrets: readonly string[]): void {
    if (secrets.length > 0 !== this.secrets.length > 0) {
      throw new Error("peer secrets can be replaced, not turned on or off, while a node runs");
    }
    this.secrets = secrets;
    this.setMembers(this.members);
  }

  /** Whether peer calls must carry credentials (a secret or mutual TLS is configured). */
  get required(): boolean {
    return this.secrets.length > 0 || this.mtls;
  }

  /** Replaces the members (this node included) and their expected tokens. */
  setMembers(members: Iterable<string>): void {
    this.members = new Set(members);
    const expected = new Map<string, Buffer[]>();
    if (this.secrets.length > 0) {
      for (const member of this.members) {
        expected.set(
          member,
          this.secrets.map((secret) => Buffer.from(peerToken(secret, member))),
        );
      }
    }
    this.expected = expected;
  }

  /**
   * Checks a peer call's credentials from its headers alone (its body is not
   * read): UNAUTHENTICATED without valid ones, PERMISSION_DENIED for a caller
   * that proves an address which is not a member (or a certificate of
   * another host). `undefined`: admitted. Only called when {@link required}.
   * `recount: false` checks an open stream again (after a secret rotation)
   * without counting a refusal: no call is refused by it.
   */
  admit(
    headers: http2.IncomingHttpHeaders,
    session: http2.ServerHttp2Session | undefined,
    recount = true,
  ): Refusal | undefined {
    const refusal = this.check(headers, session);
    if (refusal !== undefined && recount) {
      if (refusal[0] === Code.Unauthenticated) this.counts.peerUnauthenticated++;
      else this.counts.peerPermissionDenied++;
    }
    return refusal;
  }

  /** The refusal of a peer call's credentials, uncounted (see {@link admit}). */
  private check(
    headers: http2.IncomingHttpHeaders,
    session: http2.ServerHttp2Session | undefined,
  ): Refusal | undefined {
    const address = headers[PEER_HEADER];
    if (typeof address !== "string" || address === "" || address.length > MAX_PEER_HEADER_LENGTH) {
      return this.unauthenticated(`peer call without credentials: no ${PEER_HEADER} header`);
    }
    if (this.secrets.length > 0) {
      const refusal = this.checkToken(address, headers[PEER_AUTH_HEADER]);
      if (refusal !== undefined) return refusal;
    }
    if (this.mtls) {
      const refusal = this.checkCertificate(address, session);
      if (refusal !== undefined) return refusal;
    }
    if (!this.members.has(address)) return this.notMember(address);
    return undefined;
  }

  /**
   * Checks the sender a peer request's body names, given its `distcache-peer`
   * header: with credentials required, it must be the address the headers
   * proved; without, it must at least be a member. Throws PERMISSION_DENIED.
   */
  checkSender(address: string, header: string | null | undefined): void {
    if (this.required) {
      if (address === header) return;
      this.counts.peerPermissionDenied++;
      throw new ConnectError(
        `sender "${clip(address)}" is not the authenticated peer "${clip(header ?? "")}"`,
        Code.PermissionDenied,
      );
    }
    if (this.members.has(address)) return;
    this.counts.peerPermissionDenied++;
    throw new ConnectError(
      `sender "${clip(address)}" is not a member of this node's cluster`,
      Code.PermissionDenied,
    );
  }

  private checkToken(address: string, header: string | string[] | undefined): Refusal | undefined {
    if (typeof header !== "string" || header === "") {
      return this.unauthenticated(`peer call without credentials: no ${PEER_AUTH_HEADER} header`);
    }
    const presented = header.length <= 44 ? [header] : header.split(",", 8);
    let expected = this.expected.get(address);
    // Not a member: worth an HMAC to tell a member of another membership
    // (PERMISSION_DENIED) from a caller without the secret (UNAUTHENTICATED).
    expected ??= this.secrets.map((secret) => Buffer.from(peerToken(secret, address)));
    for (const token of presented) {
      const bytes = Buffer.from(token);
      for (const want of expected) {
        if (bytes.length === want.length && timingSafeEqual(bytes, want)) return undefined;
      }
    }
    return this.unauthenticated(
      "peer call with wrong credentials (no token matches a secret of this node)",
    );
  }

  private checkCertificate(
    address: string,
    session: http2.ServerHttp2Session | undefined,
  ): Refusal | undefined {
    const socket = session?.socket as TLSSocket | undefined;
    if (socket === undefined || socket.authorized !== true) {
      return this.unauthenticated(
        "peer call without a client certificate signed by the cluster's CA",
      );
    }
    if (this.certified.get(session!) === address) return undefined;
    let host: string;
    try {
      host = parseAddress(address).host;
    } catch {
      return this.notMember(address);
    }
    const mismatch = checkServerIdentity(host, socket.getPeerCertificate());
    if (mismatch !== undefined) {
      return [
        Code.PermissionDenied,
        `the client certificate does not name the sender's host "${clip(host)}"`,
      ];
    }
    this.certified.set(session!, address);
    return undefined;
  }

  private unauthenticated(message: string): Refusal {
    return [Code.Unauthenticated, message];
  }

  private notMember(address: string): Refusal {
    return [
      Code.PermissionDenied,
      `peer "${clip(address)}" is not a member of this node's cluster`,
    ];
  }
}

/** At most 100 characters of a peer-supplied string, for an error message. */
function clip(text: string): string {
  return text.length > 100 ? `${text.slice(0, 100)}…` : text;
}
