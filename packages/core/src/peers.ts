/**
 * How a group reaches other nodes. `core` knows no network: a transport (for
 * example `@distcache/transport-connect`) implements these two interfaces and
 * a group registered with it routes misses, deletes and sets through them.
 *
 * The contract that keeps a cluster loop-free: every call a group makes on a
 * {@link PeerClient} is a *peer request*, and the node receiving it serves it
 * from its own cache or its own getter (see {@link Group.getLocal} and the
 * other `*Local` methods) — it never forwards it again.
 */

import type { Group, PropagationResult } from "./group.js";
import type { Stamp } from "./stamps.js";

/** Per-call options for {@link PeerClient} methods. */
export interface PeerCallOptions {
  /** Aborts the call (the caller's deadline, or every waiter gone). */
  signal?: AbortSignal;
}

/** Options for {@link PeerClient.get}. */
export interface PeerGetOptions extends PeerCallOptions {
  /**
   * `false` (asking the owner): the peer answers from its cache or loads with
   * its getter. `true` (asking a replica): the peer answers from its cache
   * only, and `undefined` when it holds no copy.
   */
  cacheOnly: boolean;
}

/** A value as a peer handed it out. */
export interface PeerValue {
  readonly value: Uint8Array;
  /**
   * The peer's write stamp when it read the value (see `stamps.ts`). A node
   * keeps the copy only if the peer announced no later write of the key.
   * Absent from transports that do not carry stamps.
   */
  readonly stamp?: Stamp | undefined;
}

/** Options for {@link PeerClient.store}. */
export interface PeerStoreOptions extends PeerCallOptions {
  /** The receiver is the key's owner taking a client Set: copy it on to the replicas. */
  replicate: boolean;
  /** The sender's write stamp for this copy (its clock when it read or wrote the value). */
  stamp?: Stamp | undefined;
  /** The value is a write (a client Set), not a load: older copies must not replace it. */
  write?: boolean | undefined;
}

/** Options for {@link PeerClient.remove}. */
export interface PeerRemoveOptions extends PeerCallOptions {
  /** The sender is the key's owner and this is its write stamp for the invalidation. */
  stamp?: Stamp | undefined;
  /**
   * The receiver is the key's owner: invalidate, then tell every other member
   * except the sender, with its own stamp. Resolves with that stamp and the
   * members it could not reach.
   */
  fanOut?: boolean | undefined;
}

/** What an owner answers to a fanned-out {@link PeerClient.remove}. */
export interface RemoveResult extends PropagationResult {
  /** The owner's write stamp of the invalidation. */
  readonly stamp?: Stamp | undefined;
}

/** One other node of the cluster. */
export interface PeerClient {
  /** The peer's identity on the ring, e.g. `"127.0.0.1:8002"`. */
  readonly id: string;
  /**
   * The value of `key` in `group` on that peer.
   * @returns the bytes and the peer's stamp, or `undefined` when `cacheOnly`
   *   and the peer has no copy.
   * @throws NotFoundError or RemoteLoadError when the peer's getter failed;
   *   any other error means the peer could not be asked (down, timed out).
   */
  get(group: string, key: string, options: PeerGetOptions): Promise<PeerValue | undefined>;
  /**
   * Stores a copy of `value` in the peer's cache. With `replicate`, the peer
   * acts as the key's owner and copies the value on to its replicas (a client
   * Set), and resolves with the replicas it could not reach; without, it only
   * keeps the copy (the owner's replication push).
   */
  store(
    group: string,
    key: string,
    value: Uint8Array,
    options: PeerStoreOptions,
  ): Promise<PropagationResult | undefined>;
  /**
   * Drops the peer's copy of `key`, and voids any load of it in flight there.
   * With `fanOut`, the peer (the key's owner) also tells the other members.
   */
  remove(
    group: string,
    key: string,
    options?: PeerRemoveOptions,
  ): Promise<RemoveResult | undefined>;
}

/** Where a key lives, as this node sees the ring. */
export interface Placement {
  /** The key's owner; `undefined` when this node is the owner. */
  readonly owner: PeerClient | undefined;
  /** The replica holders after the owner, in ring order, without this node. */
  readonly replicas: readonly PeerClient[];
  /** Whether this node is one of the key's replica holders. */
  readonly selfIsReplica: boolean;
}

/** The membership as a group sees it. */
export interface PeerPicker {
  /** Where `key` lives. Called on every miss, delete and set. */
  placement(key: string): Placement;
  /** Every member except this node (the audience of an invalidation). */
  others(): readonly PeerClient[];
  /**
   * Told by {@link Group.registerPeers} which group now uses this picker, so a
   * transport serves that group's peer and client requests (several nodes can
   * then share one process, each with its own groups). Optional.
   */
  attach?(group: Group): void;
}
