// A group's server side for other nodes: serves Fetch, Store and Invalidate on
// this node (never forwarding; as the owner it copies a Set on or fans a Delete
// out once), applying the stamp rules so no transport has to.
import { ByteView } from "./byteview.js";
import { invalidateAsOwner, replicateAsOwner } from "./cluster-writes.js";
import { InvalidKeyError, requireKey } from "./errors.js";
import type { LocalGroup } from "./local-group.js";
import type {
  PeerGetRequest,
  PeerHandler,
  PeerRemoveRequest,
  PeerStoreRequest,
  PeerStoreResult,
  PeerValue,
  RemoveResult,
} from "./peers.js";
import { NO_FAILURES } from "./propagation.js";
import type { Stamp } from "./stamps.js";

/** The {@link PeerHandler} of one group (`group.peerHandler`). */
export class GroupPeerHandler implements PeerHandler {
  constructor(private readonly local: LocalGroup) {}

  get(key: string, request: PeerGetRequest): Promise<PeerValue | undefined> {
    if (typeof key !== "string" || key.length === 0) {
      return Promise.reject(new InvalidKeyError("key is required"));
    }
    const local = this.local;
    // Read before the value: a write applied after it gets a later stamp.
    const stamp = local.clock.now();
    const hit = local.cache.get(key);
    if (hit !== undefined) return Promise.resolve({ value: ByteView.unwrap(hit), stamp });
    if (request.cacheOnly) return Promise.resolve(undefined);
    return local
      .load(key, request.signal)
      .then((view) => ({ value: ByteView.unwrap(view), stamp }));
  }

  getCached(key: string): PeerValue | undefined {
    if (typeof key !== "string" || key.length === 0) return undefined;
    const local = this.local;
    // Read before the value, as get does.
    const stamp = local.clock.now();
    const hit = local.cache.get(key);
    return hit === undefined ? undefined : { value: ByteView.unwrap(hit), stamp };
  }

  async store(key: string, value: Uint8Array, request: PeerStoreRequest): Promise<PeerStoreResult> {
    requireKey(key);
    const local = this.local;
    const { from, stamp } = request;
    if (stamp !== undefined) {
      const ahead = local.guard.aheadOf(from, stamp);
      if (request.write === true && ahead !== undefined) {
        // A write this node cannot order against what it holds from `from`
        // (a restart with a lower first epoch, or a forged stamp): keep
        // neither copy, refuse the key's copies up to the highest epoch, and
        // say so. Serving the old copy is what must never happen.
        const held = local.removeLocal(key, { from, stamp });
        local.counters.staleCopiesRefused++;
        return { failed: NO_FAILURES.failed, refused: true, ahead: held ?? ahead };
      }
      if (!local.admits(key, from, stamp)) {
        // A copy read before a write already announced: that write wins. A
        // write in that place is refused the same way, and this node keeps no
        // copy either: with the sender's epoch at its end (a forged stamp),
        // "later" can no longer be told apart, and no copy is never stale.
        if (request.write !== true) return withAhead(ahead);
        local.removeLocal(key);
        return { failed: NO_FAILURES.failed, refused: true, ahead };
      }
      if (request.write === true) local.guard.record(key, from, stamp);
      local.storeView(key, ByteView.from(value));
      return withAhead(ahead);
    }
    // Unstamped: a forwarded Set this node takes as the key's owner (or a peer
    // that does not stamp).
    const view = ByteView.from(value);
    local.storeView(key, view);
    const peers = local.peers;
    if (!request.replicate || peers === undefined) return NO_FAILURES;
    return replicateAsOwner(local, peers, key, view);
  }

  async remove(key: string, request: PeerRemoveRequest): Promise<RemoveResult> {
    requireKey(key);
    const local = this.local;
    if (request.fanOut === true) {
      return invalidateAsOwner(local, local.peers, key, request.from, request.signal);
    }
    const { from, stamp } = request;
    // Always applied, whatever the stamp: dropping a copy is never stale.
    const ahead = local.removeLocal(key, stamp === undefined ? undefined : { from, stamp });
    return ahead === undefined ? NO_FAILURES : { failed: NO_FAILURES.failed, ahead };
  }

  highestEpoch(from: string): number | undefined {
    return this.local.guard.highestEpoch(from);
  }
}

function withAhead(ahead: Stamp | undefined): PeerStoreResult {
  return ahead === undefined ? NO_FAILURES : { failed: NO_FAILURES.failed, ahead };
}
