// What a cluster-wide write reports: the members it could not reach (and, for
// a Set, a value no cache keeps), and the one helper that settles a planned set
// of peer calls into that report.
/** What a cluster-wide {@link Group.delete} or {@link Group.set} could not reach. */
export interface PropagationResult {
  /** Peers that did not acknowledge, each with the reason. Empty when all did. */
  readonly failed: readonly { readonly peer: string; readonly reason: string }[];
}

/** A value {@link Group.set} wrote but no cache keeps: its entry is over the group's budget. */
export interface NotCached {
  /** The value's length in bytes. */
  readonly valueBytes: number;
  /**
   * What its entry would be charged: the key's UTF-8 bytes + the value's
   * bytes rounded up to a size class + the per-entry overhead (the group's
   * cache is a `ByteLRU`; see `@distcache/lru`).
   */
  readonly entryBytes: number;
  /** The group's byte budget (`cacheBytes`) on this node. */
  readonly budget: number;
  /**
   * For people: `value of N bytes not cached: over the group's M-byte budget
   * (the entry is charged E bytes with key and overhead)`. A transport puts
   * it in its answer (`SetResponse.err`).
   */
  readonly message: string;
}

/** What {@link Group.set} reports. */
export interface SetResult extends PropagationResult {
  /**
   * Present when the value is larger than the group's budget can hold. The
   * write still happened: every member dropped its old copy (so no node
   * serves the old value), but no cache keeps the new one, so the next `get`
   * calls the getter. Judged against this node's budget for the group (the
   * members of a cluster are expected to give a group the same budget).
   * Absent when the value is cached, and always with a budget of `0`.
   */
  readonly notCached?: NotCached;
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

/** The result of a write every member acknowledged. */
export const NO_FAILURES: PropagationResult = Object.freeze({ failed: Object.freeze([]) });

/** One peer call of a cluster-wide write. */
export interface PlannedCall {
  /** The member called (a `PeerClient`). */
  readonly peer: { readonly id: string };
  /**
   * The call. The owner's answer is a report of its own (copying a Set on to
   * its replicas): the members it could not reach are added.
   */
  readonly call: Promise<PropagationResult | undefined>;
  /** The key's owner: if it does not acknowledge, the whole write fails; its report counts. */
  readonly owner?: boolean;
}

/**
 * Waits for every planned call and reports the members that did not
 * acknowledge (with what they answered, and what the peers that answered
 * could not reach themselves).
 *
 * @throws PropagationError when the owner's call failed.
 */
export async function settle(
  operation: "delete" | "set",
  calls: readonly PlannedCall[],
): Promise<PropagationResult> {
  const outcomes = await Promise.allSettled(calls.map((planned) => planned.call));
  const failed: { peer: string; reason: string }[] = [];
  let ownerFailed = false;
  const reported: { peer: string; reason: string }[] = [];
  outcomes.forEach((outcome, i) => {
    const planned = calls[i]!;
    if (outcome.status === "fulfilled") {
      // Only the owner copies on or fans out on this write's behalf.
      const failures = planned.owner === true ? outcome.value?.failed : undefined;
      if (Array.isArray(failures)) reported.push(...failures);
      return;
    }
    if (planned.owner === true) ownerFailed = true;
    failed.push({ peer: planned.peer.id, reason: errorMessage(outcome.reason) });
  });
  if (ownerFailed) {
    const summary = failed.map((f) => `${f.peer}: ${f.reason}`).join("; ");
    throw new PropagationError(`${operation} not acknowledged by the owner (${summary})`, failed);
  }
  failed.push(...reported);
  return failed.length === 0 ? NO_FAILURES : { failed };
}

/** The message of anything thrown. */
export function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
