// How the in-flight budget of one server is shared: a share per remote
// address, a reserve only peer calls may use, FetchMany keys counted one by
// one, and a node-wide budget of request and response bytes held in memory.
import type * as http2 from "node:http2";
import { performance } from "node:perf_hooks";

/** The path prefix of node-to-node calls, which may use the reserve. */
export const PEER_PATH_PREFIX = "/distcache.peer.v1.PeerService/";
const GET_PATH = "/distcache.CacheService/Get";
/** Write methods whose request carries a value; the others are a key or two. */
const VALUE_PATHS = new Set([
  "/distcache.CacheService/Set",
  `${PEER_PATH_PREFIX}Store`,
  `${PEER_PATH_PREFIX}StoreMany`,
]);
/** A request declaring at most this many bytes is small: the byte budget never refuses it. */
export const SMALL_REQUEST_BYTES = 64 << 10;

/** The limits a {@link FairShare} enforces; defaults and units: `ServerOptions` (options.ts). */
export interface FairShareLimits {
  readonly maxRequestsInFlight: number;
  readonly maxRequestsPerAddress: number;
  readonly peerReservedRequests: number;
  readonly maxBufferedBytes: number;
  /** The largest request message accepted (the adapter's readMaxBytes). */
  readonly readMaxBytes: number;
}

/** The client requests in flight from one remote address, shared by its sessions. */
export interface AddressShare {
  readonly address: string;
  inFlight: number;
  sessions: number;
  /** Response bytes its streams had queued, unread, at the last sweep (beyond {@link heldBytes}). */
  queuedBytes: number;
  /** Bytes of large responses written to it and not yet sent, counted as they are written. */
  heldBytes: number;
  /**
   * Until when (performance.now() ms) its client requests are refused: a
   * response to it was reset unread. `0`: not refused.
   */
  refusedUntil: number;
}

/** What one admitted stream holds, for {@link FairShare.release}. */
export interface Ticket {
  readonly share: AddressShare | undefined;
  /** Request bytes reserved against the byte budget. */
  readonly bytes: number;
}

/** A ticket that holds nothing beyond the global slot (peer calls, small requests). */
const PEER_TICKET: Ticket = { share: undefined, bytes: 0 };

/** Counters of refusals by which limit refused; see `ServerGuardStats`. */
export interface FairShareStats {
  /** Requests admitted and not finished yet (FetchMany keys count one each while served). */
  readonly inFlight: number;
  /** Requests answered RESOURCE_EXHAUSTED because `maxRequestsInFlight` were in flight. */
  readonly shedInFlight: number;
  /** Client requests refused because their address had `maxRequestsPerAddress` in flight. */
  readonly shedPerAddress: number;
  /** Client requests refused because only the peer reserve was left. */
  readonly shedClientShare: number;
  /** FetchMany calls refused because their keys would pass `maxRequestsInFlight`. */
  readonly shedFetchManyKeys: number;
  /** Requests refused because the byte budget (node-wide, or an address's quarter of it) was spent. */
  readonly shedBufferedBytes: number;
  /** Client requests refused because responses to their address were reset unread (for `responseWriteTimeoutMs`). */
  readonly shedUnread: number;
  /** Large responses reset because writing them would have passed the byte budget (node-wide, or an address's quarter of it). */
  readonly shedResponses: number;
  /**
   * Bytes held now: request bytes reserved by requests in flight (declared
   * sizes), large responses written and not yet sent, and other response
   * bytes queued (last sweep).
   */
  readonly bufferedBytes: number;
}

/**
 * The admission arithmetic of one server, O(1) per request: no hashing on
 * the hot path (a session finds its {@link AddressShare} once, when it opens).
 */
export class FairShare {
  private inFlight = 0;
  private shedInFlight = 0;
  private shedPerAddress = 0;
  private shedClientShare = 0;
  private shedFetchManyKeys = 0;
  private shedBufferedBytes = 0;
  private shedUnread = 0;
  private shedResponses = 0;
  private reservedBytes = 0;
  /** Bytes of large responses written and not yet sent, counted as they are written ({@link holdResponse}). */
  private heldResponseBytes = 0;
  /** Other response bytes queued and not yet sent, as the last sweep found them. */
  queuedResponseBytes = 0;

  /** Zeroes every address's queued bytes before a sweep counts them again; ends refusals that are over. */
  beginSweep(now: number): void {
    for (const share of this.addresses.values()) {
      share.queuedBytes = 0;
      if (share.refusedUntil !== 0 && share.refusedUntil <= now) {
        share.refusedUntil = 0;
        this.forgetIfUnused(share);
      }
    }
  }

  /**
   * What the responses the sweep counts may hold: the byte budget less the
   * request bytes reserved and the large responses held (`Infinity`: no budget).
   */
  responseBudget(): number {
    const max = this.limits.maxBufferedBytes;
    return max === 0
      ? Number.POSITIVE_INFINITY
      : Math.max(0, max - this.reservedBytes - this.heldResponseBytes);
  }

  /**
   * Counts a large response of `bytes` about to be written to `share`
   * against the byte budget, at once: a burst of requests is admitted before
   * any of their answers exists, so only the write itself can bound what the
   * answers hold. Returns why not instead (the RESOURCE_EXHAUSTED message)
   * when it would pass the node-wide budget or the address's quarter of it;
   * {@link releaseResponse} once it is sent or its stream is gone.
   */
  holdResponse(share: AddressShare | undefined, bytes: number): string | undefined {
    const max = this.limits.maxBufferedBytes;
    if (max > 0) {
      const buffered = this.reservedBytes + this.heldResponseBytes + this.queuedResponseBytes;
      if (buffered + bytes > max) {
        this.shedResponses++;
        return `overloaded: ${buffered} bytes buffered, a response of ${bytes} bytes would pass the limit of ${max}`;
      }
      const unread = share === undefined ? 0 : share.heldBytes + share.queuedBytes;
      if (share !== undefined && unread + bytes > max / 4) {
        this.shedResponses++;
        return `overloaded: ${unread} response bytes unread by ${share.address}, a response of ${bytes} bytes would pass the limit per address of ${max / 4}`;
      }
    }
    this.heldResponseBytes += bytes;
    if (share !== undefined) share.heldBytes += bytes;
    return undefined;
  }

  /** Frees what {@link holdResponse} counted. */
  releaseResponse(share: AddressShare | undefined, bytes: number): void {
    this.heldResponseBytes -= bytes;
    if (share !== undefined) {
      share.heldBytes -= bytes;
      this.forgetIfUnused(share);
    }
  }
  private readonly addresses = new Map<string, AddressShare>();

  /**
   * The peer reserve in effect: `peerReservedRequests`, unless that is more
   * than half of `maxRequestsInFlight` (a small limit has no room to split;
   * then there is none).
   */
  private readonly reserve: number;

  constructor(private readonly limits: FairShareLimits) {
    const { maxRequestsInFlight, peerReservedRequests } = limits;
    this.reserve = peerReservedRequests * 2 <= maxRequestsInFlight ? peerReservedRequests : 0;
  }

  /** The share of `address`, for a session that opened from it; {@link leave} when it closes. */
  join(address: string | undefined): AddressShare | undefined {
    if (address === undefined) return undefined;
    let share = this.addresses.get(address);
    if (share === undefined) {
      share = { address, inFlight: 0, sessions: 0, queuedBytes: 0, heldBytes: 0, refusedUntil: 0 };
      this.addresses.set(address, share);
    }
    share.sessions++;
    return share;
  }

  leave(share: AddressShare | undefined): void {
    if (share !== undefined) {
      share.sessions--;
      this.forgetIfUnused(share);
    }
  }

  /**
   * Drops an address with nothing open and no refusal running: one still
   * refused is kept (until a sweep finds it over), so reconnecting does
   * not clear its refusal.
   */
  private forgetIfUnused(share: AddressShare): void {
    if (
      share.sessions === 0 &&
      share.inFlight === 0 &&
      share.heldBytes === 0 &&
      share.refusedUntil === 0
    ) {
      this.addresses.delete(share.address);
    }
  }

  /**
   * Admits a request (and returns what it holds) or returns why not: the
   * message of a RESOURCE_EXHAUSTED answer naming the limit.
   */
  admit(headers: http2.IncomingHttpHeaders, share: AddressShare | undefined): Ticket | string {
    const { maxRequestsInFlight, maxRequestsPerAddress } = this.limits;
    const path = headers[":path"];
    const peer = path?.startsWith(PEER_PATH_PREFIX) === true;
    const inFlight = this.inFlight;
    if (maxRequestsInFlight > 0) {
      if (inFlight >= maxRequestsInFlight) {
        this.shedInFlight++;
        return `overloaded: ${inFlight} requests in flight, the limit is ${maxRequestsInFlight}`;
      }
      const clientLimit = maxRequestsInFlight - this.reserve;
      if (!peer && inFlight >= clientLimit) {
        this.shedClientShare++;
        return `overloaded: ${inFlight} requests in flight, the limit for clients is ${clientLimit} (${this.reserve} are kept for peers)`;
      }
    }
    if (!peer && share !== undefined) {
      if (maxRequestsPerAddress > 0 && share.inFlight >= maxRequestsPerAddress) {
        this.shedPerAddress++;
        return `overloaded: ${share.inFlight} requests in flight from ${share.address}, the limit per address is ${maxRequestsPerAddress}`;
      }
      // An address that leaves a quarter of the byte budget unread gets no
      // new work until it reads (or its streams are reset).
      const unreadLimit = this.limits.maxBufferedBytes / 4;
      const unread = share.queuedBytes + share.heldBytes;
      if (unreadLimit > 0 && unread > unreadLimit) {
        this.shedBufferedBytes++;
        return `overloaded: ${unread} response bytes unread by ${share.address}, the limit per address is ${unreadLimit}`;
      }
      // A client that left responses unread until they were reset would
      // have the next ones encoded for nothing: it waits a while first.
      if (share.refusedUntil !== 0) {
        const left = share.refusedUntil - performance.now();
        if (left > 0) {
          this.shedUnread++;
          return `overloaded: responses to ${share.address} were reset unread; its requests are refused for another ${Math.ceil(left)} ms`;
        }
        share.refusedUntil = 0;
      }
    }
    const bytes = path !== undefined ? this.declaredBytes(path, headers["content-length"]) : 0;
    if (bytes > SMALL_REQUEST_BYTES && this.limits.maxBufferedBytes > 0) {
      const buffered = this.reservedBytes + this.heldResponseBytes + this.queuedResponseBytes;
      if (buffered + bytes > this.limits.maxBufferedBytes) {
        this.shedBufferedBytes++;
        return `overloaded: ${buffered} bytes buffered, a request of up to ${bytes} bytes would pass the limit of ${this.limits.maxBufferedBytes}`;
      }
    }
    this.inFlight++;
    this.reservedBytes += bytes;
    if (peer) return bytes === 0 ? PEER_TICKET : { share: undefined, bytes };
    if (share !== undefined) share.inFlight++;
    return share === undefined && bytes === 0 ? PEER_TICKET : { share, bytes };
  }

  /** Frees what an admitted request held (its stream closed). */
  release(ticket: Ticket): void {
    this.inFlight--;
    this.reservedBytes -= ticket.bytes;
    const share = ticket.share;
    if (share !== undefined && --share.inFlight === 0) this.forgetIfUnused(share);
  }

  /**
   * Counts `keys` more requests in flight for one FetchMany (each key is a
   * lookup that may load), or returns why they cannot be: past
   * `maxRequestsInFlight`. Peer calls may use the whole budget.
   */
  chargeKeys(keys: number): string | undefined {
    const limit = this.limits.maxRequestsInFlight;
    if (limit > 0 && this.inFlight + keys > limit) {
      this.shedFetchManyKeys++;
      return `overloaded: a FetchMany of ${keys} keys with ${this.inFlight} requests in flight would pass the limit of ${limit}`;
    }
    this.inFlight += keys;
    return undefined;
  }

  /** Frees `keys` counted by {@link chargeKeys} (their results are settled). */
  releaseKeys(keys: number): void {
    this.inFlight -= keys;
  }

  stats(): FairShareStats {
    return {
      inFlight: this.inFlight,
      shedInFlight: this.shedInFlight,
      shedPerAddress: this.shedPerAddress,
      shedClientShare: this.shedClientShare,
      shedFetchManyKeys: this.shedFetchManyKeys,
      shedBufferedBytes: this.shedBufferedBytes,
      shedUnread: this.shedUnread,
      shedResponses: this.shedResponses,
      bufferedBytes: this.reservedBytes + this.heldResponseBytes + this.queuedResponseBytes,
    };
  }

  /**
   * The bytes a request may bring: its `content-length` when it declares one
   * (at most readMaxBytes: more is refused when read), else readMaxBytes for
   * a method that carries a value, else none (a key or two, read by a
   * handler that refuses more than readMaxBytes).
   */
  private declaredBytes(path: string, contentLength: string | undefined): number {
    const max = this.limits.readMaxBytes;
    if (contentLength !== undefined) {
      const declared = Number(contentLength);
      return Number.isSafeInteger(declared) && declared >= 0 ? Math.min(declared, max) : max;
    }
    // The Get path first: a string compare, no hashing, on the hot path.
    return path !== GET_PATH && VALUE_PATHS.has(path) ? max : 0;
  }
}
