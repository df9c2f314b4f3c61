import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { QuorumTracker } from "./quorum.js";

describe("QuorumTracker", () => {
  it("is met at exactly `needed` successes", () => {
    const q = new QuorumTracker<number>(2, 3);
    expect(q.success("a", 1)).toBe("pending");
    expect(q.success("b", 2)).toBe("met");
    expect(q.failure("c", "down")).toBe("met");
  });

  it("fails as soon as the remaining nodes cannot make up the quorum", () => {
    const q = new QuorumTracker<number>(2, 3);
    expect(q.failure("a", "refused")).toBe("pending");
    expect(q.failure("b", "refused")).toBe("failed");
    expect(q.describe("acknowledged")).toBe("0 of 3 replicas acknowledged, 2 needed (a: refused; b: refused; 1 did not answer in time)");
  });

  it("fails at once when fewer nodes are asked than needed", () => {
    expect(new QuorumTracker(3, 2).state).toBe("failed");
  });

  it("counts a node once, by its first answer", () => {
    const q = new QuorumTracker<number>(2, 2);
    q.success("a", 1);
    q.success("a", 1);
    expect(q.state).toBe("pending");
    q.failure("a", "late failure");
    expect(q.successes.size).toBe(1);
    expect(q.failures.size).toBe(0);
  });

  it("decides met/failed exactly like counting (property)", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 7 }), fc.array(fc.boolean(), { minLength: 0, maxLength: 7 }), (needed, outcomes) => {
        const asked = 7;
        const q = new QuorumTracker<true>(needed, asked);
        outcomes.forEach((ok, i) => (ok ? q.success(`n${i}`, true) : q.failure(`n${i}`, "x")));
        const ok = outcomes.filter(Boolean).length;
        const expected = ok >= needed ? "met" : ok + (asked - outcomes.length) < needed ? "failed" : "pending";
        expect(q.state).toBe(expected);
      }),
      { seed: 42, numRuns: 300 },
    );
  });
});
