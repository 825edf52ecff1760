// What a cluster-wide write reports: the members it could not reach, and the
// one helper that settles a planned set of peer calls into that report.
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

/** The result of a write every member acknowledged. */
export const NO_FAILURES: PropagationResult = Object.freeze({ failed: Object.freeze([]) });

/** One peer call of a cluster-wide write. */
export interface PlannedCall {
  /** The member called (a `PeerClient`). */
  readonly peer: { readonly id: string };
  /**
   * The call. Its answer, when it is a report of its own (an owner copying a
   * Set on to its replicas, or fanning out a Delete), adds the members that
   * peer could not reach.
   */
  readonly call: Promise<PropagationResult | undefined>;
  /** The key's owner: if it does not acknowledge, the whole write fails. */
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
      if (outcome.value) reported.push(...outcome.value.failed);
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
