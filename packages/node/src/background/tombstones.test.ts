import { emptySet, type SiblingSet, update } from "@dynamo-ts/vclock";
import { describe, expect, it } from "vitest";
import { isPurgeable } from "./tombstones.js";

const value = new TextEncoder().encode("v");
const written = update(emptySet(), new Map(), "a", value, 1_000);
const deleted: SiblingSet = update(written, written.clock, "a", null, 2_000);

describe("isPurgeable (tombstone collection rule)", () => {
  it("allows purging only identical tombstone-only sets on every replica after the grace period", () => {
    expect(isPurgeable([deleted, deleted, deleted], 3, 10_000, 5_000)).toBe(true);
  });
  it("refuses within the grace period", () => {
    expect(isPurgeable([deleted, deleted, deleted], 3, 6_000, 5_000)).toBe(false);
  });
  it("refuses when a replica did not answer or holds something else", () => {
    expect(isPurgeable([deleted, deleted, undefined], 3, 10_000, 5_000)).toBe(false);
    expect(isPurgeable([deleted, deleted, written], 3, 10_000, 5_000)).toBe(false);
    expect(isPurgeable([deleted, deleted], 3, 10_000, 5_000)).toBe(false);
  });
  it("refuses live values and concurrent writes beside a tombstone", () => {
    const concurrent = update(deleted, new Map(), "b", value, 2_500);
    expect(isPurgeable([written, written, written], 3, 10_000, 5_000)).toBe(false);
    expect(isPurgeable([concurrent, concurrent, concurrent], 3, 10_000, 5_000)).toBe(false);
    expect(isPurgeable([emptySet(), emptySet(), emptySet()], 3, 10_000, 5_000)).toBe(false);
  });
});
