// The peer credential: the headers a member sends with every PeerService call
// and the token that proves it holds the cluster's shared secret.
import { createHmac } from "node:crypto";

/** Request header naming the calling member (its member address). */
export const PEER_HEADER = "distcache-peer";
/** Request header proving {@link PEER_HEADER}: one token per secret the sender holds, comma-separated. */
export const PEER_AUTH_HEADER = "distcache-peer-auth";
/** Most secrets a node holds at once (a rotation needs two). */
export const MAX_PEER_SECRETS = 4;
/** Shortest secret accepted, in characters: a guessable secret authenticates nobody. */
export const MIN_PEER_SECRET_LENGTH = 16;

/**
 * The token of member `address` under `secret`:
 * base64url(HMAC-SHA256(secret, "distcache-peer-v1\n" + address)). It binds
 * the address, so a member's token does not let anyone speak as another
 * member; it is the same on every call, so it must travel over TLS where the
 * network can be read (docs/operations.md, "Security").
 */
export function peerToken(secret: string, address: string): string {
  return createHmac("sha256", secret).update(`distcache-peer-v1\n${address}`).digest("base64url");
}

/**
 * The headers every peer call of member `self` carries: its address, and with
 * secrets a token per secret (every secret signs, so a receiver that holds
 * any one of them accepts the call while a rotation rolls through).
 */
export function peerCallHeaders(self: string, secrets: readonly string[]): Record<string, string> {
  const headers: Record<string, string> = { [PEER_HEADER]: self };
  if (secrets.length > 0) {
    headers[PEER_AUTH_HEADER] = secrets.map((secret) => peerToken(secret, self)).join(",");
  }
  return headers;
}
