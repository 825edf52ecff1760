// How the client reads a node's in-band answers (status OK, the verdict in
// `found` / `success` and `err`): the rule that tells "not found" from a source
// error, and a Set's "not cached" report. Exit codes live here too.

/** The CLI's exit codes. */
export const EXIT = { ok: 0, notFound: 1, error: 2 } as const;
export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

/** What one answer means for the user: an exit code and, unless all is well, why. */
export interface Verdict {
  readonly exit: ExitCode;
  /**
   * For stderr, `CATEGORY: DETAIL` (`source error: …`, `unknown group: …`; a
   * value not cached is the node's own `value of N bytes not cached: …`);
   * absent for a plain success.
   */
  readonly message?: string;
  /** Things the user should know about a write that succeeded (stderr, exit code unchanged). */
  readonly warnings?: readonly string[];
}

/** The load timeout's message (singleflight's TimeoutError), as the node sends it. */
const LOAD_TIMEOUT = /^call did not settle within \d+ ms$/;

/**
 * The verdict on a `GetResponse` for `group`/`key`. The node says why a
 * value is missing only in `err` (docs/protocol.md, "In-band answers"), so:
 *
 * - `found=true`: found (exit 0).
 * - `err` is exactly `key not found: KEY` (core's `NotFoundError` default
 *   message, for this very key) or empty: not found (exit 1).
 * - `no such group: GROUP`: unknown group; `key is required`: bad key (exit 2).
 * - anything else is the getter's own failure, a source error (exit 2); the
 *   load timeout's `call did not settle within N ms` is named as such.
 *
 * A getter that throws `NotFoundError` with a message of its own is therefore
 * reported as a source error: keep the default message.
 */
export function judgeGet(
  group: string,
  key: string,
  answer: { found: boolean; err: string },
): Verdict {
  if (answer.found) return { exit: EXIT.ok };
  const err = answer.err;
  if (err === "" || err === `key not found: ${key}`) {
    return { exit: EXIT.notFound, message: `not found: key "${key}" in group "${group}"` };
  }
  return { exit: EXIT.error, message: judgeRequestError(group, err) ?? sourceError(err) };
}

function sourceError(err: string): string {
  return LOAD_TIMEOUT.test(err)
    ? `source error: the node's getter did not answer in time (${err}; the group's load timeout)`
    : `source error: the node's getter failed: ${err}`;
}

/** Errors about the request itself, answered in-band by Get, Set and Delete alike. */
function judgeRequestError(group: string, err: string): string | undefined {
  if (err === `no such group: ${group}`) return `unknown group: ${err}`;
  if (err === "key is required") return `bad key: ${err}`;
  return undefined;
}

/**
 * A Set's value no cache keeps: the first part of `err` on `success=true`,
 * as core's `SetResult.notCached.message` words it.
 */
const NOT_CACHED = /^value of \d+ bytes not cached: [^;]*/;

/**
 * The verdict on a `SetResponse` / `DeleteResponse`:
 *
 * - `success=false`: the write failed (exit 2): unknown group, bad key, or
 *   the key's owner did not acknowledge.
 * - `success=true` with `err` starting `value of N bytes not cached: …`
 *   (Set only): written, but no cache keeps it; exit 2, so that a script
 *   sees it: the next get calls the getter.
 * - `success=true` with `not acknowledged by …`: written, some non-owner
 *   members did not answer; a warning, exit 0.
 */
export function judgeWrite(
  operation: "set" | "delete",
  group: string,
  answer: { success: boolean; err: string },
): Verdict {
  const err = answer.err;
  if (!answer.success) {
    return {
      exit: EXIT.error,
      message: judgeRequestError(group, err) ?? `${operation} failed: ${err || "no reason given"}`,
    };
  }
  let rest = err;
  let message: string | undefined;
  const notCached = NOT_CACHED.exec(err);
  if (notCached !== null) {
    message = `${notCached[0]}; the write happened (every old copy was dropped), but the next get calls the getter`;
    rest = err.slice(notCached[0].length).replace(/^; /, "");
  }
  const warnings = rest === "" ? [] : [`warning: ${rest}`];
  return message === undefined
    ? { exit: EXIT.ok, warnings }
    : { exit: EXIT.error, message, warnings };
}
