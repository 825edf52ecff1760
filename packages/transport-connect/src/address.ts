// Member addresses: parsing `host:port` and the URL of a member.
/** A member address split for `listen` and URLs. */
export interface HostPort {
  readonly host: string;
  readonly port: number;
}

/**
 * Parses `host:port` (`[v6]:port` for IPv6). Members are compared as the
 * strings given, so every node must name a member the same way.
 */
export function parseAddress(address: string): HostPort {
  const match = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]\s]+)):(\d{1,5})$/.exec(address);
  const port = match ? Number(match[3]) : Number.NaN;
  if (!match || port > 65_535) {
    throw new TypeError(`invalid address "${address}": expected host:port, e.g. 127.0.0.1:8001`);
  }
  return { host: (match[1] ?? match[2])!, port };
}

/** The base URL of a member's endpoint: h2c, or `https` when the cluster runs TLS. */
export function baseUrl(address: string, tls = false): string {
  const { host, port } = parseAddress(address);
  return `${tls ? "https" : "http"}://${host.includes(":") ? `[${host}]` : host}:${port}`;
}
