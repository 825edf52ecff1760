// A miss in a cluster, as one object: the key's owner, then its replicas'
// caches, then this node's getter, reported to the shared load's receiver
// without a promise per step.
import { type Cancel, type Receiver, reportTo } from "@distcache/singleflight";
import { ByteView } from "./byteview.js";
import { NotFoundError, RemoteLoadError } from "./errors.js";
import type { FillToken } from "./fill-tokens.js";
import type { LocalGroup } from "./local-group.js";
import type { PeerClient, PeerGetOptions, PeerValue, Placement } from "./peers.js";

/**
 * One shared load of a key another node owns. It asks the owner (which may
 * load), and when the owner cannot answer, each replica's cache in ring
 * order; when none can, this node's getter. It is the receiver of each peer
 * answer in turn, so a transport with {@link PeerClient.getTo} hands the
 * answer over with no promise in between.
 */
export class PeerRead implements Receiver<PeerValue | undefined> {
  private phase: "owner" | "replicas" | "done" = "owner";
  /** The peer asked last. */
  private from: PeerClient;
  /** The next replica to ask. */
  private next = 0;
  /** Only a replica keeps what it fetched, so only a replica holds a fill token. */
  private readonly token: FillToken | undefined;

  constructor(
    private readonly local: LocalGroup,
    private readonly key: string,
    owner: PeerClient,
    private readonly replicas: Placement["replicas"],
    selfIsReplica: boolean,
    private readonly cancel: Cancel,
    private readonly done: Receiver<ByteView>,
  ) {
    this.from = owner;
    this.token = selfIsReplica ? local.fills.begin(key) : undefined;
  }

  /** Asks the owner; every later step follows from the answers. */
  start(): void {
    this.ask(this.from, false);
  }

  resolve(remote: PeerValue | undefined): void {
    if (this.phase === "done") return;
    if (remote === undefined) {
      this.askNextReplica();
      return;
    }
    let view: ByteView;
    try {
      const local = this.local;
      local.counters.peerLoads++;
      view = ByteView.adopt(remote.value);
      const token = this.token;
      if (token !== undefined && local.admits(this.key, this.from.id, remote.stamp)) {
        local.fill(this.key, view, token);
      }
    } catch (error) {
      this.fail(error);
      return;
    }
    this.end();
    this.done.resolve(view);
  }

  reject(error: unknown): void {
    if (this.phase === "done") return;
    // The owner's answer that its getter failed is final: nobody else loads.
    if (
      this.phase === "owner" &&
      (error instanceof NotFoundError || error instanceof RemoteLoadError)
    ) {
      this.fail(error);
      return;
    }
    if (this.cancel.cancelled) {
      this.fail(this.cancel.reason);
      return;
    }
    this.local.counters.peerErrors++;
    this.askNextReplica();
  }

  /** The owner first (it may load), then the replicas' caches. */
  private ask(peer: PeerClient, cacheOnly: boolean): void {
    this.from = peer;
    const options = new PeerGet(cacheOnly, this.cancel);
    try {
      if (peer.getTo !== undefined) peer.getTo(this.local.name, this.key, options, this);
      else {
        reportTo(peer.get(this.local.name, this.key, options), this);
      }
    } catch (error) {
      this.reject(error);
    }
  }

  private askNextReplica(): void {
    const replicas = this.replicas;
    if (this.next < replicas.length) {
      this.phase = "replicas";
      this.ask(replicas[this.next++]!, true);
      return;
    }
    // Neither the owner nor a replica could answer: the last resort is our getter.
    this.end();
    reportTo(this.local.load(this.key, this.cancel.signal), this.done);
  }

  private fail(error: unknown): void {
    this.end();
    this.done.reject(error);
  }

  /** No more peer answers are taken; the fill token (if any) is returned. */
  private end(): void {
    this.phase = "done";
    if (this.token !== undefined) this.local.fills.end(this.key, this.token);
  }
}

/** A peer Get's options: `signal` is made from `cancel` only if the transport reads it. */
class PeerGet implements PeerGetOptions {
  constructor(
    readonly cacheOnly: boolean,
    readonly cancel: Cancel,
  ) {}

  get signal(): AbortSignal {
    return this.cancel.signal;
  }
}
