import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { readiness } from "./readiness.js";

const healthy = { started: true, stopping: false, storageProblem: "", ringStatus: "normal", ringMembers: 3, membersUp: 3, n: 3, r: 2, w: 2 };

describe("readiness", () => {
  it("is ready when started, writable, and enough members are up for R and W", () => {
    expect(readiness(healthy)).toMatchObject({ ready: true, reason: "" });
    expect(readiness({ ...healthy, membersUp: 2 }).ready).toBe(true);
  });

  it("is not ready alone in a cluster configured for N=3, W=2, and says what to do", () => {
    const lone = readiness({ ...healthy, ringMembers: 1, membersUp: 1 });
    expect(lone.ready).toBe(false);
    expect(lone.reason).toContain("only 1 of 1 members up, but the default R=2 and W=2 need 2");
    expect(lone.reason).toContain("start more nodes with --seeds");
    const leftAlone = readiness({ ...healthy, membersUp: 1 });
    expect(leftAlone.reason).toContain("only 1 of 3 members up");
    expect(leftAlone.reason).toContain("until members come back");
    // N=1 clusters are ready alone.
    expect(readiness({ ...healthy, ringMembers: 1, membersUp: 1, n: 1, r: 1, w: 1 }).ready).toBe(true);
  });

  it("names every failed check", () => {
    const r = readiness({ ...healthy, started: false, storageProblem: "data: disk full" });
    expect(r.checks.filter((c) => !c.ok).map((c) => c.name)).toEqual(["started", "storage"]);
    expect(r.reason).toBe("starting; data: disk full");
    expect(readiness({ ...healthy, stopping: true }).reason).toBe("shutting down");
  });

  it("is not ready while joining (copying its ranges), nor once it has left or was removed", () => {
    const joining = readiness({ ...healthy, ringStatus: "joining" });
    expect(joining.ready).toBe(false);
    expect(joining.reason).toContain("joining: copying the ranges it will own");
    expect(readiness({ ...healthy, ringStatus: "leaving" }).ready).toBe(true);
    expect(readiness({ ...healthy, ringStatus: "left" }).reason).toContain("no longer a member");
  });

  it("is ready exactly when no check fails", () => {
    fc.assert(
      fc.property(
        fc.record({
          started: fc.boolean(),
          stopping: fc.boolean(),
          storageProblem: fc.constantFrom("", "data: failing"),
          ringStatus: fc.constantFrom("joining", "normal", "leaving", "left", "removed"),
          ringMembers: fc.integer({ min: 0, max: 6 }),
          membersUp: fc.integer({ min: 0, max: 6 }),
          n: fc.constant(3),
          r: fc.integer({ min: 1, max: 3 }),
          w: fc.integer({ min: 1, max: 3 }),
        }),
        (facts) => {
          const r = readiness(facts);
          const expected =
            facts.started &&
            !facts.stopping &&
            facts.storageProblem === "" &&
            (facts.ringStatus === "normal" || facts.ringStatus === "leaving") &&
            facts.ringMembers >= 1 &&
            facts.membersUp >= Math.max(facts.r, facts.w);
          expect(r.ready).toBe(expected);
          expect(r.reason === "").toBe(expected);
        },
      ),
    );
  });
});
