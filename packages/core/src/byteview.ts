const encoder = new TextEncoder();
/** Up to this length, `copyTo` of a range copies byte by byte instead of making a subarray. */
const SMALL_COPY_BYTES = 64;
const decoder = new TextDecoder();

/**
 * An immutable view of a cached value. The bytes inside are never handed out
 * for writing: {@link ByteView.bytes} returns a copy, so no caller can change
 * what the next caller reads.
 */
export class ByteView {
  /** Holds the value at [#offset, #offset + #length); nobody writes that range. */
  readonly #source: Uint8Array;
  readonly #offset: number;
  readonly #length: number;
  /** The value as its own `Uint8Array`: `#source` itself, or its subarray once asked for. */
  #bytes: Uint8Array | undefined;
  #string: string | undefined;

  private constructor(
    source: Uint8Array,
    offset: number,
    length: number,
    bytes: Uint8Array | undefined,
    string: string | undefined,
  ) {
    this.#source = source;
    this.#offset = offset;
    this.#length = length;
    this.#bytes = bytes;
    this.#string = string;
  }

  /** A view of a copy of `value` (strings are encoded as UTF-8). */
  static from(value: Uint8Array | string): ByteView {
    if (typeof value === "string") {
      const bytes = encoder.encode(value);
      return new ByteView(bytes, 0, bytes.byteLength, bytes, value);
    }
    if (value instanceof Uint8Array) {
      // `new Uint8Array(value)` copies; `value.slice()` would not for a Buffer.
      const bytes = new Uint8Array(value);
      return new ByteView(bytes, 0, bytes.byteLength, bytes, undefined);
    }
    throw new TypeError(`expected a Uint8Array or a string, got ${describe(value)}`);
  }

  /**
   * A view that takes ownership of `bytes` without copying. The caller must
   * never write to `bytes` afterwards. For transports that decode a fresh
   * buffer per message.
   */
  static adopt(bytes: Uint8Array): ByteView {
    return new ByteView(bytes, 0, bytes.byteLength, bytes, undefined);
  }

  /**
   * A view of `bytes[offset, offset + length)` without copying, for storage
   * that guarantees that range never changes again (a `ByteLRU` page: it is
   * copied before the cache writes to it). Makes no typed array, so a cache
   * hit costs one small object.
   */
  static adoptRange(bytes: Uint8Array, offset: number, length: number): ByteView {
    return new ByteView(bytes, offset, length, undefined, undefined);
  }

  /** Length in bytes. */
  get length(): number {
    return this.#length;
  }

  /** A copy of the bytes. */
  bytes(): Uint8Array {
    // Uint8Array's own slice: a Buffer's `slice` would share memory instead of copying.
    return Uint8Array.prototype.slice.call(this.#source, this.#offset, this.#offset + this.#length);
  }

  /** The bytes decoded as UTF-8 (decoded once, then remembered). */
  toString(): string {
    if (this.#string === undefined) this.#string = decoder.decode(this.#view());
    return this.#string;
  }

  /** Copies the bytes into `target` at `offset`; returns the number of bytes copied. */
  copyTo(target: Uint8Array, offset = 0): number {
    const length = this.#length;
    if (this.#bytes === undefined && length <= SMALL_COPY_BYTES && Number.isInteger(offset)) {
      // A view of a cache page has no typed array of its own yet. Making one
      // costs more than a byte loop over a small value (docs/benchmarks.md).
      if (offset < 0 || offset + length > target.length) {
        throw new RangeError("ByteView.copyTo: target too small");
      }
      const source = this.#source;
      const from = this.#offset;
      for (let i = 0; i < length; i++) target[offset + i] = source[from + i]!;
      return length;
    }
    target.set(this.#view(), offset);
    return length;
  }

  /** Whether `other` holds the same bytes (a string is compared as its UTF-8 encoding). */
  equals(other: ByteView | Uint8Array | string): boolean {
    let theirs: Uint8Array;
    let at = 0;
    if (other instanceof ByteView) {
      theirs = other.#source;
      at = other.#offset;
      if (other.#length !== this.#length) return false;
    } else {
      theirs = typeof other === "string" ? encoder.encode(other) : other;
      if (theirs.byteLength !== this.#length) return false;
    }
    const mine = this.#source;
    const from = this.#offset;
    for (let i = 0; i < this.#length; i++) if (mine[from + i] !== theirs[at + i]) return false;
    return true;
  }

  /**
   * The bytes themselves, not a copy, for code that writes them to a socket
   * or a message. Never modify the result.
   */
  static unwrap(view: ByteView): Uint8Array {
    return view.#view();
  }

  #view(): Uint8Array {
    if (this.#bytes === undefined) {
      this.#bytes = this.#source.subarray(this.#offset, this.#offset + this.#length);
    }
    return this.#bytes;
  }
}

/** A short description of a value's type for error messages. */
export function describe(value: unknown): string {
  if (value === null) return "null";
  if (typeof value === "object") return value.constructor?.name ?? "object";
  return typeof value;
}
