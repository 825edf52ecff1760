// What a node's server works with: what it needs from the node it serves
// (ServiceHost, given by the pool), its limits, and the peer request counters it keeps.
import type * as http2 from "node:http2";
import type { Group } from "@distcache/core";
import type { PeerIdentity } from "./peer-identity.js";

/** What the server needs from its pool, read per request so membership changes apply at once. */
export interface ServiceHost {
  membershipVersion(): bigint;
  /** The group named `name` on this node. */
  group(name: string): Group | undefined;
  /** A peer request from `address` arrived (its fetches from here are not given up while it keeps sending). */
  heardFrom(address: string): void;
  /** The highest epoch this node's groups have seen in stamps from `address` (0: none). */
  epochSeen(address: string): number;
}

/** Counters of peer requests this node has served. */
export interface PeerRequestCounts {
  fetch: number;
  /** `FetchMany` calls (batches of keys). */
  fetchMany: number;
  /** Keys asked in those calls. */
  fetchManyKeys: number;
  store: number;
  /** `StoreMany` calls (batches of replication pushes). */
  storeMany: number;
  /** Items pushed in those calls. */
  storeManyItems: number;
  invalidate: number;
  /** `Introduce` calls: peers that started and asked how this node knows them. */
  introduce: number;
  /** `Exchange` streams opened (their calls count as FetchMany and StoreMany calls). */
  exchanges: number;
  /** Peer requests whose sender saw another membership than this node. */
  membershipMismatches: number;
}

/** Counters that have counted nothing yet. */
export function noPeerRequests(): PeerRequestCounts {
  return {
    fetch: 0,
    fetchMany: 0,
    fetchManyKeys: 0,
    store: 0,
    storeMany: 0,
    storeManyItems: 0,
    invalidate: 0,
    introduce: 0,
    exchanges: 0,
    membershipMismatches: 0,
  };
}

/** Limits and switches the services enforce on every request. */
export interface ServiceLimits {
  /** Longest key in UTF-8 bytes; longer is INVALID_ARGUMENT. */
  readonly maxKeyBytes: number;
  /** Largest value a Set or Store may carry; larger is INVALID_ARGUMENT. */
  readonly maxValueBytes: number;
  /** Whether clients may call CacheService.Set. */
  readonly allowClientSet: boolean;
}

/** Counts work inside an admitted request (FetchMany keys) against the in-flight budget (guard.ts). */
export interface KeyAdmission {
  /** Counts `keys` in flight, or returns the RESOURCE_EXHAUSTED message when they do not fit. */
  chargeKeys(keys: number): string | undefined;
  releaseKeys(keys: number): void;
  /**
   * Counts a large response of `bytes` about to be written on `stream`
   * against the byte budget until the returned function is called (from the
   * write's callback: it runs once the bytes are sent or the stream is gone);
   * returns the RESOURCE_EXHAUSTED message instead when it does not fit.
   */
  holdResponse(stream: http2.ServerHttp2Stream, bytes: number): (() => void) | string;
}

/** What every service and fast path of one server reads: its host, its limits, its counters, its members. */
export interface ServiceContext {
  readonly host: ServiceHost;
  readonly limits: ServiceLimits;
  readonly received: PeerRequestCounts;
  /** Who may make peer requests (peer-identity.ts). */
  readonly identity: PeerIdentity;
  /** Where FetchMany keys are counted; absent: not counted. */
  readonly admission?: KeyAdmission;
}
