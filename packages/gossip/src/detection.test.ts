import { describe, expect, it } from "vitest";
import { defaultSwimConfig } from "./config.js";
import { Simulation } from "./simulation.js";
import { declaredDeadSince, nodeIds, scaledSuspicionMs, stat } from "./test-support.js";

const N = 16;
const PERIOD = defaultSwimConfig.protocolPeriodMs;
const SUSPICION = scaledSuspicionMs(defaultSwimConfig.suspicionTimeoutMs, N); // 6,021 ms for 16 members
/**
 * Bound on detection: the crashed member is probed by someone within a couple of periods (each
 * of the 15 others probes one member per period), suspected at the end of that period, declared
 * dead SUSPICION later, and the `dead` spreads in O(log n) periods: 6 periods of slack in all.
 */
const DETECTION_BOUND_MS = 6 * PERIOD + SUSPICION;

describe(`failure detection in a ${N}-member cluster (default config)`, () => {
  it(`every live member marks a crashed member dead within 6 periods + suspicion timeout (${DETECTION_BOUND_MS} ms)`, () => {
    const detection: number[] = [];
    const firstSuspicion: number[] = [];
    for (let seed = 1; seed <= 8; seed++) {
      const sim = new Simulation({ seed });
      const ids = nodeIds(N);
      sim.addCluster(ids);
      sim.runFor(20_000);
      expect(sim.allAlive(ids)).toBe(true);

      const victim = ids[seed % N] as string;
      const crashedAt = sim.now;
      sim.crash(victim);
      const took = sim.runUntil(() => sim.allRunningSee(victim, (m) => m?.state === "dead"), 60_000);
      expect(took, `seed ${seed}: not everyone saw ${victim} dead`).toBeDefined();
      detection.push(took as number);
      const suspected = sim.history.find((c) => c.at >= crashedAt && c.member.id === victim && c.member.state === "suspect");
      firstSuspicion.push((suspected?.at ?? Number.NaN) - crashedAt);

      // Nobody else was declared dead meanwhile.
      const others = ids.filter((id) => id !== victim);
      expect(declaredDeadSince(sim, 0, others)).toEqual([]);
    }
    console.log(
      `detection (${N} members, ${PERIOD} ms period, ${SUSPICION} ms suspicion): first suspicion ms ${JSON.stringify(stat(firstSuspicion))}, ` +
        `all live members see dead ms ${JSON.stringify(stat(detection))}, bound ${DETECTION_BOUND_MS} ms`,
    );
    expect(Math.max(...detection)).toBeLessThanOrEqual(DETECTION_BOUND_MS);
    // Suspicion alone must not be what makes it fast: nobody calls it dead before the timeout.
    expect(Math.min(...detection)).toBeGreaterThanOrEqual(SUSPICION);
  });
});
