// The client-facing `distcache.CacheService` (Get, Set, Delete) over Connect,
// answering as the reference implementation does: failures in-band, in `err`
// (and a Set's value no cache keeps, with success=true).
import { Code, ConnectError, type ConnectRouter, type HandlerContext } from "@connectrpc/connect";
import {
  ByteView,
  InvalidKeyError,
  LoadsOverloadedError,
  PropagationError,
  type PropagationResult,
  type SetResult,
} from "@distcache/core";
import { errorMessage } from "../error-message.js";
import { CacheService } from "../gen/distcache/cache_pb.js";
import type { ServiceContext } from "./host.js";
import { checkKey, checkValue, rethrowIfCancelled } from "./validation.js";

/** Registers `distcache.CacheService` on `router`, serving `services.host`'s groups. */
export function registerCacheService(router: ConnectRouter, services: ServiceContext): void {
  const { host, limits } = services;
  router.service(CacheService, {
    async get(request, context) {
      const group = host.group(request.group);
      if (group === undefined) return { found: false, err: `no such group: ${request.group}` };
      if (request.key === "") return { found: false, err: "key is required" };
      checkKey(request.key, limits);
      try {
        const view = await group.get(request.key, { signal: context.signal });
        return { data: ByteView.unwrap(view), found: true };
      } catch (error) {
        rethrowIfCancelled(error, context);
        // The origin's load queue is full: a shed, not an answer about the key.
        if (error instanceof LoadsOverloadedError) {
          throw new ConnectError(error.message, Code.ResourceExhausted);
        }
        return { found: false, err: errorMessage(error) };
      }
    },

    async set(request, context) {
      if (!limits.allowClientSet) {
        throw new ConnectError("Set is disabled on this node", Code.PermissionDenied);
      }
      const group = host.group(request.group);
      if (group === undefined) return { success: false, err: `no such group: ${request.group}` };
      if (request.key === "") return { success: false, err: "key is required" };
      checkKey(request.key, limits);
      checkValue(request.data, limits);
      return propagate(
        () => group.set(request.key, request.data, { signal: context.signal }),
        context,
      );
    },

    async delete(request, context) {
      const group = host.group(request.group);
      if (group === undefined) return { success: false, err: `no such group: ${request.group}` };
      if (request.key === "") return { success: false, err: "key is required" };
      checkKey(request.key, limits);
      return propagate(() => group.delete(request.key, { signal: context.signal }), context);
    },
  });
}

/**
 * A cluster-wide write's answer: success, with in `err` a Set's value that no
 * cache keeps (`SetResult.notCached`'s message, first) and the members that
 * did not acknowledge (`not acknowledged by ADDR: REASON; ...`), joined by "; ".
 */
async function propagate(
  operation: () => Promise<SetResult | PropagationResult>,
  context: HandlerContext,
): Promise<{ success: boolean; err: string }> {
  try {
    const result = await operation();
    const parts: string[] = [];
    if ("notCached" in result && result.notCached !== undefined) {
      parts.push(result.notCached.message);
    }
    if (result.failed.length > 0) {
      parts.push(
        `not acknowledged by ${result.failed.map((f) => `${f.peer}: ${f.reason}`).join("; ")}`,
      );
    }
    return { success: true, err: parts.join("; ") };
  } catch (error) {
    rethrowIfCancelled(error, context);
    if (error instanceof PropagationError || error instanceof InvalidKeyError) {
      return { success: false, err: error.message };
    }
    throw error;
  }
}
