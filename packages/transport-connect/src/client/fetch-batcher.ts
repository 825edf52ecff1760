// The fetch batcher: the forwarded Gets a node asks of one peer during an
// event-loop turn, per group and `cacheOnly`, leave as one batch (one
// `FetchMany`; see peer-client.ts).
import type { Leave, PeerValue, Receiver } from "@distcache/core";
import { Batcher } from "./batcher.js";

/** Default most keys in one fetch batch. */
export const DEFAULT_MAX_BATCH_KEYS = 128;
/**
 * Default most keys of fetches unanswered at one peer. A cold key costs its
 * owner a load and R replication pushes, all of which must fit within the
 * peer timeout; 128 hits in flight per peer are more than a node needs to
 * batch well.
 */
export const DEFAULT_MAX_KEYS_IN_FLIGHT = 128;
/** Default most UTF-16 code units of keys in one fetch batch (at most 384 KiB in UTF-8). */
const DEFAULT_MAX_KEY_CHARS = 131_072;

/** One batch of fetches for a {@link SendBatch} function: keys of one group, asked alike. */
export interface FetchBatch {
  readonly group: string;
  /** Every key is asked from the peer's cache only. */
  readonly cacheOnly: boolean;
  /** The keys, in the order results are reported by index. A key may appear twice. */
  readonly keys: readonly string[];
  /** See {@link Batch.signal}. */
  readonly signal: AbortSignal;
  /** Settles `keys[index]` with its value (`undefined`: not cached). Later reports are ignored. */
  resolve(index: number, value: PeerValue | undefined): void;
  /** Settles `keys[index]` with an error. Later reports are ignored. */
  reject(index: number, error: unknown): void;
}

/** Sends one {@link FetchBatch}; see {@link BatchSender}. */
export type SendBatch = (batch: FetchBatch) => Promise<void>;

/** Options for {@link FetchBatcher}: {@link BatcherOptions} counted in keys. */
export interface FetchBatcherOptions {
  /** Most keys in one batch. Default {@link DEFAULT_MAX_BATCH_KEYS}. */
  readonly maxKeys?: number;
  /**
   * Most UTF-16 code units of keys in one batch, so a batch of long keys stays
   * well within the receiver's read limit (at most 3 bytes per code unit in
   * UTF-8). Default `131_072`. A single key longer than this goes alone.
   */
  readonly maxKeyChars?: number;
  /** See {@link BatcherOptions.maxInFlight}, in keys. Default {@link DEFAULT_MAX_KEYS_IN_FLIGHT}. */
  readonly maxKeysInFlight?: number;
  /** See {@link BatcherOptions.schedule}. */
  readonly schedule?: (flush: () => void) => void;
}

/** Counters of a {@link FetchBatcher}, in keys. */
export interface FetchBatcherStats {
  readonly batches: number;
  readonly keys: number;
  readonly queued: number;
  readonly inFlight: number;
}

/**
 * Gathers the fetches made to one peer into batches: per group and
 * `cacheOnly`, the keys asked during one event-loop turn (see {@link Batcher}).
 */
export class FetchBatcher {
  private readonly batcher: Batcher<string, PeerValue | undefined>;
  /** Each group's two queue ids (see {@link ONE}). */
  private readonly queueIds = new Map<string, readonly [string, string]>();

  constructor(send: SendBatch, options: FetchBatcherOptions = {}) {
    this.batcher = new Batcher<string, PeerValue | undefined>(
      (batch) => {
        const cacheOnly = batch.queue.charCodeAt(0) === ONE;
        return send({
          group: batch.queue.slice(1),
          cacheOnly,
          keys: batch.items,
          signal: batch.signal,
          resolve: batch.resolve,
          reject: batch.reject,
        });
      },
      (key) => key.length,
      {
        maxItems: options.maxKeys ?? DEFAULT_MAX_BATCH_KEYS,
        maxWeight: options.maxKeyChars ?? DEFAULT_MAX_KEY_CHARS,
        maxInFlight: options.maxKeysInFlight ?? DEFAULT_MAX_KEYS_IN_FLIGHT,
        schedule: options.schedule,
      },
    );
  }

  /**
   * The value of `key` in `group`, fetched in the next batch for that group.
   * Rejects with `leave.reason` as soon as `leave` fires, and with
   * whatever the send function reports for the key.
   */
  fetch(
    group: string,
    key: string,
    cacheOnly: boolean,
    leave?: Leave,
  ): Promise<PeerValue | undefined> {
    return this.batcher.add(this.queueId(group, cacheOnly), key, leave);
  }

  /** As {@link FetchBatcher.fetch}, with the outcome reported to `receiver` (see {@link Batcher.addTo}). */
  fetchTo(
    group: string,
    key: string,
    cacheOnly: boolean,
    receiver: Receiver<PeerValue | undefined>,
    leave?: Leave,
  ): void {
    this.batcher.addTo(this.queueId(group, cacheOnly), key, receiver, leave);
  }

  private queueId(group: string, cacheOnly: boolean): string {
    let ids = this.queueIds.get(group);
    if (ids === undefined) {
      // Made once per group: a fresh `1${group}` per call would be hashed per call.
      ids = [`0${group}`, `1${group}`];
      if (this.queueIds.size < MAX_QUEUE_IDS) this.queueIds.set(group, ids);
    }
    return ids[cacheOnly ? 1 : 0];
  }

  /** A snapshot of the counters. */
  stats(): FetchBatcherStats {
    const { batches, items, queued, inFlight } = this.batcher.stats();
    return { batches, keys: items, queued, inFlight };
  }
}

/** Groups whose queue ids are kept; past it (groups are few) ids are made per call. */
const MAX_QUEUE_IDS = 1_024;

/** The queue of a cache-only ask starts with "1", of an owner's ask with "0". */
const ONE = "1".charCodeAt(0);
