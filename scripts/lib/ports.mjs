// Free loopback ports for the nodes that scripts, benches and tests start: the
// one place that asks the OS for them.
import net from "node:net";

/**
 * `count` distinct ports on `host` the OS found free a moment ago: every
 * listener is held open until all are found, so no port is handed out twice.
 * Free is not reserved: another process may take a port before the caller
 * listens on it, which on a test machine's loopback is rare enough.
 */
export async function freePorts(count, host = "127.0.0.1") {
  const servers = [];
  try {
    for (let i = 0; i < count; i++) {
      const server = net.createServer();
      await new Promise((resolve, reject) => {
        server.once("error", reject);
        server.listen(0, host, resolve);
      });
      servers.push(server);
    }
    return servers.map((s) => s.address().port);
  } finally {
    await Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve))));
  }
}

/** One port on `host` the OS found free a moment ago; see {@link freePorts}. */
export async function freePort(host = "127.0.0.1") {
  const [port] = await freePorts(1, host);
  return port;
}
