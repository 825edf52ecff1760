// The application's view of a cache namespace: Group's get / set / delete /
// stats, and the read path of a miss (owner, then replicas, then this node's
// getter). What other nodes call is in peer-handler.ts; cluster writes in
// cluster-writes.ts; this node's cache and loads in local-group.ts.
import { type Cancel, type Leave, type Receiver, reportTo } from "@distcache/singleflight";
import { ByteView } from "./byteview.js";
import { deleteEverywhere, setEverywhere } from "./cluster-writes.js";
import { InvalidKeyError, requireKey } from "./errors.js";
import type { GroupCounters, GroupStats } from "./group-stats.js";
import type { LoadLimiter } from "./load-limiter.js";
import { type Getter, type GetterResult, type GroupOptions, LocalGroup } from "./local-group.js";
import { GroupPeerHandler } from "./peer-handler.js";
import { PeerRead } from "./peer-read.js";
import type { ClientHandler, PeerHandler, PeerPicker } from "./peers.js";
import { NO_FAILURES, type PropagationResult, type SetResult } from "./propagation.js";

/** Per-call options for {@link Group.get} and friends. */
export interface GetOptions {
  /** Abandons this caller's wait (e.g. its deadline); a load others share goes on. */
  signal?: AbortSignal;
  /**
   * As `signal`, without an AbortController: for servers that cancel many
   * waits (a {@link Cancel} costs a small object, a signal an EventTarget and
   * a listener). Only `get` reads it; `get` refuses `signal` and `cancel` together.
   */
  cancel?: Cancel;
}

/**
 * A cache namespace: a byte budget, a getter, and (once peers are registered)
 * a place on a cluster. Most programs make groups with {@link newGroup}.
 *
 * Applications call `get`, `getCached`, `set`, `delete`, `stats` and
 * `registerPeers`. A transport serves other nodes through `peerHandler`.
 */
export class Group {
  readonly name: string;
  /** The byte budget; `0` means unbounded. */
  readonly cacheBytes: number;
  /**
   * How a transport serves other nodes' calls to this group (see
   * {@link PeerHandler}). Not for applications: it answers from this node
   * and never forwards; use `get`, `set` and `delete`.
   */
  readonly peerHandler: PeerHandler;
  /**
   * How a transport serves its clients' Gets without a promise per call (see
   * {@link ClientHandler}). Not for applications: use `get`.
   */
  readonly clientHandler: ClientHandler;
  private readonly local: LocalGroup;

  constructor(name: string, cacheBytes: number, getter: Getter, options: GroupOptions = {}) {
    if (typeof name !== "string" || name.length === 0)
      throw new TypeError("group name is required");
    if (typeof getter !== "function")
      throw new TypeError(`group "${name}": getter must be a function`);
    this.name = name;
    this.cacheBytes = cacheBytes;
    this.local = new LocalGroup(name, cacheBytes, getter, options);
    this.peerHandler = new GroupPeerHandler(this.local);
    this.clientHandler = { get: (key, receiver, cancel) => this.getTo(key, receiver, cancel) };
  }

  /**
   * Joins this group to a cluster: misses go to the key's owner, deletes and
   * sets reach every member. Call once, before serving.
   */
  registerPeers(peers: PeerPicker): void {
    if (this.local.peers !== undefined) {
      throw new Error(`group "${this.name}": peers already registered`);
    }
    this.local.peers = peers;
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
    const leave: Leave | undefined = options?.cancel ?? options?.signal;
    if (options?.cancel !== undefined && options.signal !== undefined) {
      return Promise.reject(new TypeError("GetOptions: give signal or cancel, not both"));
    }
    const found = this.lookup(key);
    if (found === undefined) {
      return new Promise((resolve, reject) => this.miss(key, { resolve, reject }, leave));
    }
    return found instanceof InvalidKeyError ? Promise.reject(found) : Promise.resolve(found);
  }

  /** `get` for {@link ClientHandler}: the outcome goes to `receiver`, a hit's at once. */
  private getTo(key: string, receiver: Receiver<ByteView>, cancel: Cancel | undefined): void {
    const found = this.lookup(key);
    if (found === undefined) this.miss(key, receiver, cancel);
    else if (found instanceof InvalidKeyError) receiver.reject(found);
    else receiver.resolve(found);
  }

  /**
   * A get's start, counted: the cached value, the error for an empty key, or
   * `undefined` for a miss (which `miss` counts).
   */
  private lookup(key: string): ByteView | InvalidKeyError | undefined {
    const counters = this.local.counters;
    counters.gets++;
    if (typeof key !== "string" || key.length === 0) {
      counters.getErrors++;
      return new InvalidKeyError("key is required");
    }
    const hit = this.local.cache.get(key);
    if (hit !== undefined) counters.hits++;
    return hit;
  }

  /** A get's miss: joins (or starts) the key's shared load; counted as this caller's get ends. */
  private miss(key: string, receiver: Receiver<ByteView>, leave: Leave | undefined): void {
    const local = this.local;
    const counters = local.counters;
    counters.misses++;
    // Without peers a read is a local load: one singleflight, not two.
    const flight = local.peers === undefined ? local.loadFlight : local.readFlight;
    if (flight.has(key)) counters.loadsDeduped++;
    else counters.loads++;
    flight.joinTo(
      key,
      local.peers === undefined ? this.loadLocally : this.loadFromPeers,
      new MissEnd(counters, receiver),
      leave,
    );
  }

  // A miss's work, made once per group rather than per Get.
  private readonly loadLocally = (cancel: Cancel, key: string, done: Receiver<ByteView>) => {
    reportTo(this.local.loadLocally(key, cancel.signal), done);
  };
  private readonly loadFromPeers = (cancel: Cancel, key: string, done: Receiver<ByteView>) => {
    const local = this.local;
    const placement = local.peers!.placement(key);
    if (placement.owner === undefined) {
      // This node owns the key: its getter.
      reportTo(local.load(key, cancel.signal), done);
      return;
    }
    const { owner, replicas, selfIsReplica } = placement;
    new PeerRead(local, key, owner, replicas, selfIsReplica, cancel, done).start();
  };

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
    const hit = this.local.cache.get(key);
    if (hit !== undefined) {
      this.local.counters.gets++;
      this.local.counters.hits++;
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
    const peers = this.local.peers;
    if (peers === undefined) {
      this.local.removeLocal(key);
      return NO_FAILURES;
    }
    return deleteEverywhere(this.local, peers, key, options?.signal);
  }

  /**
   * Writes `value` for `key` through its owner, which copies it to its
   * replicas; every other member drops its copy.
   *
   * @returns the members that did not acknowledge (the owner always did) and,
   *   when the value is over the group's budget, `notCached`: written (old
   *   copies dropped everywhere) but kept by no cache.
   * @throws PropagationError when the owner did not acknowledge.
   */
  async set(key: string, value: GetterResult, options?: GetOptions): Promise<SetResult> {
    requireKey(key);
    const view = ByteView.from(value);
    const local = this.local;
    const notCached = local.notCached(key, view);
    const peers = local.peers;
    let result: PropagationResult = NO_FAILURES;
    if (peers === undefined) local.storeView(key, view);
    else result = await setEverywhere(local, peers, key, view, options?.signal);
    return notCached === undefined ? result : { failed: result.failed, notCached };
  }

  /**
   * Adds a bound every getter call of this group must also hold a slot of,
   * e.g. a node-wide limiter shared by several groups (ConnectPool's
   * `maxLoadsInFlight`). Adding one already added does nothing.
   */
  addLoadLimiter(limiter: LoadLimiter): void {
    if (!this.local.loadLimiters.includes(limiter)) this.local.loadLimiters.push(limiter);
  }

  /** A snapshot of this group's counters and gauges on this node. */
  stats(): GroupStats {
    return this.local.stats();
  }
}

/** Ends one caller's miss: its counters, then its receiver. */
class MissEnd implements Receiver<ByteView> {
  constructor(
    private readonly counters: GroupCounters,
    private readonly target: Receiver<ByteView>,
  ) {}

  resolve(view: ByteView): void {
    this.counters.missesLoaded++;
    this.target.resolve(view);
  }

  reject(error: unknown): void {
    this.counters.getErrors++;
    this.target.reject(error);
  }
}
