// Secure by default: a node whose members or listen address leave the
// loopback interface must authenticate its peer plane, or say it will not.
import { isIP } from "node:net";
import { parseAddress } from "../address.js";

/** How the peer plane is protected, as resolved from the options. */
export interface PeerPlaneSecurity {
  /** Peer secrets configured. */
  readonly secrets: number;
  /** Mutual TLS configured (a CA given with cert and key). */
  readonly mtls: boolean;
  /** `peer.insecure`: run unauthenticated anyway. */
  readonly insecure: boolean;
}

/** Whether `host` can only be reached from this machine: localhost, 127.0.0.0/8, ::1. */
export function isLoopbackHost(host: string): boolean {
  const bare = host.toLowerCase();
  if (bare === "localhost" || bare.endsWith(".localhost")) return true;
  if (isIP(bare) === 4) return bare.startsWith("127.");
  if (isIP(bare) === 6) {
    if (bare === "::1" || /^(0{1,4}:){7}0{0,3}1$/.test(bare)) return true;
    const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(bare);
    return mapped !== null && mapped[1]!.startsWith("127.");
  }
  return false;
}

/** A node that would run an unauthenticated peer plane beyond loopback; the message says how to fix it. */
export class InsecurePeerPlaneError extends Error {
  override readonly name = "InsecurePeerPlaneError";
}

/**
 * Throws when `addresses` (members, or the listen address) name a host that
 * is not loopback while the peer plane has no authentication and was not
 * declared insecure. The message says how to fix it.
 * @throws InsecurePeerPlaneError naming the first such address and the three ways out.
 */
export function checkPeerPlane(addresses: Iterable<string>, security: PeerPlaneSecurity): void {
  if (security.secrets > 0 || security.mtls || security.insecure) return;
  for (const address of addresses) {
    if (isLoopbackHost(parseAddress(address).host)) continue;
    throw new InsecurePeerPlaneError(
      `refusing an unauthenticated peer plane: "${address}" is not a loopback address, so ` +
        "anyone who reaches the port could write into and read from the cache as a peer. " +
        "Give every node the same peer secret (--peer-secret-file FILE; library: " +
        "peer.secrets), or mutual TLS (--tls-cert, --tls-key, --tls-ca; library: tls with ca), " +
        "or accept the risk explicitly with --insecure-peers (library: peer.insecure: true). " +
        'See docs/operations.md, "Security".',
    );
  }
}
