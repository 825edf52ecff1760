// Fill tokens: how a load that was in flight when its key was invalidated is
// kept from putting the old value back into the cache.

/** Marks one fill in flight; stale once the key is invalidated meanwhile. */
export interface FillToken {
  stale: boolean;
}

/** The fills in flight per key. */
export class FillTokens {
  private readonly byKey = new Map<string, Set<FillToken>>();

  /** A fill of `key` starts; pass the token to {@link FillTokens.end}. */
  begin(key: string): FillToken {
    const token: FillToken = { stale: false };
    const tokens = this.byKey.get(key);
    if (tokens === undefined) this.byKey.set(key, new Set([token]));
    else tokens.add(token);
    return token;
  }

  /** The fill of `token` is over (cached or not). */
  end(key: string, token: FillToken): void {
    const tokens = this.byKey.get(key);
    if (tokens === undefined) return;
    tokens.delete(token);
    if (tokens.size === 0) this.byKey.delete(key);
  }

  /** `key` was invalidated: every fill of it in flight must not be cached. */
  invalidate(key: string): void {
    const tokens = this.byKey.get(key);
    if (tokens !== undefined) for (const token of tokens) token.stale = true;
  }
}
