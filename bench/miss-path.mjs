// What a forwarded miss costs in JavaScript, with no network: a Group whose
// keys all belong to a peer client that answers at once, read 64 keys at a
// time, each Get with a cancellation of its own as the Get fast path gives it
// (a core `Cancel` where the tree has one, else an AbortSignal), and the peer
// client listening on the Get's cancellation until it answers, as the
// transport's batcher does. A tree with `group.clientHandler` is driven the
// way the Get fast path drives it (a receiver per Get, and a peer client with
// `getTo` answering a round's keys together a microtask later); an older
// tree through `Group.get` and the peer client's `get`.
// It isolates the miss path's own work (group, singleflight, fill tokens,
// promises and abort listeners), which the cluster benches see only as a
// share of a forwarded Get (issue 14; docs/benchmarks.md).
//
// Standalone: node bench/miss-path.mjs [--rounds N] [OTHER_TREE]
// With OTHER_TREE (a checkout with built dist/, e.g. a copy of an older
// commit), runs alternate between this tree and that one, 3 runs each, and
// print the CPU per miss of each run. No dependencies beyond the built core.

import path from "node:path";
import { fileURLToPath } from "node:url";
import { runTreesAlternating, treeBenchArgs } from "./harness.mjs";

const SELF = fileURLToPath(import.meta.url);
const ROOT = path.resolve(path.dirname(SELF), "..");
const KEYS = 64;
const WARMUP_ROUNDS = 3_000;

/** One measured run in this process against the core built in `root`; CPU ns per miss. */
async function measure(root, rounds) {
  const { Cancel, Group } = await import(path.join(root, "packages/core/dist/index.js"));
  const value = new Uint8Array(16);
  const ignore = () => {};
  const answer = { value };
  // Both answer a batch's keys together, a turn later, as the transport's
  // batcher does, and listen on each Get's cancellation until then.
  const owner = {
    id: "owner",
    get: (_group, _key, options) => {
      const leave = options.cancel ?? options.signal;
      if (leave === undefined) return Promise.resolve(answer);
      if (options.cancel !== undefined) leave.onCancel(ignore);
      else leave.addEventListener("abort", ignore, { once: true });
      return Promise.resolve().then(() => {
        if (options.cancel !== undefined) leave.offCancel(ignore);
        else leave.removeEventListener("abort", ignore);
        return answer;
      });
    },
    store: () => Promise.resolve(undefined),
    remove: () => Promise.resolve({ failed: [] }),
  };
  const placement = { owner, replicas: [], selfIsReplica: false };
  const group = new Group("miss-path", 1 << 20, () => {
    throw new Error("miss-path: a key was loaded locally; every key belongs to the peer");
  });
  group.registerPeers({ placement: () => placement, others: () => [owner] });
  const keys = Array.from({ length: KEYS }, (_, i) => `k${i}`);
  // The entry keeps no copy (not a replica), so every round misses every key.
  const options =
    Cancel === undefined
      ? () => ({ signal: new AbortController().signal })
      : () => ({ cancel: new Cancel() });
  let round = () => Promise.all(keys.map((key) => group.get(key, options())));
  if (group.clientHandler !== undefined) {
    // A tree with receivers: the Get fast path's call (a receiver per Get,
    // no promise), and a peer client that reports to receivers as the
    // transport's does (getTo).
    const asked = [];
    const answerAll = () => {
      for (const [receiver, cancel] of asked) {
        cancel.offCancel(ignore);
        receiver.resolve(answer);
      }
      asked.length = 0;
    };
    owner.getTo = (_group, _key, options, receiver) => {
      options.cancel.onCancel(ignore);
      if (asked.push([receiver, options.cancel]) === 1) queueMicrotask(answerAll);
    };
    let roundDone;
    let left = 0;
    const call = {
      resolve: () => {
        if (--left === 0) roundDone();
      },
      reject: (error) => {
        throw error;
      },
    };
    round = () =>
      new Promise((resolve) => {
        roundDone = resolve;
        left = keys.length;
        for (const key of keys) group.clientHandler.get(key, call, new Cancel());
      });
  }
  for (let i = 0; i < WARMUP_ROUNDS; i++) await round();
  const before = process.cpuUsage();
  for (let i = 0; i < rounds; i++) await round();
  const cpu = process.cpuUsage(before);
  if (group.stats().peerLoads < rounds * KEYS) throw new Error("miss-path: Gets did not miss");
  return ((cpu.user + cpu.system) * 1_000) / (rounds * KEYS);
}

const { rounds, child, other } = treeBenchArgs(process.argv.slice(2), 20_000);

if (child !== undefined) {
  // A child: one run against the tree it was given, its result on stdout.
  console.log((await measure(child, rounds)).toFixed(0));
} else {
  const trees = other === undefined ? [ROOT] : [ROOT, path.resolve(other)];
  const runs = runTreesAlternating(SELF, trees, rounds, Number);
  for (const [tree, values] of runs) {
    console.log(
      `${tree}: ${values.join(" / ")} ns CPU per forwarded miss (${rounds} × ${KEYS} Gets per run)`,
    );
  }
}
