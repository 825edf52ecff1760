// One `PeerService/StoreMany` being served: the checks, then every replication
// push handed to the group's peer handler. Shared by the Connect handler
// (peer-service.ts) and the gRPC fast path (fast-path/store-many.ts), so both
// answer alike.
import { Code, ConnectError } from "@connectrpc/connect";
import type { Stamp } from "@distcache/core";
import type { StoreManyRequestFields } from "../grpc/peer-codec.js";
import { fromWire } from "../peer-wire.js";
import type { ServiceContext } from "./host.js";
import {
  checkPeerKey,
  checkValue,
  noteSender,
  peerGroup,
  STORE_MANY_MAX_ITEMS,
} from "./validation.js";

/**
 * Counts the call, checks it, keeps every item it may keep (a push older
 * than a write the sender announced is refused, as `Store` refuses it), and
 * resolves with the `ahead` stamp of the answer: the highest epoch of this
 * node's stamps that some item was behind, or `undefined`.
 *
 * @param peerHeader the call's `distcache-peer` header (see noteSender).
 * @throws ConnectError INVALID_ARGUMENT (no sender, no items, too many items,
 *   an empty or oversized key, an oversized value, a stamp out of range:
 *   nothing is kept), PERMISSION_DENIED (a sender that is not a member or
 *   not the authenticated peer) or FAILED_PRECONDITION (unknown group).
 */
export async function storeMany(
  services: ServiceContext,
  request: StoreManyRequestFields,
  peerHeader: string | null | undefined,
): Promise<Stamp | undefined> {
  const { host, limits, received } = services;
  received.storeMany++;
  const from = noteSender(services, request.sender, peerHeader);
  const group = peerGroup(host, request.group);
  const { items } = request;
  if (items.length === 0) {
    throw new ConnectError("StoreMany without items", Code.InvalidArgument);
  }
  if (items.length > STORE_MANY_MAX_ITEMS) {
    throw new ConnectError(
      `StoreMany of ${items.length} items; at most ${STORE_MANY_MAX_ITEMS}`,
      Code.InvalidArgument,
    );
  }
  // All items are checked before any is kept: a bad batch keeps nothing.
  const stamps = items.map((item) => {
    checkPeerKey(item.key, limits);
    checkValue(item.data, limits);
    return fromWire(item.stamp);
  });
  received.storeManyItems += items.length;
  // Started in request order (a push is kept before `store` first awaits),
  // so of two pushes of one key the later one stays.
  const results = await Promise.all(
    items.map((item, index) =>
      group.peerHandler.store(item.key, item.data, {
        from,
        replicate: false,
        stamp: stamps[index],
      }),
    ),
  );
  // The sender is behind if any item was: one `ahead` for the batch.
  let ahead: Stamp | undefined;
  for (const result of results) {
    if (result.ahead !== undefined && (ahead === undefined || ahead.epoch < result.ahead.epoch))
      ahead = result.ahead;
  }
  return ahead;
}
