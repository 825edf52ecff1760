// Fill tokens: how a load that was in flight when its key was invalidated is
// kept from putting the old value back into the cache.

/** Marks one fill in flight; stale once the key is invalidated meanwhile. */
export interface FillToken {
  stale: boolean;
}

/** The fills in flight per key. */
export class FillTokens {
  /** One token per key, as nearly always; a set only while a key has several fills at once. */
  private readonly byKey = new Map<string, FillToken | Set<FillToken>>();

  /** A fill of `key` starts; pass the token to {@link FillTokens.end}. */
  begin(key: string): FillToken {
    const token: FillToken = { stale: false };
    const held = this.byKey.get(key);
    if (held === undefined) this.byKey.set(key, token);
    else if (held instanceof Set) held.add(token);
    else this.byKey.set(key, new Set([held, token]));
    return token;
  }

  /** The fill of `token` is over (cached or not). */
  end(key: string, token: FillToken): void {
    const held = this.byKey.get(key);
    if (held === token) this.byKey.delete(key);
    else if (held instanceof Set) {
      held.delete(token);
      if (held.size === 0) this.byKey.delete(key);
    }
  }

  /** `key` was invalidated: every fill of it in flight must not be cached. */
  invalidate(key: string): void {
    const held = this.byKey.get(key);
    if (held === undefined) return;
    if (held instanceof Set) for (const token of held) token.stale = true;
    else held.stale = true;
  }
}
