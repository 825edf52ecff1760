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
  PeerValue,
  RemoveResult,
} from "./peers.js";
import { NO_FAILURES, type PropagationResult } from "./propagation.js";

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

  async store(
    key: string,
    value: Uint8Array,
    request: PeerStoreRequest,
  ): Promise<PropagationResult> {
    requireKey(key);
    const local = this.local;
    const { from, stamp } = request;
    if (!local.admits(key, from, stamp)) return NO_FAILURES;
    if (stamp !== undefined && request.write === true) local.guard.record(key, from, stamp);
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
    local.removeLocal(key, stamp === undefined ? undefined : { from, stamp });
    return NO_FAILURES;
  }
}
