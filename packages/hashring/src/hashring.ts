/**
 * A consistent-hash ring with virtual nodes, after Go groupcache's consistenthash.
 *
 * Each member stands on a 32-bit circle at `virtualNodes` points: the hashes of
 * the labels `member#0` … `member#<virtualNodes-1>`. A key belongs to the member at the
 * first point at or after the key's hash, wrapping past 2^32 to the start, so a
 * membership change moves only the keys on the arcs the changed member's points
 * cover — about 1/size of them — and every process that agrees on the members
 * agrees on every owner.
 *
 * The points are rebuilt from scratch on each membership change (rare) so that
 * lookups (constant) are a binary search over one typed array. Points are sorted
 * by (hash, member): equal hashes are ordered by member name, so the ring is a
 * pure function of the set of members, never of the order they were added.
 */

/**
 * Points per member when {@link HashRingOptions.virtualNodes} is not given. A
 * member's share of keys deviates from the mean by about 0.95/√virtualNodes (one
 * standard deviation), so the 100–200 points usual elsewhere leave the busiest
 * of ten members well over the ±10% that 1000 keeps (the README, "Spread",
 * has the measurement). The price is paid on membership changes only (a
 * rebuild of members × points entries); lookups cost log₂(points)
 * comparisons, a few more than with 200.
 */
export const DEFAULT_VIRTUAL_NODES = 1000;

/** Options for {@link HashRing}. */
export interface HashRingOptions {
  /**
   * Points per member. Default {@link DEFAULT_VIRTUAL_NODES}. More points even out
   * the shares (the spread of a member's share shrinks as 1/√virtualNodes) at the
   * cost of memory (8 bytes a point) and rebuild time on membership changes;
   * lookups slow only by the log of the point count.
   */
  virtualNodes?: number;
  /**
   * Hash of a UTF-8 string's bytes to an unsigned 32-bit integer (the result
   * is taken `>>> 0`). Default {@link hashBytes}, computed straight from the
   * string without encoding. Must be a pure function of the bytes: every
   * process on the ring has to compute the same owners. A custom hash costs a
   * `TextEncoder.encode` per lookup.
   */
  hash?: (bytes: Uint8Array) => number;
}

const FNV_OFFSET = 0x811c9dc5;
const FNV_PRIME = 0x01000193;

// Points sort as one float64 each, hash * MEMBER_SLOTS + member index, which is
// exact below 2^53 and lets a typed-array sort (no comparator) order by
// (hash, member) at once.
const MEMBER_SLOTS = 2 ** 21;

// FNV-1a's last bytes are folded in by one multiply, which carries a change
// only upwards: labels that differ in their last digit land at nearby,
// lattice-like points. murmur3's finalizer makes every input bit reach every
// output bit.
function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** FNV-1a 32 of `bytes` followed by murmur3's fmix32 finalizer; an unsigned 32-bit integer. */
export function hashBytes(bytes: Uint8Array): number {
  let h = FNV_OFFSET;
  for (let i = 0; i < bytes.length; i++) h = Math.imul(h ^ bytes[i]!, FNV_PRIME);
  return fmix32(h);
}

/**
 * {@link hashBytes} of the UTF-8 encoding of `s` (lone surrogates as U+FFFD,
 * like `TextEncoder`), read from the char codes so a lookup allocates nothing.
 */
export function hashString(s: string): number {
  let h = FNV_OFFSET;
  for (let i = 0; i < s.length; i++) {
    let c = s.charCodeAt(i);
    if (c < 0x80) {
      h = Math.imul(h ^ c, FNV_PRIME);
      continue;
    }
    if (c < 0x800) {
      h = Math.imul(h ^ (0xc0 | (c >> 6)), FNV_PRIME);
      h = Math.imul(h ^ (0x80 | (c & 0x3f)), FNV_PRIME);
      continue;
    }
    if (c >= 0xd800 && c <= 0xdfff) {
      const d = s.charCodeAt(i + 1); // NaN past the end: fails both tests below
      if (c <= 0xdbff && d >= 0xdc00 && d <= 0xdfff) {
        const cp = 0x10000 + ((c - 0xd800) << 10) + (d - 0xdc00);
        h = Math.imul(h ^ (0xf0 | (cp >> 18)), FNV_PRIME);
        h = Math.imul(h ^ (0x80 | ((cp >> 12) & 0x3f)), FNV_PRIME);
        h = Math.imul(h ^ (0x80 | ((cp >> 6) & 0x3f)), FNV_PRIME);
        h = Math.imul(h ^ (0x80 | (cp & 0x3f)), FNV_PRIME);
        i++;
        continue;
      }
      c = 0xfffd;
    }
    h = Math.imul(h ^ (0xe0 | (c >> 12)), FNV_PRIME);
    h = Math.imul(h ^ (0x80 | ((c >> 6) & 0x3f)), FNV_PRIME);
    h = Math.imul(h ^ (0x80 | (c & 0x3f)), FNV_PRIME);
  }
  return fmix32(h);
}

function checkMember(member: unknown): string {
  if (typeof member !== "string" || member === "") {
    throw new TypeError(`HashRing: a member must be a non-empty string, got ${String(member)}`);
  }
  return member;
}

/**
 * Maps string keys to members (node addresses, say) so that a change of
 * membership moves few keys.
 *
 * ```ts
 * const ring = new HashRing();
 * ring.set(["10.0.0.1:8001", "10.0.0.2:8001", "10.0.0.3:8001"]);
 * ring.ownerOf("Tom");        // one of the three, the same in every process
 * ring.successors("Tom", 3);  // the owner, then the next 2 distinct members clockwise
 * ```
 */
export class HashRing {
  /** Points per member this ring was made with. */
  readonly virtualNodes: number;
  private readonly hashKey: (s: string) => number;
  private memberSet = new Set<string>();
  /** Members sorted; a point's owner is an index into this. */
  private sorted: string[] = [];
  private points = new Uint32Array(0);
  private owners = new Uint32Array(0);
  // successors() marks the members it has taken with a fresh stamp per call,
  // so it neither allocates nor clears a per-member array.
  private marks = new Float64Array(0);
  private stamp = 0;

  constructor(options: HashRingOptions = {}) {
    const { virtualNodes = DEFAULT_VIRTUAL_NODES, hash } = options;
    if (!Number.isSafeInteger(virtualNodes) || virtualNodes < 1) {
      throw new RangeError(
        `HashRing: virtualNodes must be a positive integer, got ${virtualNodes}`,
      );
    }
    this.virtualNodes = virtualNodes;
    if (hash === undefined) {
      this.hashKey = hashString;
    } else {
      const encoder = new TextEncoder();
      this.hashKey = (s) => hash(encoder.encode(s)) >>> 0;
    }
  }

  /** Number of members. */
  get size(): number {
    return this.sorted.length;
  }

  /** Whether `member` is on the ring. */
  has(member: string): boolean {
    return this.memberSet.has(member);
  }

  /** The members, sorted (by UTF-16 code units, as `Array.prototype.sort`); a copy. */
  members(): string[] {
    return this.sorted.slice();
  }

  /**
   * Replaces the membership with `members` (duplicates ignored). Throws on an
   * empty or non-string member, leaving the ring unchanged.
   */
  set(members: Iterable<string>): void {
    const next = new Set<string>();
    for (const m of members) next.add(checkMember(m));
    this.rebuild(next);
  }

  /** Adds members; those already present are ignored. Throws like {@link HashRing.set}. */
  add(...members: string[]): void {
    const next = new Set(this.memberSet);
    for (const m of members) next.add(checkMember(m));
    if (next.size !== this.memberSet.size) this.rebuild(next);
  }

  /** Removes members; those not present are ignored. */
  remove(...members: string[]): void {
    const next = new Set(this.memberSet);
    for (const m of members) next.delete(m);
    if (next.size !== this.memberSet.size) this.rebuild(next);
  }

  /** The member owning `key`, or `undefined` when the ring is empty. */
  ownerOf(key: string): string | undefined {
    if (this.points.length === 0) return undefined;
    return this.sorted[this.owners[this.search(this.hashKey(key))]!];
  }

  /**
   * Up to `n` distinct members met walking clockwise from `key`'s hash: the
   * owner first, then the members a replica of the key should go to, in order.
   * Fewer than `n` when the ring has fewer members; `[]` when it is empty.
   */
  successors(key: string, n: number): string[] {
    return this.successorsAt(this.pointOf(key), n);
  }

  /** Number of points on the ring (members × virtual nodes); see {@link HashRing.pointOf}. */
  get pointCount(): number {
    return this.points.length;
  }

  /**
   * The point `key` falls on: its owner's point, an index from `0` to
   * `pointCount - 1`, or `-1` when the ring is empty. Keys on one point have
   * the same successors, so a caller can keep what it derives from them per
   * point (until the membership changes, which renumbers the points).
   */
  pointOf(key: string): number {
    return this.points.length === 0 ? -1 : this.search(this.hashKey(key));
  }

  /** As {@link HashRing.successors}, for the keys on `point` (see {@link HashRing.pointOf}). */
  successorsAt(point: number, n: number): string[] {
    if (!Number.isSafeInteger(n) || n < 0) {
      throw new RangeError(`HashRing: n must be a non-negative integer, got ${n}`);
    }
    const want = Math.min(n, this.sorted.length);
    const out: string[] = [];
    if (want === 0) return out;
    if (!Number.isInteger(point) || point < 0 || point >= this.points.length) {
      throw new RangeError(`HashRing: no point ${point} on a ring of ${this.points.length}`);
    }
    const stamp = ++this.stamp;
    const last = this.points.length - 1;
    // Every member has points, so at most one lap finds `want` of them.
    for (let j = point; out.length < want; j = j === last ? 0 : j + 1) {
      const m = this.owners[j]!;
      if (this.marks[m] !== stamp) {
        this.marks[m] = stamp;
        out.push(this.sorted[m]!);
      }
    }
    return out;
  }

  /** Index of the first point with hash >= h (the first of equal ones), wrapping to 0. */
  private search(h: number): number {
    const points = this.points;
    let lo = 0;
    let hi = points.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (points[mid]! < h) lo = mid + 1;
      else hi = mid;
    }
    return lo === points.length ? 0 : lo;
  }

  private rebuild(next: Set<string>): void {
    if (next.size > MEMBER_SLOTS) {
      throw new RangeError(`HashRing: at most ${MEMBER_SLOTS} members, got ${next.size}`);
    }
    const sorted = [...next].sort();
    const r = this.virtualNodes;
    const keys = new Float64Array(sorted.length * r);
    for (let m = 0; m < sorted.length; m++) {
      for (let i = 0; i < r; i++) {
        // Indices hold no "#", so the last "#" splits a label: distinct
        // (member, i) pairs never share a label even if members contain "#".
        keys[m * r + i] = this.hashKey(`${sorted[m]}#${i}`) * MEMBER_SLOTS + m;
      }
    }
    keys.sort();
    const points = new Uint32Array(keys.length);
    const owners = new Uint32Array(keys.length);
    for (let j = 0; j < keys.length; j++) {
      const k = keys[j]!;
      owners[j] = k % MEMBER_SLOTS;
      points[j] = (k - owners[j]!) / MEMBER_SLOTS;
    }
    this.memberSet = next;
    this.sorted = sorted;
    this.points = points;
    this.owners = owners;
    this.marks = new Float64Array(sorted.length);
  }
}
