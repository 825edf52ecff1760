// When a peer call gives up: a deadline from the call's start, or from the
// peer's last sign of progress, with one more turn to read answers that
// arrived meanwhile. Shared by ServerStreamCall (a call on its own stream)
// and the calls of an Exchange stream (exchange.ts).
import { Code, ConnectError } from "@connectrpc/connect";

/** When a peer call gives up. */
export interface StreamDeadline {
  /** The call fails with DEADLINE_EXCEEDED when the peer shows no progress for this long (ms). */
  readonly timeoutMs: number;
  /**
   * When the peer last showed progress (`performance.now()`), e.g. answered
   * any key of any batch: the quiet time counts from the later of this and
   * the call's start. Without it, the call has `timeoutMs` in all.
   */
  readonly progress?: (() => number) | undefined;
  /** Bound on the whole call (ms), also sent as `grpc-timeout` by a call on its own stream. Default `timeoutMs`. */
  readonly maxMs?: number | undefined;
}

/**
 * The timer of one call: calls `expired` with DEADLINE_EXCEEDED once the
 * deadline passes, unless {@link stop}ped first. Starts when made.
 */
export class CallDeadline {
  private readonly timeoutMs: number;
  private readonly progress: (() => number) | undefined;
  private readonly maxMs: number;
  private readonly started = performance.now();
  private timer: NodeJS.Timeout | undefined;
  /** The deadline passed once and was given one more turn (see {@link expire}). */
  private graced = false;
  private stopped = false;

  constructor(
    deadline: StreamDeadline,
    private readonly expired: (error: ConnectError) => void,
  ) {
    this.timeoutMs = deadline.timeoutMs;
    this.progress = deadline.progress;
    this.maxMs = deadline.maxMs ?? deadline.timeoutMs;
    this.timer = setTimeout(this.expire, Math.min(this.timeoutMs, this.maxMs));
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
  }

  private readonly expire = (): void => {
    if (this.stopped) return;
    const now = performance.now();
    const left = this.started + this.maxMs - now;
    const quiet = now - Math.max(this.started, this.progress?.() ?? this.started);
    if (left <= 0 || quiet >= this.timeoutMs) {
      if (!this.graced) {
        // Timers run before I/O in a loop turn: after a busy turn, answers
        // that came meanwhile are still unread. Read them, then decide.
        this.graced = true;
        setImmediate(this.expire);
        return;
      }
      const text =
        left <= 0
          ? `no answer within ${this.maxMs} ms`
          : `no answer from the peer for ${this.timeoutMs} ms`;
      this.stopped = true;
      this.expired(new ConnectError(text, Code.DeadlineExceeded));
      return;
    }
    this.graced = false;
    this.timer = setTimeout(this.expire, Math.min(this.timeoutMs - quiet, left));
  };
}
