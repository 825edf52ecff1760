/**
 * Write stamps: how a node that receives a copy of a value from a key's owner
 * tells whether the copy is older than a write it has already been told about.
 *
 * Each group on each node keeps a {@link WriteClock}. It ticks on every write
 * that node applies (an invalidation, a stored value), so a stamp read from it
 * orders that node's writes. The owner of a key sends its clock's stamp with
 * every copy it hands out (a replication push, a Fetch answer) and with every
 * invalidation it fans out. A receiver remembers, per key, the latest write
 * stamp the owner announced ({@link StaleGuard}), and refuses a copy stamped
 * before it: the copy was read before that write, and arrived late.
 */

/** A point in one node's sequence of writes to one group. */
export interface Stamp {
  /** The clock's incarnation: later for a clock made later (a restarted node). */
  readonly epoch: number;
  /** Writes this incarnation applied before the stamp was read. */
  readonly seq: number;
}

/** Whether `a` was read before `b` on the same node's clock. */
export function stampBefore(a: Stamp, b: Stamp): boolean {
  return a.epoch < b.epoch || (a.epoch === b.epoch && a.seq < b.seq);
}

let clocksMade = 0;

/** One node's write sequence for one group. */
export class WriteClock {
  /** Milliseconds since 1970 × 1024, plus a counter so two clocks made in one millisecond differ. */
  readonly epoch = Date.now() * 1024 + (clocksMade++ % 1024);
  private seq = 0;

  /** The stamp of the writes applied so far. */
  now(): Stamp {
    return { epoch: this.epoch, seq: this.seq };
  }

  /** Marks one more write applied. */
  tick(): void {
    this.seq++;
  }
}

interface Announced {
  readonly from: string;
  readonly stamp: Stamp;
}

/** Default number of keys whose last announced write a guard remembers. */
export const DEFAULT_GUARD_KEYS = 10_000;
const MAX_SENDERS = 1_024;

/**
 * Remembers the latest write stamp announced for each key (bounded) and
 * refuses copies stamped before it. When a key is forgotten to stay within
 * the bound, its stamp raises a per-sender floor instead: copies from that
 * sender stamped before the floor are refused for every key. That errs on the
 * side of refusing a copy (the cost: a replica without a copy, which loads
 * through the owner) and never admits a stale one.
 */
export class StaleGuard {
  private readonly keys = new Map<string, Announced>();
  private readonly floors = new Map<string, Stamp>();

  constructor(private readonly limit: number = DEFAULT_GUARD_KEYS) {}

  /** Notes that `from` applied a write to `key` at `stamp`. */
  record(key: string, from: string, stamp: Stamp): void {
    const known = this.keys.get(key);
    if (known !== undefined) {
      this.keys.delete(key);
      if (known.from === from && stampBefore(stamp, known.stamp)) stamp = known.stamp;
    }
    this.keys.set(key, { from, stamp });
    if (this.keys.size > this.limit) {
      const [oldestKey, oldest] = this.keys.entries().next().value as [string, Announced];
      this.keys.delete(oldestKey);
      this.raiseFloor(oldest.from, oldest.stamp);
    }
  }

  /** Whether a copy of `key` that `from` read at `stamp` may be kept. */
  admits(key: string, from: string, stamp: Stamp): boolean {
    const floor = this.floors.get(from);
    if (floor !== undefined && stampBefore(stamp, floor)) return false;
    const known = this.keys.get(key);
    return known === undefined || known.from !== from || !stampBefore(stamp, known.stamp);
  }

  /** Keys remembered now. */
  get size(): number {
    return this.keys.size;
  }

  private raiseFloor(from: string, stamp: Stamp): void {
    const floor = this.floors.get(from);
    if (floor !== undefined && !stampBefore(floor, stamp)) return;
    this.floors.delete(from);
    this.floors.set(from, stamp);
    // Senders are members; a bound keeps a misbehaving client from growing the map.
    if (this.floors.size > MAX_SENDERS) {
      this.floors.delete(this.floors.keys().next().value as string);
    }
  }
}
