// Helpers shared by the simulation tests (not part of the build).
import type { Simulation } from "./simulation.js";

export function nodeIds(n: number, prefix = "n"): string[] {
  const width = String(n - 1).length;
  return Array.from({ length: n }, (_, i) => `${prefix}${String(i).padStart(width, "0")}`);
}

/** The SWIM suspicion timeout for a cluster of n live members (base scaled by log10 n above 10). */
export function scaledSuspicionMs(baseMs: number, n: number): number {
  return Math.round(baseMs * Math.max(1, Math.log10(n)));
}

/** Every (observer, subject) pair in which a running observer's history has the subject dead or left after `since`. */
export function declaredDeadSince(sim: Simulation, since: number, subjects: readonly string[]): { observer: string; subject: string }[] {
  const wanted = new Set(subjects);
  return sim.history
    .filter((c) => c.at >= since && wanted.has(c.member.id) && c.member.state === "dead")
    .map((c) => ({ observer: c.observer, subject: c.member.id }));
}

export function stat(values: readonly number[]): { min: number; median: number; max: number } {
  const sorted = [...values].sort((a, b) => a - b);
  return {
    min: sorted[0] ?? Number.NaN,
    median: sorted[Math.floor(sorted.length / 2)] ?? Number.NaN,
    max: sorted[sorted.length - 1] ?? Number.NaN,
  };
}
