// Free loopback ports for the nodes that scripts, benches and tests start: the
// one place that picks them.
import { readFileSync } from "node:fs";
import net from "node:net";

// Ports are picked below the kernel's ephemeral range. A port picked there
// (as listen(0) would) can be taken, between the pick and the node's listen,
// by any outgoing connection's source port: a CI run lost a 3-node start to
// EADDRINUSE that way while other test files were busy connecting. Below the
// range only another explicit bind can take it.
const LOWEST = 10_000;

/** The first port of the ephemeral range (Linux's `ip_local_port_range`; 32768 elsewhere). */
function ephemeralStart() {
  try {
    const [first] = readFileSync("/proc/sys/net/ipv4/ip_local_port_range", "utf8")
      .trim()
      .split(/\s+/)
      .map(Number);
    if (Number.isInteger(first) && first > LOWEST + 1_000) return first;
  } catch {
    // not Linux: the IANA range's usual start
  }
  return 32_768;
}

const HIGHEST = ephemeralStart() - 1;

/** Listens on `port` (0: any) of `host`; the server, or `undefined` if the port is taken. */
function hold(port, host) {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once("error", (error) => {
      if (error.code === "EADDRINUSE" || error.code === "EACCES") resolve(undefined);
      else reject(error);
    });
    server.listen({ port, host, exclusive: true }, () => resolve(server));
  });
}

/**
 * `count` distinct ports on `host` that were free a moment ago, picked at
 * random below the ephemeral range (see above): every listener is held open
 * until all are found, so no port is handed out twice. Free is not reserved:
 * another process binding the same port before the caller listens still
 * wins, but outgoing connections cannot take it.
 */
export async function freePorts(count, host = "127.0.0.1") {
  const servers = [];
  try {
    for (let tries = 0; servers.length < count; tries++) {
      // After many taken picks (a crowded range), fall back to the OS's choice.
      const port = tries < 200 ? LOWEST + Math.floor(Math.random() * (HIGHEST - LOWEST + 1)) : 0;
      const server = await hold(port, host);
      if (server !== undefined) servers.push(server);
      else if (port === 0) throw new Error(`no free port on ${host}`);
    }
    return servers.map((s) => s.address().port);
  } finally {
    await Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve))));
  }
}

/** One port on `host` that was free a moment ago; see {@link freePorts}. */
export async function freePort(host = "127.0.0.1") {
  const [port] = await freePorts(1, host);
  return port;
}
