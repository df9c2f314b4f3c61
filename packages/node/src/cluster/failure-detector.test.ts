import { describe, expect, it } from "vitest";
import { RpcFailureDetector } from "./failure-detector.js";

describe("RpcFailureDetector", () => {
  it("marks a node down on failure, allows one trial per retry interval, and up on success", () => {
    let now = 1000;
    const ups: string[] = [];
    const fd = new RpcFailureDetector({ retryAfterMs: 500 }, () => now);
    fd.onUp((node) => ups.push(node));
    expect(fd.isAvailable("b")).toBe(true);
    fd.recordFailure("b");
    expect(fd.health("b")).toBe("down");
    expect(fd.isAvailable("b")).toBe(false);
    now += 499;
    expect(fd.isAvailable("b")).toBe(false);
    now += 1;
    expect(fd.isAvailable("b")).toBe(true); // the trial
    expect(fd.isAvailable("b")).toBe(false); // only one
    fd.recordSuccess("b");
    expect(fd.health("b")).toBe("up");
    expect(fd.lastHeardAt("b")).toBe(1500);
    expect(ups).toEqual(["b"]);
    fd.recordSuccess("b");
    expect(ups).toEqual(["b"]);
  });
});
