// grpc-timeout as the hand-written gRPC paths read it.
import { Code, ConnectError } from "@connectrpc/connect";
import { parseTimeout } from "@connectrpc/connect/protocol-grpc";
import { describe, expect, it } from "vitest";
import { MAX_TIMER_MS, requestTimeout } from "./timeout.js";

describe("grpc-timeout and cancellation", () => {
  it("parses grpc-timeout as gRPC defines it", () => {
    expect(requestTimeout("200m")).toBe(200);
    expect(requestTimeout("2S")).toBe(2_000);
    expect(requestTimeout("1M")).toBe(60_000);
    expect(requestTimeout("1H")).toBe(3_600_000);
    expect(requestTimeout("1500u")).toBe(1.5);
    expect(requestTimeout("99999999n")).toBeCloseTo(99.999999);
    for (const bad of ["", "m", "1", "1.5S", "-1S", "123456789S", "1s", " 1S", ["1S", "2S"]]) {
      expect(requestTimeout(bad)).toBeInstanceOf(ConnectError);
    }
  });
});

describe("requestTimeout", () => {
  it("gives the milliseconds for a timer, none past what a timer holds, and Connect's error for a malformed value", () => {
    expect(requestTimeout(undefined)).toBeUndefined();
    expect(requestTimeout("150m")).toBe(150);
    expect(requestTimeout("2147483S")).toBe(2_147_483_000);
    expect(2_147_484_000).toBeGreaterThan(MAX_TIMER_MS);
    expect(requestTimeout("2147484S")).toBeUndefined();
    expect(requestTimeout("99999999H")).toBeUndefined();
    expect(requestTimeout("596H")).toBe(596 * 3_600_000);
    expect(requestTimeout("597H")).toBeUndefined();
    for (const bad of ["1x", "123456789m", ["1S", "2S"]]) {
      const error = requestTimeout(bad);
      expect(error).toBeInstanceOf(ConnectError);
      expect((error as ConnectError).code).toBe(Code.InvalidArgument);
      expect((error as ConnectError).rawMessage).toBe(
        `protocol error: invalid grpc timeout value: ${String(bad)}`,
      );
    }
  });
});

describe("requestTimeout's whole-millisecond shortcut", () => {
  it("gives what Connect's parser gives, for every length of NNNm and its near misses", () => {
    const values = [
      "0m",
      "00000001m",
      "99999999m",
      "007m",
      "123456789m",
      "m",
      "1 m",
      "1M",
      "+1m",
      "１m",
    ];
    for (let digits = 1; digits <= 9; digits++)
      values.push(`${"9".repeat(digits)}m`, `${"1".repeat(digits)}m`);
    for (const value of values) {
      const ours = requestTimeout(value);
      const { timeoutMs, error } = parseTimeout(value, Number.POSITIVE_INFINITY);
      if (error === undefined) expect(ours, value).toBe(timeoutMs);
      else expect((ours as ConnectError).rawMessage, value).toBe(error.rawMessage);
    }
  });
});
