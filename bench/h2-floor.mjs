// What one HTTP/2 request costs with nothing else in the way: a bare node:http2
// client (this process) and server (a child process) exchanging gRPC-shaped
// requests one at a time, CPU per request of each from /proc (issue 14: the
// floor under a serial forwarded Get, which is two such exchanges plus the hit).
//
// Standalone: node bench/h2-floor.mjs [--requests N]
// Prints one line per run (3 runs); no dependencies beyond Node.

import { fork } from "node:child_process";
import { readFileSync } from "node:fs";
import http2 from "node:http2";
import { fileURLToPath } from "node:url";

/** utime+stime of `pid` in ms (/proc/PID/stat fields 14 and 15, 100 ticks a second). */
function cpuMs(pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const rest = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(rest[11]) + Number(rest[12])) * 10;
}

if (process.argv[2] === "--serve") {
  // The server: reads the request, answers headers, one 40-byte message and
  // grpc-status 0 in trailers, as a gRPC unary answer is written.
  const server = http2.createServer();
  const body = Buffer.alloc(45);
  body.writeUInt32BE(40, 1);
  server.on("stream", (stream) => {
    stream.on("data", () => {});
    stream.on("end", () => {
      stream.respond(
        { ":status": 200, "content-type": "application/grpc" },
        { waitForTrailers: true },
      );
      stream.once("wantTrailers", () => stream.sendTrailers({ "grpc-status": "0" }));
      stream.end(body);
    });
  });
  server.listen(0, "127.0.0.1", () => process.send(server.address().port));
} else {
  const at = process.argv.indexOf("--requests");
  const requests = at > 0 ? Number(process.argv[at + 1]) : 5_000;
  const child = fork(fileURLToPath(import.meta.url), ["--serve"]);
  const port = await new Promise((resolve) => child.once("message", resolve));
  const session = http2.connect(`http://127.0.0.1:${port}`);
  const request = Buffer.alloc(35);
  request.writeUInt32BE(30, 1);
  const one = () =>
    new Promise((resolve, reject) => {
      const stream = session.request({
        ":method": "POST",
        ":path": "/bench.Floor/Get",
        "content-type": "application/grpc",
        te: "trailers",
      });
      stream.on("data", () => {});
      stream.on("error", reject);
      stream.on("close", resolve);
      stream.end(request);
    });
  try {
    for (let i = 0; i < 1_000; i++) await one(); // warm-up: the JIT, the session
    for (let run = 1; run <= 3; run++) {
      const client0 = cpuMs(process.pid);
      const server0 = cpuMs(child.pid);
      const t0 = performance.now();
      for (let i = 0; i < requests; i++) await one();
      const seconds = (performance.now() - t0) / 1_000;
      const client = ((cpuMs(process.pid) - client0) * 1_000) / requests;
      const server = ((cpuMs(child.pid) - server0) * 1_000) / requests;
      console.log(
        `run ${run}: ${Math.round(requests / seconds)} req/s serial, CPU per request: client ${client.toFixed(0)} µs, server ${server.toFixed(0)} µs`,
      );
    }
  } finally {
    session.close();
    child.kill();
  }
}
