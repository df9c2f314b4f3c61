import { describe, expect, it } from "vitest";
import { Simulation } from "./simulation.js";
import { declaredDeadSince, nodeIds } from "./test-support.js";

const N = 16;
const MINUTES = 10;

/**
 * With loss p per message, a direct probe fails with q = 1 - (1-p)^2 and each of the k = 3
 * indirect probes (ping-req, ping, ack, ack) with r = 1 - (1-p)^4, so a probe of a healthy member
 * raises a false suspicion with probability about q * r^3: 0.06% at 5% loss, 0.8% at 10%.
 * Refutation then has to beat the suspicion timeout, which it does with a wide margin.
 */
const cases = [
  { loss: 0.05, maxSuspicionRate: 0.005 },
  { loss: 0.1, maxSuspicionRate: 0.02 },
];

describe(`false positives: ${N} healthy members, ${MINUTES} simulated minutes, lossy network`, () => {
  it.each(cases)("at $loss message loss nobody is declared dead and suspicions stay under $maxSuspicionRate per probe", ({ loss, maxSuspicionRate }) => {
    const sim = new Simulation({ seed: 2024, lossRate: loss });
    const ids = nodeIds(N);
    sim.addCluster(ids);
    sim.runFor(MINUTES * 60_000);

    const totals = { probes: 0, suspicions: 0, refutations: 0, pingReqs: 0 };
    for (const id of ids) {
      const stats = sim.node(id).stats();
      totals.probes += stats.probesStarted;
      totals.suspicions += stats.suspicionsRaised;
      totals.refutations += stats.refutations;
      totals.pingReqs += stats.pingReqsSent;
    }
    const wronglyDead = declaredDeadSince(sim, 0, ids);
    const rate = totals.suspicions / totals.probes;
    console.log(
      `loss ${loss}: ${totals.probes} probes, ${totals.suspicions} false suspicions (${(rate * 100).toFixed(3)}% per probe, ` +
        `${(totals.suspicions / MINUTES).toFixed(1)}/min cluster-wide), ${totals.refutations} refutations, ` +
        `${wronglyDead.length} wrongly declared dead, ${sim.network.lost}/${sim.network.sent} messages lost`,
    );
    expect(sim.network.lost / sim.network.sent).toBeCloseTo(loss, 1);
    expect(totals.probes).toBeGreaterThan(N * MINUTES * 60 * 0.95);
    expect(wronglyDead).toEqual([]);
    expect(rate).toBeLessThan(maxSuspicionRate);
    // Every suspicion was refuted (or the suspect was refuted before this node's own probe failed).
    expect(totals.refutations).toBeGreaterThan(0);
    expect(sim.allAlive(ids)).toBe(true);
  });
});
