// The packages are ES modules; from Node 22.12 CommonJS code can require()
// them without a flag. Prints the same first value as scenario 1.
const { ByteView, newGroup } = require("@distcache/core");

const group = newGroup("scores-cjs", 2 << 10, (key) => ({ Tom: "630" })[key] ?? "");
group.get("Tom").then((view) => {
  if (!(view instanceof ByteView)) throw new Error("not a ByteView");
  console.log(`cjs Tom: ${view}`);
});
