// Scenario 1 of the README (one process, one group, no network), as a user
// runs it after `npm install @distcache/core` alone. scripts/registry-check.sh
// compares what it prints with scenario1.expected.
import { NotFoundError, newGroup } from "@distcache/core";

const db = new Map([
  ["Tom", "630"],
  ["Jack", "589"],
  ["Sam", "567"],
]);

let getterCalls = 0;
const scores = newGroup("scores", 2 << 10, async (key, { signal }) => {
  getterCalls++;
  signal.throwIfAborted();
  console.log(`loaded from source: ${key}`);
  const score = db.get(key);
  if (score === undefined) throw new NotFoundError(key); // returned to the caller, never cached
  return score;
});

console.log(`Tom's score: ${await scores.get("Tom")}`);
console.log(`Tom's score (cached): ${await scores.get("Tom")}`);
await scores.delete("Tom");
console.log("deleted");
console.log(`Tom's score (reloaded): ${await scores.get("Tom")}`);
for (const key of ["Jack", "Sam"]) console.log(`${key}: ${(await scores.get(key)).toString()}`);
try {
  await scores.get("nobody");
  console.log("nobody: found?!");
} catch (error) {
  console.log(`nobody: ${error instanceof NotFoundError ? "NotFoundError" : String(error)}`);
}
console.log(`getter calls: ${getterCalls}`);
