import { describe, expect, it } from "vitest";
import { BackoffSchedule } from "./handoff.js";

describe("BackoffSchedule", () => {
  it("backs a failing target off exponentially up to a cap, and clears it on success", () => {
    const b = new BackoffSchedule({ baseMs: 100, maxMs: 1000 });
    expect(b.isDue("n2", 0)).toBe(true);
    expect(b.failure("n2", 0)).toBe(100);
    expect(b.isDue("n2", 99)).toBe(false);
    expect(b.isDue("n2", 100)).toBe(true);
    expect(b.failure("n2", 100)).toBe(200);
    expect(b.failure("n2", 300)).toBe(400);
    expect(b.failure("n2", 700)).toBe(800);
    expect(b.failure("n2", 1500)).toBe(1000);
    expect(b.failure("n2", 2500)).toBe(1000);
    expect(b.failures("n2")).toBe(6);
    expect(b.nextAttemptIn("n2", 3000)).toBe(500);
    expect(b.isDue("n3", 0)).toBe(true); // per target
    b.success("n2");
    expect(b.isDue("n2", 0)).toBe(true);
    expect(b.failures("n2")).toBe(0);
  });

  it("lets a target reported up be tried at once, keeping its failure count", () => {
    const b = new BackoffSchedule({ baseMs: 100, maxMs: 1000 });
    b.failure("n2", 0);
    b.failure("n2", 100);
    b.reset("n2");
    expect(b.isDue("n2", 101)).toBe(true);
    expect(b.failures("n2")).toBe(2);
  });
});
