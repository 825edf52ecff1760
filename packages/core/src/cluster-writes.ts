// The cluster write logic: how a Set or a Delete reaches every member, who
// stamps it (always the key's owner), and what is reported when a member
// cannot be reached. Used by the application API (Group.set / Group.delete)
// and by the peer handler (an owner serving a forwarded Set or Delete).
import { ByteView } from "./byteview.js";
import type { LocalGroup } from "./local-group.js";
import type { PeerClient, PeerPicker, RemoveResult } from "./peers.js";
import { NO_FAILURES, type PlannedCall, type PropagationResult, settle } from "./propagation.js";
import type { Stamp } from "./stamps.js";

/**
 * Deletes `key` everywhere from a node that is not necessarily its owner:
 * the owner stamps the invalidation and tells the others itself, so a copy it
 * handed out before cannot be kept anywhere after it.
 */
export async function deleteEverywhere(
  local: LocalGroup,
  peers: PeerPicker,
  key: string,
  signal: AbortSignal | undefined,
): Promise<PropagationResult> {
  const { owner } = peers.placement(key);
  if (owner === undefined) return invalidateAsOwner(local, peers, key, undefined, signal);
  local.removeLocal(key);
  // A client that throws at once is an owner that did not acknowledge, like a rejection.
  const asked = Promise.resolve().then(() =>
    owner.remove(local.name, key, { signal, fanOut: true }),
  );
  let answer: RemoveResult | undefined;
  try {
    answer = await asked;
  } catch {
    // Reported below, with the others' answers.
  }
  if (answer?.stamp !== undefined) {
    // Drop what landed here while the owner was invalidating: a copy read before its write.
    local.removeLocal(key, { from: owner.id, stamp: answer.stamp });
    return answer.failed.length === 0 ? NO_FAILURES : { failed: answer.failed };
  }
  // Nobody stamped it (the owner failed, or is a peer that does not fan
  // out): reach the others from here, then report the owner's failure if any.
  const calls: PlannedCall[] = [{ peer: owner, call: asked.then(() => undefined), owner: true }];
  for (const peer of peers.others()) {
    if (peer !== owner) calls.push({ peer, call: peer.remove(local.name, key, { signal }) });
  }
  try {
    return await settle("delete", calls);
  } finally {
    local.removeLocal(key);
  }
}

/**
 * As the key's owner: drops the local copy, then tells every other member
 * but `except` (the member that asked), stamped with this node's clock so
 * copies this node handed out before cannot be kept.
 *
 * @returns the stamp of the invalidation and the members that did not acknowledge.
 */
export async function invalidateAsOwner(
  local: LocalGroup,
  peers: PeerPicker | undefined,
  key: string,
  except: string | undefined,
  signal: AbortSignal | undefined,
): Promise<RemoveResult> {
  local.removeLocal(key);
  const stamp = local.clock.now();
  if (peers === undefined) return { stamp, failed: [] };
  const calls = peers
    .others()
    .filter((peer) => peer.id !== except)
    .map((peer) => ({ peer, call: peer.remove(local.name, key, { signal, stamp }) }));
  const { failed } = await settle("delete", calls);
  return { stamp, failed };
}

/**
 * Writes `view` for `key` through its owner, which copies it to its
 * replicas; every other member drops its copy.
 *
 * @throws PropagationError when the owner did not acknowledge.
 */
export function setEverywhere(
  local: LocalGroup,
  peers: PeerPicker,
  key: string,
  view: ByteView,
  signal: AbortSignal | undefined,
): Promise<PropagationResult> {
  const placement = peers.placement(key);
  const holders = new Set<PeerClient>(placement.replicas);
  const calls: PlannedCall[] = [];
  // As the owner, this node stamps the write; as another, the owner does.
  let stamp: Stamp | undefined;
  if (placement.owner === undefined) {
    local.storeView(key, view);
    const written = local.clock.now();
    stamp = written;
    for (const peer of placement.replicas) {
      calls.push({ peer, call: local.push(peer, key, view, written, true) });
    }
  } else {
    const owner = placement.owner;
    holders.add(owner);
    // Drop our copy before the owner's replication may push the new one to us.
    if (!placement.selfIsReplica) local.removeLocal(key);
    const call = owner.store(local.name, key, ByteView.unwrap(view), { replicate: true, signal });
    calls.push({ peer: owner, call, owner: true });
  }
  for (const peer of peers.others()) {
    if (holders.has(peer)) continue;
    calls.push({ peer, call: peer.remove(local.name, key, { signal, stamp }) });
  }
  return settle("set", calls);
}

/**
 * As the key's owner taking a Set another member forwarded: keeps the value
 * (done by the caller) and copies it on to the replicas, stamped now.
 */
export function replicateAsOwner(
  local: LocalGroup,
  peers: PeerPicker,
  key: string,
  view: ByteView,
): Promise<PropagationResult> {
  const written = local.clock.now();
  const calls = peers
    .placement(key)
    .replicas.map((peer) => ({ peer, call: local.push(peer, key, view, written, true) }));
  return settle("set", calls);
}
