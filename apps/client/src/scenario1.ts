#!/usr/bin/env node
/**
 * Scenario 1 of the reference's usage document: one process, one group with a
 * 2 KiB budget over a small score table. The first get loads from the source,
 * the second is a hit, a delete forces exactly one reload.
 */
import { NotFoundError, newGroup } from "@distcache/core";

const db = new Map([
  ["Tom", "630"],
  ["Jack", "589"],
  ["Sam", "567"],
]);

let getterCalls = 0;
const group = newGroup("scores", 2 << 10, async (key) => {
  getterCalls++;
  console.log(`loaded from source: ${key}`);
  const score = db.get(key);
  if (score === undefined) throw new NotFoundError(key);
  return score;
});

const view = await group.get("Tom");
console.log(`Tom's score: ${view}`);

const cached = await group.get("Tom");
console.log(`Tom's score (cached): ${cached}`);

await group.delete("Tom");
console.log("deleted");

const reloaded = await group.get("Tom");
console.log(`Tom's score (reloaded): ${reloaded}`);

if (getterCalls !== 2) {
  console.error(`expected the getter to run twice, it ran ${getterCalls} times`);
  process.exit(1);
}
