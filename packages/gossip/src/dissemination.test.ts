import { describe, expect, it } from "vitest";
import { defaultSwimConfig } from "./config.js";
import { Simulation } from "./simulation.js";
import { nodeIds } from "./test-support.js";

const PERIOD = defaultSwimConfig.protocolPeriodMs;
/** Rounds (protocol periods) for an update to reach all n members must stay within C * log2(n). */
const C = 2;

/**
 * Measures how many protocol periods it takes for a refutation (member n0 is told it is suspected
 * and gossips `alive` at a higher incarnation) to reach every member by piggybacking alone: push-pull
 * is switched off, and the cluster first runs until every broadcast queue has drained so that the
 * measurement is of a fresh update in steady state.
 */
function roundsToReachAll(n: number, seed: number): number {
  const sim = new Simulation({ seed, config: { syncIntervalMs: 24 * 3_600_000 } });
  const ids = nodeIds(n);
  sim.addCluster(ids);
  const settled = sim.runUntil(() => ids.every((id) => sim.node(id).stats().pendingBroadcasts === 0), 3_600_000, PERIOD);
  expect(settled).toBeDefined();
  const [origin, teller] = ids as [string, string];
  const before = sim.node(origin).self;
  sim.inject(teller, origin, {
    type: "ack",
    seq: 0,
    from: { id: teller, address: sim.addressOf(teller), incarnation: sim.node(teller).self.incarnation, ringStatus: "normal", ringVersion: 0 },
    updates: [
      {
        id: origin,
        address: before.address,
        state: "suspect",
        incarnation: before.incarnation,
        ringStatus: before.ringStatus,
        ringVersion: before.ringVersion,
      },
    ],
  });
  const refuted = before.incarnation + 1;
  expect(sim.node(origin).self.incarnation).toBe(refuted);
  const took = sim.runUntil(() => sim.allRunningSee(origin, (m) => m?.state === "alive" && m.incarnation === refuted), 120_000);
  expect(took).toBeDefined();
  return Math.ceil((took as number) / PERIOD);
}

describe("dissemination by piggybacking", () => {
  it(`an update reaches all n members within ${C} * log2(n) protocol rounds, for n = 8, 32, 128`, () => {
    const results: { n: number; rounds: number[]; bound: number }[] = [];
    for (const [n, seeds] of [
      [8, [1, 2, 3, 4]],
      [32, [1, 2, 3]],
      [128, [1]],
    ] as const) {
      const rounds = seeds.map((seed) => roundsToReachAll(n, seed));
      results.push({ n, rounds, bound: C * Math.log2(n) });
    }
    console.log("dissemination rounds: " + results.map((r) => `n=${r.n}: ${r.rounds.join(", ")} (log2 n = ${Math.log2(r.n)}, bound ${r.bound})`).join("; "));
    for (const r of results) expect(Math.max(...r.rounds)).toBeLessThanOrEqual(r.bound);
  }, 60_000); // a simulation of 128 members: an upper bound for a loaded machine, not a timing check
});
