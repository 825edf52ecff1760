import { Group } from "../packages/core/dist/index.js";
const keys = []; for (let i = 0; i < 100000; i++) keys.push(`key:${100000 + i}`);
const v = new Uint8Array(100);
for (const batch of [1, 1000]) {
  const g = new Group("x" + batch, 1e8, () => v);
  const t = performance.now();
  for (let i = 0; i < 1e5; i += batch) await Promise.all(keys.slice(i, i + batch).map((k) => g.get(k)));
  console.log("batch", batch, ((performance.now() - t) / 1e5 * 1000).toFixed(2), "us/miss");
}
for (const lt of [0]) {
  const g = new Group("y", 1e8, () => v, { loadTimeout: lt });
  const t = performance.now();
  for (let i = 0; i < 1e5; i += 1000) await Promise.all(keys.slice(i, i + 1000).map((k) => g.get(k)));
  console.log("loadTimeout 0, batch 1000", ((performance.now() - t) / 1e5 * 1000).toFixed(2), "us/miss");
}
