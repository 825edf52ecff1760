import { execFileSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { expect, it } from "vitest";

it("scenario 1 prints the reference's sequence, loading exactly twice", () => {
  const script = fileURLToPath(new URL("../dist/scenario1.js", import.meta.url));
  const output = execFileSync(process.execPath, [script], { encoding: "utf8" });
  expect(output.trim().split("\n")).toEqual([
    "loaded from source: Tom",
    "Tom's score: 630",
    "Tom's score (cached): 630",
    "deleted",
    "loaded from source: Tom",
    "Tom's score (reloaded): 630",
  ]);
});
