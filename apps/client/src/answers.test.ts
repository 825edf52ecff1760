// The rule that reads in-band answers: not found vs source error, and a Set's
// not-cached report beside members that did not acknowledge.
import { describe, expect, it } from "vitest";
import { judgeGet, judgeWrite } from "./answers.js";

describe("judgeGet", () => {
  it.each([
    [{ found: true, err: "" }, 0],
    [{ found: false, err: "key not found: Tom" }, 1],
    [{ found: false, err: "" }, 1],
    // Another key's message, or NotFoundError with a message of its own: not this rule's not found.
    [{ found: false, err: "key not found: Jack" }, 2],
    [{ found: false, err: "no row" }, 2],
    [{ found: false, err: "no such group: scores" }, 2],
    [{ found: false, err: "key is required" }, 2],
    [{ found: false, err: "call did not settle within 10000 ms" }, 2],
  ])("%j → exit %i", (answer, exit) => {
    expect(judgeGet("scores", "Tom", answer).exit).toBe(exit);
  });

  it("names the kind of error", () => {
    expect(judgeGet("scores", "Tom", { found: false, err: "db down" }).message).toBe(
      "source error: the node's getter failed: db down",
    );
    expect(judgeGet("scores", "Tom", { found: false, err: "no such group: scores" }).message).toBe(
      "unknown group: no such group: scores",
    );
  });
});

describe("judgeWrite", () => {
  const notCached =
    "value of 3000 bytes not cached: over the group's 2048-byte budget (the entry is charged 3203 bytes with key and overhead)";

  it("a plain success is exit 0 with nothing to say", () => {
    expect(judgeWrite("set", "scores", { success: true, err: "" })).toEqual({
      exit: 0,
      warnings: [],
    });
  });

  it("members that did not acknowledge are a warning, exit 0", () => {
    expect(
      judgeWrite("delete", "scores", {
        success: true,
        err: "not acknowledged by a:1: down; b:2: down",
      }),
    ).toEqual({ exit: 0, warnings: ["warning: not acknowledged by a:1: down; b:2: down"] });
  });

  it("a value not cached is exit 2, beside any warning", () => {
    const verdict = judgeWrite("set", "scores", {
      success: true,
      err: `${notCached}; not acknowledged by a:1: down`,
    });
    expect(verdict.exit).toBe(2);
    expect(verdict.message).toBe(
      `${notCached}; the write happened (every old copy was dropped), but the next get calls the getter`,
    );
    expect(verdict.warnings).toEqual(["warning: not acknowledged by a:1: down"]);
  });

  it("success=false is exit 2 with the reason", () => {
    expect(
      judgeWrite("set", "scores", {
        success: false,
        err: "set not acknowledged by the owner (a:1: down)",
      }),
    ).toEqual({ exit: 2, message: "set failed: set not acknowledged by the owner (a:1: down)" });
  });
});
