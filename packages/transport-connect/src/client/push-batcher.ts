// The replication-push batcher: the copies a node's loads push to one
// replica during an event-loop turn, per group, leave as one batch (one
// `StoreMany`; see peer-client.ts).
import type { Stamp } from "@distcache/core";
import { type Batch, Batcher } from "./batcher.js";

/** A load's replication push, waiting for its batch. */
export interface Push {
  readonly key: string;
  readonly value: Uint8Array;
  readonly stamp: Stamp | undefined;
}

/** One batch of pushes: `queue` is their group. */
export type PushBatch = Batch<Push, void>;

/** Sends one {@link PushBatch}; see {@link BatchSender}. */
export type SendPushes = (batch: PushBatch) => Promise<void>;

/** Most pushes in one `StoreMany` (the receiver takes up to 1024). */
const MAX_BATCH_PUSHES = 256;
/**
 * Most bytes of keys and values in one `StoreMany`: half the receiver's
 * default read limit (1 MiB of value + 1 KiB of key + 1 KiB), so a batch is
 * never refused for its size where a single `Store` of each would pass. A
 * push larger than this goes alone.
 */
const MAX_BATCH_PUSH_BYTES = 512 << 10;
/** Bytes counted per push for its framing and stamp. */
const PUSH_OVERHEAD_BYTES = 32;
/** Most pushes unanswered at one peer; more wait for room (bounds memory, not latency). */
const MAX_PUSHES_IN_FLIGHT = 4_096;

/** A push's share of {@link MAX_BATCH_PUSH_BYTES}: its key at 3 UTF-8 bytes per code unit, its value, its framing. */
function pushBytes(push: Push): number {
  return push.key.length * 3 + push.value.byteLength + PUSH_OVERHEAD_BYTES;
}

/**
 * Gathers the replication pushes made to one peer into batches: per group,
 * the pushes made during one event-loop turn (see {@link Batcher}).
 */
export class PushBatcher {
  private readonly batcher: Batcher<Push, void>;

  constructor(send: SendPushes) {
    this.batcher = new Batcher<Push, void>(send, pushBytes, {
      maxItems: MAX_BATCH_PUSHES,
      maxWeight: MAX_BATCH_PUSH_BYTES,
      maxInFlight: MAX_PUSHES_IN_FLIGHT,
    });
  }

  /**
   * Pushes `value` of `key` in `group` in the next batch for that group.
   * Rejects with `signal.reason` as soon as `signal` aborts, and with
   * whatever the send function reports for the push.
   */
  push(
    group: string,
    key: string,
    value: Uint8Array,
    stamp: Stamp | undefined,
    signal?: AbortSignal,
  ): Promise<void> {
    return this.batcher.add(group, { key, value, stamp }, signal);
  }
}
