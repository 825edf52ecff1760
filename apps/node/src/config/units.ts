// Byte sizes ("64MiB", "512KiB", "1GiB", plain integers) and durations
// ("30s", "500ms", "5m", plain integers = milliseconds) as the config file and
// the flags write them. Anything else is refused with a message saying why.

const SIZE_UNITS: Readonly<Record<string, number>> = {
  "": 1,
  B: 1,
  KiB: 2 ** 10,
  MiB: 2 ** 20,
  GiB: 2 ** 30,
  TiB: 2 ** 40,
  KB: 1e3,
  MB: 1e6,
  GB: 1e9,
  TB: 1e12,
};

/** Largest byte size accepted: 1 PiB, far above any cache budget or value limit. */
export const MAX_SIZE_BYTES = 2 ** 50;

/**
 * Bytes in `text` (`64MiB`, `1.5GiB`, `512KiB`, `4096`, `10MB`), or an error
 * message. The result is a whole number of bytes from 0 to {@link MAX_SIZE_BYTES}.
 */
export function parseSize(text: string | number): number | string {
  const match = /^(\d+(?:\.\d+)?)\s*([A-Za-z]*)$/.exec(String(text).trim());
  const unit = match === null ? undefined : SIZE_UNITS[match[2]!];
  if (match === null || unit === undefined) {
    return `invalid size "${text}" (write bytes or a number with B, KiB, MiB, GiB, TiB, KB, MB, GB: 64MiB)`;
  }
  const bytes = Number(match[1]) * unit;
  if (!Number.isInteger(bytes)) return `size "${text}" is not a whole number of bytes`;
  if (bytes > MAX_SIZE_BYTES) return `size "${text}" is over 1 PiB`;
  return bytes;
}

const DURATION_UNITS: Readonly<Record<string, number>> = {
  "": 1,
  ms: 1,
  s: 1_000,
  m: 60_000,
  h: 3_600_000,
};

/** Longest duration accepted: one week, in milliseconds (above any timeout or TTL we mean). */
export const MAX_DURATION_MS = 7 * 24 * 3_600_000;

/**
 * Milliseconds in `text` (`30s`, `500ms`, `1.5s`, `5m`, `2h`, a plain integer
 * = milliseconds), or an error message. Whole milliseconds from 0 to one week.
 */
export function parseDuration(text: string | number): number | string {
  const match = /^(\d+(?:\.\d+)?)\s*([a-z]*)$/.exec(String(text).trim());
  const unit = match === null ? undefined : DURATION_UNITS[match[2]!];
  if (match === null || unit === undefined) {
    return `invalid duration "${text}" (write 500ms, 30s, 5m, 2h or milliseconds)`;
  }
  const ms = Number(match[1]) * unit;
  if (!Number.isInteger(ms)) return `duration "${text}" is not a whole number of milliseconds`;
  if (ms > MAX_DURATION_MS) return `duration "${text}" is over one week`;
  return ms;
}

/** `HOST:PORT` (IPv6 in brackets: `[::1]:8001`) split, or an error message. */
export function parseHostPort(text: string): { host: string; port: number } | string {
  const match = /^(?:\[([0-9A-Fa-f:.]+)\]|([^\s:[\]/]+)):(\d{1,5})$/.exec(text);
  const port = match === null ? Number.NaN : Number(match[3]);
  if (match === null || port > 65_535) {
    return `invalid address "${text}" (write HOST:PORT, [IPv6]:PORT; port 0 to 65535)`;
  }
  return { host: match[1] ?? match[2]!, port };
}

/** `host:port` as members name each other (IPv6 in brackets). */
export function formatHostPort(host: string, port: number): string {
  return `${host.includes(":") ? `[${host}]` : host}:${port}`;
}
