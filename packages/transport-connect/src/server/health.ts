// grpc.health.v1.Health on the main port: the node's serving status (one
// `phase`), Check, and Watch streams that see every change and end when the
// server closes.
import { Code, ConnectError, type ConnectRouter } from "@connectrpc/connect";
import {
  Health,
  HealthCheckResponse_ServingStatus as Status,
} from "../gen/grpc/health/v1/health_pb.js";

/** Where the node is in its life, as health reports it. */
export type HealthPhase = "starting" | "serving" | "draining";

/** Longest service name echoed back in an error. */
const MAX_ECHOED_NAME = 200;
/**
 * Watch streams open at once. A Watch's request has ended, so it is never
 * reset as a stalled upload, and it holds a `maxRequestsInFlight` slot for as
 * long as it lasts: without a bound, a client could fill the node's
 * admission limit with Watches. A few probes and balancers need a handful.
 */
export const MAX_WATCHES = 100;

/**
 * The node's serving status: NOT_SERVING while `starting` (not listening, or
 * no member list yet) and `draining` (close() began), SERVING in between.
 * Every service the node serves has the node's status; "" names the node.
 */
export class HealthState {
  private phaseNow: HealthPhase = "starting";
  private ended = false;
  /** Watch streams open now. */
  watching = 0;
  /** Resolved and replaced on every change, so each Watch awaits one promise. */
  private change = signal();

  constructor(private readonly services: readonly string[]) {}

  get phase(): HealthPhase {
    return this.phaseNow;
  }

  /** Moves to `phase`; Watch streams are told if the status changed. */
  set(phase: HealthPhase): void {
    if (phase === this.phaseNow) return;
    this.phaseNow = phase;
    this.wake();
  }

  /** The status of `service` ("" = the node), or `undefined` for a service not served here. */
  status(service: string): Status | undefined {
    if (service !== "" && !this.services.includes(service)) return undefined;
    return this.phaseNow === "serving" ? Status.SERVING : Status.NOT_SERVING;
  }

  /** Ends every Watch stream (after its last update); new ones end at once. Until {@link reopen}. */
  endWatches(): void {
    this.ended = true;
    this.wake();
  }

  /** Back to `starting` after a close: a pool may serve again. */
  reopen(): void {
    this.ended = false;
    this.set("starting");
  }

  /** The serving statuses a Watch of `service` sends, until the watches end or `signal` aborts. */
  async *watch(service: string, signal: AbortSignal): AsyncGenerator<Status> {
    let last: Status | undefined;
    while (!signal.aborted) {
      const changed = this.change.promise;
      const status = this.status(service) ?? Status.SERVICE_UNKNOWN;
      if (status !== last) {
        last = status;
        yield status;
      }
      if (this.ended) return;
      await untilAborted(changed, signal);
    }
  }

  private wake(): void {
    const change = this.change;
    this.change = signal();
    change.resolve();
  }
}

/** A promise and its resolve (Promise.withResolvers is ES2024; the build targets less). */
function signal(): { promise: Promise<void>; resolve: () => void } {
  let resolve!: () => void;
  const promise = new Promise<void>((done) => {
    resolve = done;
  });
  return { promise, resolve };
}

/** `promise`, or earlier when `signal` aborts (resolving either way). */
function untilAborted(promise: Promise<void>, signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.resolve();
  return new Promise<void>((resolve) => {
    const onAbort = () => resolve();
    signal.addEventListener("abort", onAbort, { once: true });
    void promise.then(() => {
      signal.removeEventListener("abort", onAbort);
      resolve();
    });
  });
}

/** Registers `grpc.health.v1.Health` on `router`, answering from `state`. */
export function registerHealthService(router: ConnectRouter, state: HealthState): void {
  router.service(Health, {
    check(request) {
      const status = state.status(request.service);
      if (status === undefined) {
        throw new ConnectError(
          `unknown service ${JSON.stringify(request.service.slice(0, MAX_ECHOED_NAME))}`,
          Code.NotFound,
        );
      }
      return { status };
    },
    async *watch(request, context) {
      if (state.watching >= MAX_WATCHES) {
        throw new ConnectError(
          `${MAX_WATCHES} health Watch streams are open on this node; use Check`,
          Code.ResourceExhausted,
        );
      }
      state.watching++;
      try {
        for await (const status of state.watch(request.service, context.signal)) yield { status };
      } finally {
        state.watching--;
      }
    },
  });
}
