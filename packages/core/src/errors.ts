// The errors a group hands its callers, and the key check behind InvalidKeyError.
/**
 * Thrown by a getter when the source has no value for a key. Like every
 * getter error it is returned to the caller and not cached; over the wire a
 * client sees `found=false` with this message in `err`.
 */
export class NotFoundError extends Error {
  override readonly name = "NotFoundError";
  constructor(
    readonly key: string,
    message = `key not found: ${key}`,
  ) {
    super(message);
  }
}

/** A key the cache will not look up (empty, or over a transport's limit). */
export class InvalidKeyError extends Error {
  override readonly name = "InvalidKeyError";
}

/**
 * The key's owner answered, and its getter failed with `message`. The owner is
 * alive, so asking replicas or loading here would only run the getter again:
 * the error is returned to the caller as is.
 */
export class RemoteLoadError extends Error {
  override readonly name = "RemoteLoadError";
}

/** Throws {@link InvalidKeyError} unless `key` is a non-empty string. */
export function requireKey(key: string): void {
  if (typeof key !== "string" || key.length === 0) throw new InvalidKeyError("key is required");
}
