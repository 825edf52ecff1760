/**
 * Write stamps: how a node that receives a copy of a value from a key's owner
 * tells whether the copy is older than a write it has already been told
 * about — without trusting any clock.
 *
 * The invariant this module serves: once a Set or Delete is acknowledged, no
 * node serves an older value, whatever the wall clocks of the nodes say.
 *
 * A stamp is (`epoch`, `seq`). `seq` counts the writes one group applied on
 * one node ({@link WriteClock}); `epoch` is that node's **incarnation**
 * ({@link Incarnation}): a number each new process of a node takes above
 * every incarnation of it that its peers have seen, and raises later whenever
 * a peer shows it a higher one. The wall clock is only a first guess for it;
 * nothing depends on it being right. Stamps of one sender are compared in
 * (epoch, seq) order; stamps of different senders are never compared.
 *
 * A receiver remembers, per key, the latest write stamp the owner announced,
 * and per sender the highest epoch it has seen ({@link StaleGuard}). A copy
 * stamped before the key's write is refused: it was read before that write
 * and arrived late. A *write* stamped with an epoch below the sender's highest
 * is "behind": the sender restarted with a lower first guess (a clock stepped
 * back), or someone forged a high stamp in its name. The receiver cannot order
 * it against what it holds, so it fails safe: it drops its copy, refuses every
 * copy of the key from that sender up to the highest epoch, and answers with
 * that epoch so the sender moves its incarnation past it.
 */

/** A point in one node's sequence of writes to one group. */
export interface Stamp {
  /** The sender's incarnation (see {@link Incarnation}); at most {@link MAX_STAMP_PART}. */
  readonly epoch: number;
  /** Writes the group applied on the sender before the stamp was read; at most {@link MAX_STAMP_PART}. */
  readonly seq: number;
}

/** The largest epoch or seq a stamp may carry: stamps are exact JavaScript numbers. */
export const MAX_STAMP_PART = Number.MAX_SAFE_INTEGER;

/** Whether `a` was read before `b` on the same node's clock. */
export function stampBefore(a: Stamp, b: Stamp): boolean {
  return a.epoch < b.epoch || (a.epoch === b.epoch && a.seq < b.seq);
}

/** Whether `stamp`'s parts are integers in 0..{@link MAX_STAMP_PART}. */
export function validStamp(stamp: Stamp): boolean {
  return (
    Number.isSafeInteger(stamp.epoch) &&
    stamp.epoch >= 0 &&
    Number.isSafeInteger(stamp.seq) &&
    stamp.seq >= 0
  );
}

/**
 * This node's incarnation: the `epoch` of every stamp it sends. It only ever
 * grows. Its first value is a guess from the wall clock (milliseconds × 1024
 * plus a random part), which is usually above the previous process's; when it
 * is not (the clock stepped back, a VM was restored), the peers' answers tell
 * the node so and {@link advancePast} moves it above what they have seen.
 */
export class Incarnation {
  private value: number;

  constructor(first: number = Date.now() * 1024 + Math.floor(Math.random() * 1024)) {
    this.value = Math.min(Math.max(0, Math.floor(first)), MAX_STAMP_PART);
  }

  /** The current incarnation. */
  get current(): number {
    return this.value;
  }

  /**
   * Moves above `epoch`, an incarnation of this node a peer has seen.
   * @returns whether the incarnation changed. It cannot pass
   *   {@link MAX_STAMP_PART}: a peer holding that (a forged stamp) refuses
   *   this node's copies for good, which costs it a cached copy, never a stale one.
   */
  advancePast(epoch: number): boolean {
    if (!(epoch >= this.value) || this.value >= MAX_STAMP_PART) return false;
    this.value = Math.min(Math.floor(epoch) + 1, MAX_STAMP_PART);
    return true;
  }
}

/** One node's write sequence for one group; its epoch is the node's incarnation. */
export class WriteClock {
  private seq = 0;

  /** @param epoch reads the node's incarnation when a stamp is taken. */
  constructor(private readonly epoch: () => number) {}

  /** The stamp of the writes applied so far. */
  now(): Stamp {
    return { epoch: this.epoch(), seq: this.seq };
  }

  /** Marks one more write applied. */
  tick(): void {
    if (this.seq < MAX_STAMP_PART) this.seq++;
  }
}

interface Announced {
  readonly from: string;
  readonly stamp: Stamp;
}

/** What a guard knows of one sender. */
interface SenderState {
  /** The highest epoch seen in any stamp from it. */
  highest: number;
  /** Copies stamped before this are refused for every key (raised by forgotten keys). */
  floor: Stamp | undefined;
}

/** Default number of keys whose last announced write a guard remembers. */
export const DEFAULT_GUARD_KEYS = 10_000;
/** Senders a guard remembers; members are far fewer, and it bounds what a misbehaving peer can grow. */
const MAX_SENDERS = 1_024;

/**
 * Remembers the latest write stamp announced for each key (bounded) and the
 * highest epoch seen from each sender, and refuses copies stamped before a
 * write. When a key is forgotten to stay within the bound, its stamp raises a
 * per-sender floor instead: copies from that sender stamped before the floor
 * are refused for every key. That errs on the side of refusing a copy (the
 * cost: a replica without a copy, which loads through the owner) and never
 * admits a stale one.
 */
export class StaleGuard {
  private readonly keys = new Map<string, Announced>();
  private readonly senders = new Map<string, SenderState>();

  constructor(private readonly limit: number = DEFAULT_GUARD_KEYS) {}

  /**
   * Notes that `from` applied a write to `key` at `stamp`.
   *
   * @returns `undefined` when the write is in order; when it is **behind**
   *   (its epoch is below the highest `from` has shown), the stamp the key is
   *   now held at — the highest epoch, with the largest seq — so every copy
   *   of the key from `from` up to that epoch is refused. The caller drops its
   *   copy and tells the sender, which moves its incarnation past it.
   */
  record(key: string, from: string, stamp: Stamp): Stamp | undefined {
    const sender = this.observe(from, stamp);
    let held = stamp;
    let ahead: Stamp | undefined;
    if (stamp.epoch < sender.highest) {
      ahead = { epoch: sender.highest, seq: MAX_STAMP_PART };
      held = ahead;
    }
    const known = this.keys.get(key);
    if (known !== undefined) {
      this.keys.delete(key);
      if (known.from === from && stampBefore(held, known.stamp)) held = known.stamp;
    }
    this.keys.set(key, { from, stamp: held });
    if (this.keys.size > this.limit) {
      const [oldestKey, oldest] = this.keys.entries().next().value as [string, Announced];
      this.keys.delete(oldestKey);
      this.raiseFloor(oldest.from, oldest.stamp);
    }
    return ahead;
  }

  /**
   * Whether a copy of `key` that `from` read at `stamp` may be kept. Notes
   * the stamp's epoch as seen from `from` either way.
   */
  admits(key: string, from: string, stamp: Stamp): boolean {
    const sender = this.observe(from, stamp);
    if (sender.floor !== undefined && stampBefore(stamp, sender.floor)) return false;
    const known = this.keys.get(key);
    return known === undefined || known.from !== from || !stampBefore(stamp, known.stamp);
  }

  /**
   * The highest epoch seen from `from` when it is above `stamp`'s: the
   * sender is behind and should move past it. `undefined` otherwise.
   */
  aheadOf(from: string, stamp: Stamp): Stamp | undefined {
    const highest = this.senders.get(from)?.highest;
    return highest !== undefined && stamp.epoch < highest
      ? { epoch: highest, seq: MAX_STAMP_PART }
      : undefined;
  }

  /** The highest epoch seen in a stamp from `from`, if any. */
  highestEpoch(from: string): number | undefined {
    return this.senders.get(from)?.highest;
  }

  /** Keys remembered now. */
  get size(): number {
    return this.keys.size;
  }

  /** The sender's state, its highest epoch raised to `stamp`'s. */
  private observe(from: string, stamp: Stamp): SenderState {
    let sender = this.senders.get(from);
    if (sender === undefined) {
      sender = { highest: stamp.epoch, floor: undefined };
      this.senders.set(from, sender);
      if (this.senders.size > MAX_SENDERS) this.forgetOldestSender();
    } else if (stamp.epoch > sender.highest) {
      sender.highest = stamp.epoch;
    }
    return sender;
  }

  private raiseFloor(from: string, stamp: Stamp): void {
    const sender = this.senders.get(from);
    if (sender === undefined) return;
    if (sender.floor === undefined || stampBefore(sender.floor, stamp)) sender.floor = stamp;
  }

  /**
   * Past {@link MAX_SENDERS} the oldest sender is forgotten with every key it
   * announced: copies from it are then admitted as from a new sender. Only a
   * flood of distinct sender names (which authentication keeps out) gets here.
   */
  private forgetOldestSender(): void {
    const oldest = this.senders.keys().next().value as string;
    this.senders.delete(oldest);
    for (const [key, known] of this.keys) if (known.from === oldest) this.keys.delete(key);
  }
}
