// The `grpc-timeout` request header as the hand-written gRPC paths read it:
// Connect's parser (same syntax, same error text), plus what a Node timer can
// hold.
import { Code, ConnectError } from "@connectrpc/connect";
// Connect marks protocol-grpc's helpers internal (no semver promise): the
// package pins Connect to one version, and a bump re-checks these uses.
import { parseTimeout as parseGrpcTimeout } from "@connectrpc/connect/protocol-grpc";

/** `setTimeout` fires at once past this (about 24.8 days): a longer deadline is served as none. */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * The deadline a request's `grpc-timeout` header sets, ready for a timer: its
 * milliseconds; `undefined` for none (no header, or longer than
 * {@link MAX_TIMER_MS}); or, for a malformed value, the INVALID_ARGUMENT to
 * answer with.
 */
export function requestTimeout(
  header: string | string[] | undefined,
): number | ConnectError | undefined {
  if (header === undefined) return undefined;
  if (typeof header !== "string") {
    return new ConnectError(
      `protocol error: invalid grpc timeout value: ${String(header)}`,
      Code.InvalidArgument,
    );
  }
  // Peers always send whole milliseconds: read those without Connect's
  // regular expression (its result is the same number).
  const ms = wholeMilliseconds(header);
  if (ms !== undefined) return ms;
  const { timeoutMs, error } = parseGrpcTimeout(header, Number.POSITIVE_INFINITY);
  if (error !== undefined) return error;
  return timeoutMs !== undefined && timeoutMs <= MAX_TIMER_MS ? timeoutMs : undefined;
}

const DIGIT_0 = 48;
const DIGIT_9 = 57;
const UNIT_MS = 109; // "m"

/**
 * `header` as `NNNm` (1 to 8 digits, then "m"): its milliseconds, which are
 * what Connect's parser gives for it; `undefined` for any other form.
 */
function wholeMilliseconds(header: string): number | undefined {
  const length = header.length;
  if (length < 2 || length > 9 || header.charCodeAt(length - 1) !== UNIT_MS) return undefined;
  let ms = 0;
  for (let i = 0; i < length - 1; i++) {
    const c = header.charCodeAt(i);
    if (c < DIGIT_0 || c > DIGIT_9) return undefined;
    ms = ms * 10 + (c - DIGIT_0);
  }
  return ms;
}
