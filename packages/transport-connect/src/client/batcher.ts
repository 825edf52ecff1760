// The generic batcher under the fetch and push batchers: gathers the items
// added for one peer during an event-loop turn into batches, bounds what is
// in flight, and settles each caller as its item's result is reported.
import { hasLeft, type Leave, type Receiver, unwatchLeave, watchLeave } from "@distcache/core";

/** One batch for a {@link BatchSender}: items of one queue, in the order results are reported. */
export interface Batch<Item, Result> {
  /** The queue the items were added to (see {@link Batcher.add}). */
  readonly queue: string;
  /** The items; the same item may appear twice. */
  readonly items: readonly Item[];
  /**
   * Aborts when every caller still waiting on the batch has left: nobody
   * needs the rest of the answers. A caller leaving alone aborts nothing.
   */
  readonly signal: AbortSignal;
  /** Settles `items[index]` with its result. Later reports of the index are ignored. */
  resolve(index: number, result: Result): void;
  /** Settles `items[index]` with an error. Later reports of the index are ignored. */
  reject(index: number, error: unknown): void;
}

/**
 * Sends one batch and reports each item's result with `batch.resolve` or
 * `batch.reject` as it arrives. The batcher rejects items left unreported
 * when the returned promise settles: with its error, or, when it fulfils,
 * with an error saying the batch ended without the item's result.
 */
export type BatchSender<Item, Result> = (batch: Batch<Item, Result>) => Promise<void>;

/** Limits and scheduling of a {@link Batcher}. */
export interface BatcherOptions {
  /** Most items in one batch. */
  readonly maxItems: number;
  /**
   * Most weight (see {@link Batcher}'s `weight`) in one batch, so a batch
   * stays well within the receiver's read limit. An item heavier than this
   * goes alone.
   */
  readonly maxWeight: number;
  /**
   * Most items sent to the peer and not yet answered. Items past it wait
   * here, their peer timeout not yet running, until answers free room; they
   * then go out in larger batches. Bounds the work one node can pile on a
   * peer at once (a burst of cold keys), so the items sent are answered
   * within the peer timeout instead of timing out in the peer's queue.
   */
  readonly maxInFlight: number;
  /**
   * Runs `flush` once the current event-loop turn's I/O has been handled.
   * Default `setImmediate`: every item added while the requests read in one
   * turn are served goes in one batch. Tests pass their own.
   */
  readonly schedule?: ((flush: () => void) => void) | undefined;
}

/** Counters of one batcher; see {@link Batcher.stats}. */
export interface BatcherStats {
  /** Batches handed to the send function. */
  readonly batches: number;
  /** Items in those batches. */
  readonly items: number;
  /** Items waiting to be sent now. */
  readonly queued: number;
  /** Items sent and not yet answered now. */
  readonly inFlight: number;
}

/** One caller of {@link Batcher.addTo} (or of {@link Batcher.add}, through a promise's receiver). */
interface Waiter<Item, Result> {
  readonly item: Item;
  readonly weight: number;
  readonly leave: Leave | undefined;
  readonly receiver: Receiver<Result>;
  /** Its receiver was told (answered, failed, or the caller left). */
  settled: boolean;
  /** Its item was sent and has not been answered yet (counts toward `inFlight`). */
  sent: boolean;
  /** The batch it went out in, once sent. */
  batch: Sent | undefined;
  onAbort: (() => void) | undefined;
}

/** Items of one queue, not yet sent. */
interface Queue<Item, Result> {
  readonly id: string;
  waiters: Waiter<Item, Result>[];
  /** Weight of the live waiters' items. */
  weight: number;
  /** Waiters in `waiters` whose callers are still waiting. */
  live: number;
}

/** A batch handed to the send function. */
interface Sent {
  readonly controller: AbortController;
  /** Waiters not yet settled. */
  open: number;
}

/**
 * Gathers `add` calls for one peer into batches: per queue, the items added
 * during one event-loop turn, up to `maxItems` (and `maxWeight`) per batch,
 * with at most `maxInFlight` items unanswered at the peer.
 *
 * Why: a peer call costs far more than the cache lookup it carries, and what
 * reaches a peer client at once is many *distinct* keys (a group already
 * merges concurrent reads of one key). One call per batch pays that cost
 * once per batch instead of once per item. The batcher knows no wire: its
 * send function (see peer-client.ts) turns a batch into one call.
 *
 * Each caller's `signal` abandons only that caller's wait; the batch goes on
 * for the others, and is aborted only when every caller still waiting on it
 * has left.
 */
export class Batcher<Item, Result> {
  private readonly maxItems: number;
  private readonly maxWeight: number;
  private readonly maxInFlight: number;
  private readonly schedule: (flush: () => void) => void;
  private readonly queues = new Map<string, Queue<Item, Result>>();
  private scheduled = false;
  private inFlight = 0;
  private queued = 0;
  private batches = 0;
  private itemsSent = 0;

  /**
   * @param send sends one batch (see {@link BatchSender}).
   * @param weight an item's share of `maxWeight` (e.g. its bytes).
   */
  constructor(
    private readonly send: BatchSender<Item, Result>,
    private readonly weight: (item: Item) => number,
    options: BatcherOptions,
  ) {
    this.maxItems = positiveInteger("maxItems", options.maxItems);
    this.maxWeight = positiveInteger("maxWeight", options.maxWeight);
    this.maxInFlight = positiveInteger("maxInFlight", options.maxInFlight);
    this.schedule = options.schedule ?? ((flush) => setImmediate(flush));
  }

  /**
   * Adds `item` to the next batch of `queue` and resolves with its result.
   * Rejects with `leave.reason` as soon as `leave` aborts (or is cancelled),
   * and with whatever the send function reports for the item.
   */
  add(queue: string, item: Item, leave?: Leave): Promise<Result> {
    return new Promise<Result>((resolve, reject) =>
      this.addTo(queue, item, { resolve, reject }, leave),
    );
  }

  /**
   * As {@link Batcher.add}, with the outcome reported to `receiver` (called
   * synchronously: at once if `leave` has fired, else as the send function
   * reports the item or its batch ends).
   */
  addTo(queue: string, item: Item, receiver: Receiver<Result>, leave?: Leave): void {
    if (leave !== undefined && hasLeft(leave)) {
      receiver.reject(leave.reason);
      return;
    }
    let into = this.queues.get(queue);
    if (into === undefined) {
      into = { id: queue, waiters: [], weight: 0, live: 0 };
      this.queues.set(queue, into);
    }
    const waiter: Waiter<Item, Result> = {
      item,
      weight: this.weight(item),
      leave,
      receiver,
      settled: false,
      sent: false,
      batch: undefined,
      onAbort: undefined,
    };
    if (leave !== undefined) {
      const queued = into;
      const onAbort = () => this.abandon(waiter, queued);
      waiter.onAbort = onAbort;
      watchLeave(leave, onAbort);
    }
    into.waiters.push(waiter);
    into.live++;
    into.weight += waiter.weight;
    this.queued++;
    if (into.live >= this.maxItems || into.weight >= this.maxWeight) {
      // A full batch goes at once, if the peer has room for it.
      if (this.inFlight < this.maxInFlight) this.dispatch(into);
    }
    this.wake();
  }

  /** A snapshot of the counters. */
  stats(): BatcherStats {
    return {
      batches: this.batches,
      items: this.itemsSent,
      queued: this.queued,
      inFlight: this.inFlight,
    };
  }

  /** Asks for a flush at the end of this turn, unless one is asked already or nothing waits. */
  private wake(): void {
    if (this.scheduled || this.queued === 0) return;
    this.scheduled = true;
    this.schedule(() => {
      this.scheduled = false;
      this.flush();
    });
  }

  /** Sends what waits, batch by batch, while the peer has room. */
  private flush(): void {
    for (const [id, queue] of this.queues) {
      while (queue.live > 0 && this.inFlight < this.maxInFlight) this.dispatch(queue);
      if (queue.live === 0) this.queues.delete(id);
      if (this.inFlight >= this.maxInFlight) break;
    }
  }

  /** Takes the next batch off `queue` (live waiters only) and sends it. */
  private dispatch(queue: Queue<Item, Result>): void {
    const room = Math.min(this.maxItems, this.maxInFlight - this.inFlight);
    const waiters: Waiter<Item, Result>[] = [];
    const items: Item[] = [];
    let weight = 0;
    let taken = 0;
    const all = queue.waiters;
    while (taken < all.length && waiters.length < room) {
      const waiter = all[taken]!;
      if (!waiter.settled) {
        if (waiters.length > 0 && weight + waiter.weight > this.maxWeight) break;
        weight += waiter.weight;
        waiters.push(waiter);
        items.push(waiter.item);
      }
      taken++;
    }
    queue.waiters = taken === all.length ? [] : all.slice(taken);
    queue.live -= waiters.length;
    queue.weight -= weight;
    this.queued -= waiters.length;
    if (waiters.length === 0) return;

    const sent: Sent = { controller: new AbortController(), open: waiters.length };
    for (const waiter of waiters) {
      waiter.sent = true;
      waiter.batch = sent;
    }
    this.inFlight += waiters.length;
    this.batches++;
    this.itemsSent += waiters.length;
    const answer = (index: number): Waiter<Item, Result> | undefined => {
      const waiter = waiters[index];
      if (waiter === undefined) return undefined;
      this.land(waiter);
      if (waiter.settled) return undefined;
      this.settle(waiter);
      return waiter;
    };
    const batch: Batch<Item, Result> = {
      queue: queue.id,
      items,
      signal: sent.controller.signal,
      resolve: (index, result) => answer(index)?.receiver.resolve(result),
      reject: (index, error) => answer(index)?.receiver.reject(error),
    };
    let outcome: Promise<void>;
    try {
      outcome = this.send(batch);
    } catch (error) {
      outcome = Promise.reject(error);
    }
    outcome.then(
      () =>
        this.finish(waiters, () => new Error("the peer's batch ended without this item's result")),
      (error: unknown) => this.finish(waiters, () => error),
    );
  }

  /** The batch ended: every item it did not answer fails, and its room is freed. */
  private finish(waiters: readonly Waiter<Item, Result>[], failure: () => unknown): void {
    for (const waiter of waiters) {
      this.land(waiter);
      if (waiter.settled) continue;
      this.settle(waiter);
      waiter.receiver.reject(failure());
    }
  }

  /** A sent item is answered (or its batch ended): it no longer takes room at the peer. */
  private land(waiter: Waiter<Item, Result>): void {
    if (!waiter.sent) return;
    waiter.sent = false;
    this.inFlight--;
    if (this.queued > 0) this.wake();
  }

  /** Marks `waiter` settled: it no longer listens for its leave or counts as waiting on its batch. */
  private settle(waiter: Waiter<Item, Result>): void {
    waiter.settled = true;
    const onAbort = waiter.onAbort;
    if (onAbort !== undefined) unwatchLeave(waiter.leave!, onAbort);
    if (waiter.batch !== undefined) waiter.batch.open--;
  }

  /** The caller left: reject it now; abort its batch if nobody else waits on it. */
  private abandon(waiter: Waiter<Item, Result>, queue: Queue<Item, Result>): void {
    if (waiter.settled) return;
    waiter.settled = true;
    waiter.onAbort = undefined;
    const reason = waiter.leave!.reason;
    waiter.receiver.reject(reason);
    const sent = waiter.batch;
    if (sent === undefined) {
      // Not sent yet: it is skipped when its queue is next dispatched.
      queue.live--;
      queue.weight -= waiter.weight;
      this.queued--;
      return;
    }
    if (--sent.open === 0) sent.controller.abort(reason);
  }
}

function positiveInteger(name: string, value: number): number {
  if (!Number.isInteger(value) || value < 1) {
    throw new RangeError(`${name} must be an integer >= 1, got ${value}`);
  }
  return value;
}
