const encoder = new TextEncoder();
const decoder = new TextDecoder();

/**
 * An immutable view of a cached value. The bytes inside are never handed out
 * for writing: {@link ByteView.bytes} returns a copy, so no caller can change
 * what the next caller reads.
 */
export class ByteView {
  readonly #bytes: Uint8Array;
  #string: string | undefined;

  private constructor(bytes: Uint8Array, string: string | undefined) {
    this.#bytes = bytes;
    this.#string = string;
  }

  /** A view of a copy of `value` (strings are encoded as UTF-8). */
  static from(value: Uint8Array | string): ByteView {
    if (typeof value === "string") return new ByteView(encoder.encode(value), value);
    if (value instanceof Uint8Array) return new ByteView(value.slice(), undefined);
    throw new TypeError(`expected a Uint8Array or a string, got ${describe(value)}`);
  }

  /**
   * A view that takes ownership of `bytes` without copying. The caller must
   * never write to `bytes` afterwards. For transports that decode a fresh
   * buffer per message.
   */
  static adopt(bytes: Uint8Array): ByteView {
    return new ByteView(bytes, undefined);
  }

  /** Length in bytes. */
  get length(): number {
    return this.#bytes.byteLength;
  }

  /** A copy of the bytes. */
  bytes(): Uint8Array {
    return this.#bytes.slice();
  }

  /** The bytes decoded as UTF-8 (decoded once, then remembered). */
  toString(): string {
    if (this.#string === undefined) this.#string = decoder.decode(this.#bytes);
    return this.#string;
  }

  /** Copies the bytes into `target` at `offset`; returns the number of bytes copied. */
  copyTo(target: Uint8Array, offset = 0): number {
    target.set(this.#bytes, offset);
    return this.#bytes.byteLength;
  }

  /** Whether `other` holds the same bytes (a string is compared as its UTF-8 encoding). */
  equals(other: ByteView | Uint8Array | string): boolean {
    const theirs =
      other instanceof ByteView
        ? other.#bytes
        : typeof other === "string"
          ? encoder.encode(other)
          : other;
    const mine = this.#bytes;
    if (mine.byteLength !== theirs.byteLength) return false;
    for (let i = 0; i < mine.byteLength; i++) if (mine[i] !== theirs[i]) return false;
    return true;
  }

  /**
   * The bytes themselves, not a copy, for code that writes them to a socket
   * or a message. Never modify the result.
   */
  static unwrap(view: ByteView): Uint8Array {
    return view.#bytes;
  }
}

/** A short description of a value's type for error messages. */
export function describe(value: unknown): string {
  if (value === null) return "null";
  if (typeof value === "object") return value.constructor?.name ?? "object";
  return typeof value;
}
