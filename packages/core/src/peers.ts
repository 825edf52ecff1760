// The contract between a group and a transport: how a group reaches other
// nodes (PeerPicker, PeerClient: the transport's client side) and how a
// transport serves the calls other nodes make (PeerHandler: its server side).
/**
 * `core` knows no network: a transport (for example
 * `@distcache/transport-connect`) implements {@link PeerPicker} and
 * {@link PeerClient}, and a group registered with it routes misses, deletes
 * and sets through them. On the receiving node the transport hands each call
 * to the named group's {@link PeerHandler} (`group.peerHandler`).
 *
 * The contract that keeps a cluster loop-free: every call a group makes on a
 * {@link PeerClient} is a *peer request*, and the node receiving it serves it
 * from its own cache or its own getter through {@link PeerHandler} — it never
 * forwards it again.
 */

import type { Cancel, Receiver } from "@distcache/singleflight";
import type { ByteView } from "./byteview.js";
import type { PropagationResult } from "./propagation.js";
import type { Stamp } from "./stamps.js";

/** A group a transport serves; what {@link PeerPicker.attach} is told about. */
export interface AttachedGroup {
  readonly name: string;
  readonly peerHandler: PeerHandler;
}

/** Per-call options for {@link PeerClient} methods. */
export interface PeerCallOptions {
  /** Aborts the call (the caller's deadline, or every waiter gone). */
  signal?: AbortSignal;
}

/** Options for {@link PeerClient.get}. */
export interface PeerGetOptions extends PeerCallOptions {
  /**
   * The call's cancellation, when the group passes one: it fires when
   * `signal` would abort, and `signal` is then made only if read. A transport
   * that reads `cancel` first spares the miss an AbortController.
   */
  cancel?: Cancel;
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
  /**
   * The receiver has seen stamps of the sender with a later epoch than this
   * request's (see `stamps.ts`): it applied the invalidation and holds the
   * key at this stamp. The sender's transport moves its incarnation past it.
   */
  readonly ahead?: Stamp | undefined;
}

/** What {@link PeerHandler.store} answers. */
export interface PeerStoreResult extends PropagationResult {
  /**
   * The copy was a write stamped behind what this node has seen from the
   * sender: it was not kept, this node dropped its own copy of the key, and
   * the write must be reported as not acknowledged by this node.
   */
  readonly refused?: boolean | undefined;
  /** As {@link RemoveResult.ahead}: the sender should move its incarnation past it. */
  readonly ahead?: Stamp | undefined;
}

/**
 * How a transport serves its clients' Gets to a group (`group.clientHandler`),
 * for servers that answer many Gets and want no promise per call.
 */
export interface ClientHandler {
  /**
   * As `Group.get`: the value of `key`, from this node's cache, its owner or
   * a getter, with the same counters. The outcome goes to `receiver`: at once
   * (before `get` returns) for a hit, an empty key, or a `cancel` that has
   * fired; otherwise when the shared load settles or `cancel` fires.
   */
  get(key: string, receiver: Receiver<ByteView>, cancel?: Cancel): void;
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
   * As `get`, with the outcome reported to `receiver` (see `Receiver`)
   * instead of a promise: a group's miss then reaches the transport, and
   * its answer comes back, without a promise per step. Optional: a group
   * uses `get` on a client without it.
   */
  getTo?(
    group: string,
    key: string,
    options: PeerGetOptions,
    receiver: Receiver<PeerValue | undefined>,
  ): void;
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
   * This node's incarnation, the epoch of every stamp its groups send (see
   * `stamps.ts`). Optional: without it a group stamps with its own.
   */
  epoch?(): number;
  /**
   * Told by `Group.registerPeers` which group now uses this picker, so a
   * transport serves that group's peer and client requests (several nodes can
   * then share one process, each with its own groups). Optional.
   */
  attach?(group: AttachedGroup): void;
}

/** A peer's read of a key, as a transport hands it to {@link PeerHandler.get}. */
export interface PeerGetRequest {
  /** Answer from this node's cache only: `undefined` when it holds no copy (a replica read). */
  readonly cacheOnly: boolean;
  /** The caller left or its deadline passed: a load it waits on may stop. */
  readonly signal?: AbortSignal | undefined;
}

/** A peer's copy of a value, as a transport hands it to {@link PeerHandler.store}. */
export interface PeerStoreRequest {
  /** The sending member (as this node names it in its member list). */
  readonly from: string;
  /** This node is the key's owner taking a forwarded Set: copy it on to the replicas. */
  readonly replicate: boolean;
  /** The sender's write stamp for the copy; a copy older than a write `from` announced is refused. */
  readonly stamp?: Stamp | undefined;
  /** The copy is a write (a Set), not a load: copies stamped before it are refused from now on. */
  readonly write?: boolean | undefined;
}

/** A peer's invalidation, as a transport hands it to {@link PeerHandler.remove}. */
export interface PeerRemoveRequest {
  /** The sending member. */
  readonly from: string;
  /** The sender is the key's owner and this is its stamp of the invalidation. */
  readonly stamp?: Stamp | undefined;
  /**
   * This node is the key's owner: invalidate, then tell every other member
   * except `from`, with this node's own stamp.
   */
  readonly fanOut?: boolean | undefined;
  /** Bounds the fan-out's peer calls. */
  readonly signal?: AbortSignal | undefined;
}

/**
 * How a transport serves other nodes' calls to one group. Every method
 * answers from this node — its cache, or its own getter — and never forwards
 * to another node (a fan-out as the owner tells the others once, and they do
 * not fan out again). Stamp ordering is handled here: a transport only
 * carries stamps between the wire and these methods.
 */
export interface PeerHandler {
  /**
   * This node's copy of `key`, or (unless `cacheOnly`) a load with this
   * node's getter, which copies the value to the key's replicas.
   *
   * @returns the value and this node's write stamp read *before* it (so a
   *   write applied after the read is stamped later); `undefined` when
   *   `cacheOnly` and nothing is cached.
   * @throws InvalidKeyError for an empty key; NotFoundError or the getter's
   *   error when the load failed.
   */
  get(key: string, request: PeerGetRequest): Promise<PeerValue | undefined>;
  /**
   * This node's copy of `key` with its write stamp, as {@link get} answers a
   * hit, synchronously; `undefined` when nothing is cached (then call
   * `get`). For a server that answers a batch's hits without a promise per key.
   */
  getCached?(key: string): PeerValue | undefined;
  /**
   * Keeps a copy of `value` (a replication push), or with `replicate` takes a
   * forwarded Set as the owner and copies it to the replicas. A copy older
   * than a write the sender announced is refused (and counted). Voids loads
   * of the key in flight here.
   *
   * @returns the replicas that did not take a forwarded Set; `refused` when
   *   the copy was a write stamped behind what this node has seen from the
   *   sender (this node then dropped its own copy: it cannot tell which is
   *   newer); `ahead` whenever the sender's stamp was behind.
   */
  store(key: string, value: Uint8Array, request: PeerStoreRequest): Promise<PeerStoreResult>;
  /**
   * Drops this node's copy of `key` and voids loads of it in flight here;
   * with a `stamp`, copies the sender handed out before are refused from now
   * on. With `fanOut`, also tells every other member but the sender.
   *
   * @returns with `fanOut`, this node's stamp of the invalidation and the
   *   members that did not acknowledge; else no failures.
   */
  remove(key: string, request: PeerRemoveRequest): Promise<RemoveResult>;
  /**
   * The highest epoch this group has seen in a stamp from `from`, if any: a
   * restarted node asks its peers for it and starts its incarnation above.
   */
  highestEpoch(from: string): number | undefined;
}
