import { describe, expect, it } from "vitest";
import { NodePool } from "./node-pool.js";

describe("NodePool", () => {
  it("starts each call one node further along, round-robin over the nodes that are up", () => {
    const pool = new NodePool(["a", "b", "c"], 1000, () => 0);
    expect([pool.order(), pool.order(), pool.order(), pool.order()]).toEqual([
      ["a", "b", "c"],
      ["b", "c", "a"],
      ["c", "a", "b"],
      ["a", "b", "c"],
    ]);
  });

  it("puts a failed node last until its backoff ends, then back in the rotation", () => {
    let now = 0;
    const pool = new NodePool(["a", "b", "c"], 1000, () => now);
    pool.failed("b");
    now = 10;
    pool.failed("a");
    expect(pool.order()).toEqual(["c", "b", "a"]);
    now = 1005;
    expect(pool.order()).toEqual(["c", "b", "a"]);
    pool.answered("a");
    expect(pool.order().slice(-1)).toEqual(["b"]);
    now = 2000;
    expect(pool.order().sort()).toEqual(["a", "b", "c"]);
  });

  it("refuses an empty list", () => {
    expect(() => new NodePool([], 1000)).toThrow(TypeError);
  });
});
