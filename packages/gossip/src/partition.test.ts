import { describe, expect, it } from "vitest";
import { defaultSwimConfig } from "./config.js";
import { Simulation } from "./simulation.js";
import { nodeIds, stat } from "./test-support.js";

const SYNC = defaultSwimConfig.syncIntervalMs;
const SUSPICION = defaultSwimConfig.suspicionTimeoutMs;
/**
 * Once healed, some member's push-pull picks a member across the cut within one sync interval
 * (dead members are sync candidates); the exchange makes each side suspect the other's view of it,
 * members refute, and refutations cross over the reconnected probes. Bound: 2 sync intervals +
 * one suspicion timeout.
 */
const HEAL_BOUND_MS = 2 * SYNC + SUSPICION;

describe("partition and heal, 10 members split 6 | 4", () => {
  it(`each side marks the other dead, and after healing all converge to all-alive within ${HEAL_BOUND_MS} ms`, () => {
    const splitTimes: number[] = [];
    const healTimes: number[] = [];
    for (let seed = 1; seed <= 6; seed++) {
      const sim = new Simulation({ seed });
      const ids = nodeIds(10);
      sim.addCluster(ids);
      sim.runFor(10_000);
      const left = ids.slice(0, 6);
      const right = ids.slice(6);
      sim.partition([left, right]);
      const sidesDead = () => left.every((a) => right.every((b) => sim.view(a, b)?.state === "dead" && sim.view(b, a)?.state === "dead"));
      const split = sim.runUntil(sidesDead, 60_000);
      expect(split, `seed ${seed}: sides did not mark each other dead`).toBeDefined();
      splitTimes.push(split as number);
      // Within each side everyone stays alive.
      for (const side of [left, right]) {
        for (const a of side) for (const b of side) expect(sim.view(a, b)?.state).toBe("alive");
      }
      sim.runFor(30_000);

      const incarnationsBefore = ids.map((id) => sim.node(id).self.incarnation);
      sim.heal();
      const healed = sim.runUntil(() => sim.allAlive(ids), 120_000);
      expect(healed, `seed ${seed}: did not converge to all-alive`).toBeDefined();
      healTimes.push(healed as number);
      // Convergence came through refutation: members came back with higher incarnations, and
      // everyone agrees on each member's incarnation.
      expect(ids.some((id, i) => sim.node(id).self.incarnation > (incarnationsBefore[i] as number))).toBe(true);
      for (const subject of ids) {
        const incarnations = new Set(ids.map((observer) => sim.view(observer, subject)?.incarnation));
        expect(incarnations.size).toBe(1);
      }
      // And it stays healed.
      sim.runFor(60_000);
      expect(sim.allAlive(ids)).toBe(true);
    }
    console.log(
      `partition 6|4: sides see each other dead after ms ${JSON.stringify(stat(splitTimes))}; all-alive after heal in ms ${JSON.stringify(stat(healTimes))}, bound ${HEAL_BOUND_MS}`,
    );
    expect(Math.max(...healTimes)).toBeLessThanOrEqual(HEAL_BOUND_MS);
  });
});
