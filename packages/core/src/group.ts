import { ByteLRU } from "@distcache/lru";
import { SingleFlight } from "@distcache/singleflight";
import { ByteView, describe } from "./byteview.js";
import { InvalidKeyError, NotFoundError, RemoteLoadError } from "./errors.js";
import type { PeerClient, PeerPicker, PeerValue, Placement, RemoveResult } from "./peers.js";
import { StaleGuard, type Stamp, WriteClock } from "./stamps.js";

/** What a getter may return: bytes, or a string stored as UTF-8. */
export type GetterResult = Uint8Array | string;

/** Passed to a getter with each key. */
export interface GetterContext {
  /**
   * Aborts when every caller waiting on this load has gone (their deadlines
   * passed or they were cancelled) or the group's load timeout passed. Pass it
   * to the data source so abandoned work stops.
   */
  readonly signal: AbortSignal;
}

/**
 * Loads a key from the source of truth on a miss. Throw {@link NotFoundError}
 * when the source has no such key. Errors are returned to the callers and
 * never cached.
 */
export type Getter = (key: string, context: GetterContext) => Promise<GetterResult> | GetterResult;

/** Options for {@link newGroup} and the {@link Group} constructor. */
export interface GroupOptions {
  /** Replace a registered group of the same name instead of throwing. Default `false`. */
  replace?: boolean;
  /**
   * Milliseconds a getter call may take before it is abandoned: its signal
   * aborts and every waiter gets a `TimeoutError`. Default `10_000`; `0`
   * disables the bound (a getter that never settles then wedges its key).
   */
  loadTimeout?: number;
  /** Time to live of cached entries in milliseconds. Default `0`: no expiry. */
  ttl?: number;
}

/** Per-call options for {@link Group.get} and friends. */
export interface GetOptions {
  /** Abandons this caller's wait (e.g. its deadline); a load others share goes on. */
  signal?: AbortSignal;
}

/** What a cluster-wide {@link Group.delete} or {@link Group.set} could not reach. */
export interface PropagationResult {
  /** Peers that did not acknowledge, each with the reason. Empty when all did. */
  readonly failed: readonly { readonly peer: string; readonly reason: string }[];
}

/** Thrown when the owner of a key did not acknowledge a delete or set. */
export class PropagationError extends Error {
  override readonly name = "PropagationError";
  constructor(
    message: string,
    readonly failed: PropagationResult["failed"],
  ) {
    super(message);
  }
}

/** Counters and gauges of one group; see {@link Group.stats}. */
export interface GroupStats {
  /** `get` calls, hits and misses included. */
  gets: number;
  /** `get` calls answered from this node's cache. */
  hits: number;
  /** `get` calls that had to load (from a peer or the getter). */
  misses: number;
  /** Misses that started a load. */
  loads: number;
  /** Misses that joined a load already in flight for the same key. */
  loadsDeduped: number;
  /** Getter calls on this node. */
  localLoads: number;
  /** Getter calls on this node that failed (thrown, timed out or returned a non-bytes value). */
  localLoadErrors: number;
  /** Values fetched from another node (owner or replica). */
  peerLoads: number;
  /** Peer calls that failed at the transport (peer down, timed out). */
  peerErrors: number;
  /**
   * Copies from the owner refused because the owner had announced a later
   * write of the key (a replication push or Fetch answer that arrived after an
   * invalidation or Set it predates).
   */
  staleCopiesRefused: number;
  /** Replication pushes after a load that a replica did not take (down, timed out, breaker open). */
  replicationFailures: number;
  /** Loads in flight on this node now (reads that may ask peers, and getter calls). */
  loadsInFlight: number;
  /** Entries evicted to stay within the budget. */
  evictions: number;
  /** Bytes held by this node's cache (keys + values + per-entry overhead). */
  bytes: number;
  /** Entries held by this node's cache. */
  items: number;
}

/** Options for {@link Group.storeLocal}. */
export interface StoreLocalOptions {
  /** Act as the key's owner taking a client Set: copy the value on to the replicas. */
  replicate: boolean;
  /** The member that sent the copy (with `stamp`). */
  from?: string | undefined;
  /** The sender's write stamp for the copy; a copy older than a write announced by `from` is refused. */
  stamp?: Stamp | undefined;
  /** The copy is a write (a Set), not a load: remember its stamp so older copies are refused. */
  write?: boolean | undefined;
}

/** Marks one fill in flight; set stale when the key is invalidated meanwhile. */
interface FillToken {
  stale: boolean;
}

const DEFAULT_LOAD_TIMEOUT_MS = 10_000;
const NO_FAILURES: PropagationResult = Object.freeze({ failed: Object.freeze([]) });

/**
 * A cache namespace: a byte budget, a getter, and (once peers are registered)
 * a place on a cluster. Most programs make groups with {@link newGroup}.
 */
export class Group {
  readonly name: string;
  /** The byte budget; `0` means unbounded. */
  readonly cacheBytes: number;
  private readonly getter: Getter;
  /** Values in slab pages; a hit hands out a view of its page (see ByteView.adoptRange). */
  private readonly cache: ByteLRU<ByteView>;
  /** Loads on behalf of a caller of `get`: may ask peers. */
  private readonly readFlight = new SingleFlight<ByteView>();
  /** Loads with this node's getter: never asks a peer, so peers never wait on each other. */
  private readonly loadFlight: SingleFlight<ByteView>;
  private readonly fills = new Map<string, Set<FillToken>>();
  /** Orders this node's writes; its stamp goes out with every copy this node hands out. */
  private readonly clock = new WriteClock();
  /** The latest writes owners announced, so late copies older than them are refused. */
  private readonly guard = new StaleGuard();
  private peers: PeerPicker | undefined;

  private gets = 0;
  private hits = 0;
  private misses = 0;
  private loads = 0;
  private loadsDeduped = 0;
  private localLoads = 0;
  private localLoadErrors = 0;
  private peerLoads = 0;
  private peerErrors = 0;
  private staleCopiesRefused = 0;
  private replicationFailures = 0;

  constructor(name: string, cacheBytes: number, getter: Getter, options: GroupOptions = {}) {
    if (typeof name !== "string" || name.length === 0)
      throw new TypeError("group name is required");
    if (typeof getter !== "function")
      throw new TypeError(`group "${name}": getter must be a function`);
    this.name = name;
    this.cacheBytes = cacheBytes;
    this.getter = getter;
    this.cache = new ByteLRU<ByteView>({
      maxBytes: cacheBytes,
      view: ByteView.adoptRange,
      ttl: options.ttl ?? 0,
    });
    this.loadFlight = new SingleFlight<ByteView>({
      timeout: options.loadTimeout ?? DEFAULT_LOAD_TIMEOUT_MS,
    });
  }

  /**
   * Joins this group to a cluster: misses go to the key's owner, deletes and
   * sets reach every member. Call once, before serving.
   */
  registerPeers(peers: PeerPicker): void {
    if (this.peers !== undefined) throw new Error(`group "${this.name}": peers already registered`);
    this.peers = peers;
    peers.attach?.(this);
  }

  /**
   * The value of `key`: from this node's cache, else from the key's owner (or,
   * if it cannot answer, a replica), else from the getter. Concurrent callers
   * of one key share one load.
   *
   * @throws InvalidKeyError for an empty key; NotFoundError or the getter's
   *   own error when the load failed; the signal's reason when aborted.
   */
  get(key: string, options?: GetOptions): Promise<ByteView> {
    this.gets++;
    if (typeof key !== "string" || key.length === 0) {
      return Promise.reject(new InvalidKeyError("key is required"));
    }
    const hit = this.cache.get(key);
    if (hit !== undefined) {
      this.hits++;
      return Promise.resolve(hit);
    }
    this.misses++;
    // Without peers a read is a local load: one singleflight, not two.
    const flight = this.peers === undefined ? this.loadFlight : this.readFlight;
    if (flight.has(key)) this.loadsDeduped++;
    else this.loads++;
    if (this.peers === undefined) {
      return flight.do(key, (signal) => this.loadLocally(key, signal), options);
    }
    return flight.do(key, (signal) => this.load(key, signal), options);
  }

  /**
   * The value of `key` if this node's cache holds it, synchronously; no load,
   * no peer call, no promise. For servers that answer a hit without the cost
   * of `get`'s promise and abort signal: `group.getCached(key) ?? await
   * group.get(key, { signal })`.
   *
   * A hit is counted like one by `get` (`gets` and `hits`). A miss is not
   * counted: the caller is expected to follow it with `get`, which counts it.
   * An empty key is never cached, so it returns `undefined`.
   */
  getCached(key: string): ByteView | undefined {
    if (key.length === 0) return undefined;
    const hit = this.cache.get(key);
    if (hit !== undefined) {
      this.gets++;
      this.hits++;
    }
    return hit;
  }

  /**
   * Removes `key` from this node and, in a cluster, from every member: the
   * owner must acknowledge, the others are told once each, and loads of the
   * key already in flight anywhere cannot put the old value back.
   *
   * @returns the members that did not acknowledge (the owner always did).
   * @throws PropagationError when the owner did not acknowledge.
   */
  async delete(key: string, options?: GetOptions): Promise<PropagationResult> {
    requireKey(key);
    const peers = this.peers;
    if (peers === undefined) {
      this.removeLocal(key);
      return NO_FAILURES;
    }
    const { owner } = peers.placement(key);
    if (owner === undefined) return this.invalidateAsOwner(key, options);
    this.removeLocal(key);
    // The owner stamps the invalidation and tells the others itself, so a
    // copy it handed out before cannot be kept anywhere after it.
    let answer: RemoveResult | undefined;
    let ownerFailure: PromiseSettledResult<unknown> | undefined;
    try {
      answer = await owner.remove(this.name, key, { signal: options?.signal, fanOut: true });
    } catch (reason) {
      ownerFailure = { status: "rejected", reason };
    }
    if (answer?.stamp !== undefined) {
      // Drop what landed here while the owner was invalidating: a copy read before its write.
      this.removeLocal(key, { from: owner.id, stamp: answer.stamp });
      return answer.failed.length === 0 ? NO_FAILURES : { failed: answer.failed };
    }
    // Nobody stamped it (the owner failed, or is a peer that does not fan
    // out): reach the others from here, then report the owner's failure if any.
    const others = peers.others().filter((peer) => peer !== owner);
    const outcomes = await Promise.allSettled(
      others.map((peer) => peer.remove(this.name, key, options)),
    );
    this.removeLocal(key);
    if (ownerFailure === undefined)
      return this.propagationResult("delete", undefined, others, outcomes);
    return this.propagationResult("delete", owner, [owner, ...others], [ownerFailure, ...outcomes]);
  }

  /**
   * Serves a peer that asked this node, as the key's owner, to delete `key`
   * everywhere (and runs a delete whose owner is this node): drops the local
   * copy, then tells every other member but `except`, stamped with this
   * node's clock so copies this node handed out before cannot be kept.
   *
   * @returns the stamp of the invalidation and the members that did not acknowledge.
   */
  async invalidateAsOwner(
    key: string,
    options: GetOptions & { except?: string } = {},
  ): Promise<RemoveResult> {
    requireKey(key);
    this.removeLocal(key);
    const stamp = this.clock.now();
    const peers = this.peers;
    if (peers === undefined) return { stamp, failed: [] };
    const targets = peers.others().filter((peer) => peer.id !== options.except);
    const outcomes = await Promise.allSettled(
      targets.map((peer) => peer.remove(this.name, key, { signal: options.signal, stamp })),
    );
    return { stamp, failed: this.propagationResult("delete", undefined, targets, outcomes).failed };
  }

  /**
   * Writes `value` for `key` through its owner, which copies it to its
   * replicas; every other member drops its copy.
   *
   * @throws PropagationError when the owner did not acknowledge.
   */
  async set(key: string, value: GetterResult, options?: GetOptions): Promise<PropagationResult> {
    requireKey(key);
    const view = ByteView.from(value);
    const peers = this.peers;
    if (peers === undefined) {
      this.storeView(key, view);
      return NO_FAILURES;
    }
    const placement = peers.placement(key);
    const holders = new Set<PeerClient>(placement.replicas);
    let writes: Promise<unknown>[];
    let targets: PeerClient[];
    // As the owner, this node stamps the write; as another, the owner does.
    let stamp: Stamp | undefined;
    if (placement.owner === undefined) {
      this.storeView(key, view);
      stamp = this.clock.now();
      const written = stamp;
      targets = [...placement.replicas];
      writes = targets.map((peer) => this.push(peer, key, view, written, true));
    } else {
      holders.add(placement.owner);
      // Drop our copy before the owner's replication may push the new one to us.
      if (!placement.selfIsReplica) this.removeLocal(key);
      targets = [placement.owner];
      writes = [
        placement.owner.store(this.name, key, ByteView.unwrap(view), {
          replicate: true,
          signal: options?.signal,
        }),
      ];
    }
    for (const peer of peers.others()) {
      if (holders.has(peer)) continue;
      targets.push(peer);
      writes.push(peer.remove(this.name, key, { signal: options?.signal, stamp }));
    }
    const outcomes = await Promise.allSettled(writes);
    const result = this.propagationResult("set", placement.owner, targets, outcomes);
    // The owner reports the replicas its own copying could not reach.
    const fromOwner = outcomes[0]?.status === "fulfilled" ? outcomes[0].value : undefined;
    if (placement.owner === undefined || !isPropagationResult(fromOwner)) return result;
    if (fromOwner.failed.length === 0) return result;
    return { failed: [...result.failed, ...fromOwner.failed] };
  }

  /**
   * Serves a peer: this node's cached value, or (unless `cacheOnly`) a load
   * with this node's getter, then replication. Never asks another node.
   * @returns `undefined` only when `cacheOnly` and nothing is cached.
   */
  getLocal(
    key: string,
    options: GetOptions & { cacheOnly: boolean },
  ): Promise<ByteView | undefined> {
    if (typeof key !== "string" || key.length === 0) {
      return Promise.reject(new InvalidKeyError("key is required"));
    }
    const hit = this.cache.get(key);
    if (hit !== undefined) return Promise.resolve(hit);
    if (options.cacheOnly) return Promise.resolve(undefined);
    return this.loadFlight.do(key, (signal) => this.loadLocally(key, signal), options);
  }

  /**
   * Serves a peer: keeps `value` for `key` in this node's cache (a replica
   * push), or with `replicate` acts as the owner of a client Set and copies it
   * on to the replicas. Voids loads of the key in flight here.
   */
  async storeLocal(
    key: string,
    value: Uint8Array,
    options: StoreLocalOptions,
  ): Promise<PropagationResult> {
    requireKey(key);
    const { from, stamp } = options;
    if (from !== undefined && stamp !== undefined) {
      if (!this.guard.admits(key, from, stamp)) {
        this.staleCopiesRefused++;
        return NO_FAILURES;
      }
      if (options.write === true) this.guard.record(key, from, stamp);
    }
    const view = ByteView.from(value);
    this.storeView(key, view);
    const peers = this.peers;
    if (!options.replicate || peers === undefined) return NO_FAILURES;
    const written = this.clock.now();
    const replicas = peers.placement(key).replicas;
    const outcomes = await Promise.allSettled(
      replicas.map((peer) => this.push(peer, key, view, written, true)),
    );
    return this.propagationResult("set", undefined, replicas, outcomes);
  }

  /**
   * Serves a peer: drops this node's copy of `key` and voids loads of it in
   * flight here. `announced` is the owner's stamp of the write, when the owner
   * sent it: copies of the key it handed out before are refused from now on.
   */
  removeLocal(key: string, announced?: { from: string; stamp: Stamp }): void {
    this.clock.tick();
    if (announced !== undefined) this.guard.record(key, announced.from, announced.stamp);
    this.cache.delete(key);
    const tokens = this.fills.get(key);
    if (tokens !== undefined) for (const token of tokens) token.stale = true;
    // Callers arriving from now on must not join a load that started before.
    this.readFlight.forget(key);
    this.loadFlight.forget(key);
  }

  /**
   * This node's write stamp now. A transport sends it with a value it hands
   * to a peer (read it just before the read that produces the value).
   */
  writeStamp(): Stamp {
    return this.clock.now();
  }

  /** A snapshot of this group's counters and gauges on this node. */
  stats(): GroupStats {
    const cache = this.cache.stats();
    return {
      gets: this.gets,
      hits: this.hits,
      misses: this.misses,
      loads: this.loads,
      loadsDeduped: this.loadsDeduped,
      localLoads: this.localLoads,
      localLoadErrors: this.localLoadErrors,
      peerLoads: this.peerLoads,
      peerErrors: this.peerErrors,
      staleCopiesRefused: this.staleCopiesRefused,
      replicationFailures: this.replicationFailures,
      loadsInFlight: this.readFlight.size + this.loadFlight.size,
      evictions: cache.evictions,
      bytes: cache.bytes,
      items: cache.items,
    };
  }

  private async load(key: string, signal: AbortSignal): Promise<ByteView> {
    const placement = this.peers?.placement(key);
    if (placement?.owner !== undefined) {
      const token = this.beginFill(key);
      try {
        const remote = await this.fetchFromPeers(key, placement, signal);
        if (remote !== undefined) {
          this.peerLoads++;
          const view = ByteView.adopt(remote.value);
          if (placement.selfIsReplica) {
            const { stamp } = remote;
            if (stamp !== undefined && !this.guard.admits(key, remote.from, stamp)) {
              this.staleCopiesRefused++;
            } else {
              this.fill(key, view, token);
            }
          }
          return view;
        }
      } finally {
        this.endFill(key, token);
      }
      // Neither the owner nor a replica could answer: the last resort is our getter.
    }
    return this.loadFlight.do(key, (loadSignal) => this.loadLocally(key, loadSignal), { signal });
  }

  /** Owner first (may load there), then replicas' caches; `undefined` if nobody answered. */
  private async fetchFromPeers(
    key: string,
    placement: Placement,
    signal: AbortSignal,
  ): Promise<(PeerValue & { from: string }) | undefined> {
    const owner = placement.owner!;
    try {
      const value = await owner.get(this.name, key, { cacheOnly: false, signal });
      if (value !== undefined) return { ...value, from: owner.id };
    } catch (error) {
      if (error instanceof NotFoundError || error instanceof RemoteLoadError) throw error;
      if (signal.aborted) throw signal.reason;
      this.peerErrors++;
    }
    for (const replica of placement.replicas) {
      try {
        const value = await replica.get(this.name, key, { cacheOnly: true, signal });
        if (value !== undefined) return { ...value, from: replica.id };
      } catch {
        if (signal.aborted) throw signal.reason;
        this.peerErrors++;
      }
    }
    return undefined;
  }

  private async loadLocally(key: string, signal: AbortSignal): Promise<ByteView> {
    const token = this.beginFill(key);
    // Replicas refuse this copy if a write of the key reaches them stamped later.
    const stamp = this.clock.now();
    try {
      this.localLoads++;
      let result: unknown;
      try {
        result = await this.getter(key, { signal });
      } catch (error) {
        this.localLoadErrors++;
        throw error;
      }
      if (!(result instanceof Uint8Array) && typeof result !== "string") {
        this.localLoadErrors++;
        throw new TypeError(
          `getter of group "${this.name}" returned ${describe(result)} for key "${key}"; expected a Uint8Array or a string`,
        );
      }
      const view = ByteView.from(result);
      const replicas = this.peers?.placement(key).replicas;
      if (this.fill(key, view, token) && replicas !== undefined && replicas.length > 0) {
        // Replicas hold the value before any caller sees it, so losing this node loses nothing.
        const pushes = await Promise.allSettled(
          replicas.map((peer) => this.push(peer, key, view, stamp, false)),
        );
        for (const push of pushes) if (push.status === "rejected") this.replicationFailures++;
      }
      return view;
    } finally {
      this.endFill(key, token);
    }
  }

  private push(
    peer: PeerClient,
    key: string,
    view: ByteView,
    stamp: Stamp,
    write: boolean,
  ): Promise<unknown> {
    return peer.store(this.name, key, ByteView.unwrap(view), { replicate: false, stamp, write });
  }

  private storeView(key: string, view: ByteView): void {
    this.removeLocal(key);
    this.cache.set(key, ByteView.unwrap(view));
  }

  /** Caches `view` unless the key was invalidated since `token` began. */
  private fill(key: string, view: ByteView, token: FillToken): boolean {
    if (token.stale) return false;
    return this.cache.set(key, ByteView.unwrap(view));
  }

  private beginFill(key: string): FillToken {
    const token: FillToken = { stale: false };
    const tokens = this.fills.get(key);
    if (tokens === undefined) this.fills.set(key, new Set([token]));
    else tokens.add(token);
    return token;
  }

  private endFill(key: string, token: FillToken): void {
    const tokens = this.fills.get(key);
    if (tokens === undefined) return;
    tokens.delete(token);
    if (tokens.size === 0) this.fills.delete(key);
  }

  private propagationResult(
    operation: string,
    owner: PeerClient | undefined,
    peers: readonly PeerClient[],
    outcomes: PromiseSettledResult<unknown>[],
  ): PropagationResult {
    const failed: { peer: string; reason: string }[] = [];
    let ownerFailed = false;
    outcomes.forEach((outcome, i) => {
      if (outcome.status === "fulfilled") return;
      const peer = peers[i]!;
      if (peer === owner) ownerFailed = true;
      failed.push({ peer: peer.id, reason: errorMessage(outcome.reason) });
    });
    const summary = failed.map((f) => `${f.peer}: ${f.reason}`).join("; ");
    if (ownerFailed) {
      throw new PropagationError(`${operation} not acknowledged by the owner (${summary})`, failed);
    }
    return failed.length === 0 ? NO_FAILURES : { failed };
  }
}

function isPropagationResult(value: unknown): value is PropagationResult {
  return (
    typeof value === "object" &&
    value !== null &&
    Array.isArray((value as PropagationResult).failed)
  );
}

function requireKey(key: string): void {
  if (typeof key !== "string" || key.length === 0) throw new InvalidKeyError("key is required");
}

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

const registry = new Map<string, Group>();

/**
 * Makes a group and registers it under `name`, for {@link getGroup} and for
 * transports that serve groups by name.
 *
 * @param cacheBytes byte budget of this node's cache for the group; `0` means unbounded.
 * @throws Error when a group of that name exists, unless `options.replace`.
 */
export function newGroup(
  name: string,
  cacheBytes: number,
  getter: Getter,
  options: GroupOptions = {},
): Group {
  if (registry.has(name) && options.replace !== true) {
    throw new Error(`group "${name}" already exists; pass { replace: true } to replace it`);
  }
  const group = new Group(name, cacheBytes, getter, options);
  registry.set(name, group);
  return group;
}

/** The group registered under `name`, or `undefined`. */
export function getGroup(name: string): Group | undefined {
  return registry.get(name);
}

/** Unregisters the group named `name`; returns whether there was one. */
export function removeGroup(name: string): boolean {
  return registry.delete(name);
}
