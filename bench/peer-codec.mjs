// What the peer codec costs per key of a forwarded Get, in-process: the
// entry encodes a FetchMany request of 64 keys, the owner reads it and
// encodes 64 results (a value and a stamp each, as a cached key is answered),
// and the entry decodes them. Each of the four steps is timed alone, in CPU
// nanoseconds per key. The cluster benches see this only as a share of a
// forwarded Get (issue 14; docs/benchmarks.md, "The codec's stamps and keys").
//
// Standalone: node bench/peer-codec.mjs [--rounds N] [OTHER_TREE]
// With OTHER_TREE (a checkout with built dist/), runs alternate between this
// tree and that one, 3 runs each, each in a fresh process.

import path from "node:path";
import { fileURLToPath } from "node:url";
import { runTreesAlternating, treeBenchArgs } from "./harness.mjs";

const SELF = fileURLToPath(import.meta.url);
const ROOT = path.resolve(path.dirname(SELF), "..");
const KEYS = 64;
const STEPS = ["encode request", "read request", "encode results", "decode results"];

/** One run against the transport built in `root`: CPU ns per key of each step. */
async function measure(root, rounds) {
  const dist = path.join(root, "packages/transport-connect/dist");
  const codec = await import(path.join(dist, "grpc/peer-codec.js"));
  const { SenderSchema } = await import(path.join(dist, "gen/distcache/peer/v1/peer_pb.js"));
  // The message as protobuf-es's create() makes it (bench/ cannot import protobuf-es itself).
  const sender = new codec.SenderField().of({
    $typeName: SenderSchema.typeName,
    address: "127.0.0.1:40001",
    membershipVersion: 3n,
  });
  const keys = Array.from({ length: KEYS }, (_, i) => `warm-${i * 7}`);
  const value = Buffer.from("value of warm-17");
  // An epoch as a node makes it (Date.now() × 1024 + a random 10 bits).
  const stamp = { epoch: Date.now() * 1024 + 517, seq: 12 };
  const results = keys.map((_, index) => ({ index, outcome: 1, data: value, stamp }));
  const request = codec.encodeFetchManyRequest(sender, "scores", keys, false).subarray(5);
  const response = codec.encodeFetchManyResponse(results).subarray(5);
  let seen = 0;
  const onResult = (result) => {
    seen += result.index;
  };
  const steps = [
    () => codec.encodeFetchManyRequest(sender, "scores", keys, false),
    () => {
      if (codec.readFetchManyRequest(request).keys.length !== KEYS) throw new Error("bad read");
    },
    () => codec.encodeFetchManyResponse(results),
    () => codec.decodeFetchManyResponse(response, onResult),
  ];
  const out = [];
  for (const step of steps) {
    for (let i = 0; i < rounds / 4; i++) step();
    const before = process.cpuUsage();
    for (let i = 0; i < rounds; i++) step();
    const cpu = process.cpuUsage(before);
    out.push(((cpu.user + cpu.system) * 1_000) / (rounds * KEYS));
  }
  if (seen === 0) throw new Error("peer-codec: no result decoded");
  return out;
}

const { rounds, child, other } = treeBenchArgs(process.argv.slice(2), 40_000);

if (child !== undefined) {
  console.log(JSON.stringify(await measure(child, rounds)));
} else {
  const trees = other === undefined ? [ROOT] : [ROOT, path.resolve(other)];
  const runs = runTreesAlternating(SELF, trees, rounds, JSON.parse);
  for (const [tree, values] of runs) {
    console.log(`${tree} (${rounds} × ${KEYS} keys per step and run; ns of CPU per key, 3 runs):`);
    STEPS.forEach((name, i) => {
      const each = values.map((v) => v[i].toFixed(0)).join(" / ");
      const sum = values.map((v) => v.reduce((a, b) => a + b, 0).toFixed(0));
      if (i === 0) console.log(`  all four: ${sum.join(" / ")}`);
      console.log(`  ${name}: ${each}`);
    });
  }
}
