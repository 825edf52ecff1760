// Types of ports.mjs, written by hand so that TypeScript tests can import the
// plain-JS helper that scripts and benches share.

/**
 * `count` distinct ports on `host` (default `127.0.0.1`) the OS found free a
 * moment ago; all are held open until every one is found, so none repeats.
 */
export function freePorts(count: number, host?: string): Promise<number[]>;

/** One port on `host` (default `127.0.0.1`) the OS found free a moment ago. */
export function freePort(host?: string): Promise<number>;
