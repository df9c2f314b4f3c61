import { describe, expect, it } from "vitest";
import { defaultSwimConfig } from "./config.js";
import { Simulation } from "./simulation.js";
import { nodeIds } from "./test-support.js";

const PERIOD = defaultSwimConfig.protocolPeriodMs;

describe("join through one seed", () => {
  it("5 members that know only the first one's address converge to a full, all-alive view within 3 periods", () => {
    const sim = new Simulation({ seed: 11 });
    const ids = nodeIds(5);
    const [first, ...rest] = ids as [string, ...string[]];
    sim.addNode(first);
    for (const id of rest) sim.addNode(id, { seeds: [sim.addressOf(first)] });
    const took = sim.runUntil(() => sim.allAlive(ids), 60_000);
    console.log(`join of 4 members through one seed: full view everywhere after ${took} ms`);
    expect(took).toBeDefined();
    expect(took as number).toBeLessThanOrEqual(3 * PERIOD);
    for (const id of ids)
      expect(
        sim
          .node(id)
          .members()
          .map((m) => m.id),
      ).toEqual(ids);
  });

  it("keeps retrying while the seed is not up yet, then converges", () => {
    const sim = new Simulation({ seed: 12 });
    const ids = nodeIds(5);
    const [first, ...rest] = ids as [string, ...string[]];
    for (const id of rest) sim.addNode(id, { seeds: [`${first}.sim:7946`] });
    sim.runFor(7_000);
    expect(sim.node(rest[0] as string).members()).toHaveLength(1);
    sim.addNode(first);
    const took = sim.runUntil(() => sim.allAlive(ids), 60_000);
    console.log(`join with a seed that came up 7 s late: full view ${took} ms after the seed started`);
    expect(took).toBeDefined();
    // Join retries back off to at most one sync interval.
    expect(took as number).toBeLessThanOrEqual(defaultSwimConfig.syncIntervalMs + 3 * PERIOD);
  });

  it("members joining through different seeds of a running cluster learn everyone", () => {
    const sim = new Simulation({ seed: 13, lossRate: 0.05 });
    const ids = nodeIds(12);
    sim.addCluster(ids.slice(0, 6));
    sim.runFor(5_000);
    ids.slice(6).forEach((id, i) => sim.addNode(id, { seeds: [sim.addressOf(ids[i % 6] as string)] }));
    const took = sim.runUntil(() => sim.allAlive(ids), 120_000);
    expect(took).toBeDefined();
  });
});

describe("leave", () => {
  it("`left` reaches every member and never reverts, until the node restarts with a higher incarnation", () => {
    const sim = new Simulation({ seed: 21, lossRate: 0.05 });
    const ids = nodeIds(10);
    sim.addCluster(ids);
    sim.runFor(10_000);
    const leaver = ids[3] as string;
    const leftAt = sim.now;
    sim.leave(leaver);
    const leftIncarnation = sim.node(leaver).self.incarnation;
    const took = sim.runUntil(() => sim.allRunningSee(leaver, (m) => m?.state === "left" && m.incarnation === leftIncarnation), 60_000);
    console.log(`leave: every member saw \`left\` after ${took} ms`);
    expect(took).toBeDefined();
    expect(took as number).toBeLessThanOrEqual(5 * PERIOD);

    // The departed process lingers (still answering) and then stops; nobody ever sees it alive again.
    sim.runFor(30_000);
    sim.crash(leaver);
    sim.runFor(120_000);
    const afterLeave = sim.history.filter((c) => c.at > leftAt && c.member.id === leaver && c.observer !== leaver);
    expect(afterLeave.every((c) => c.member.state === "left")).toBe(true);
    expect(sim.allRunningSee(leaver, (m) => m?.state === "left")).toBe(true);
    // The rest of the cluster is healthy and no longer probes it.
    expect(sim.allAlive(ids.filter((id) => id !== leaver))).toBe(true);

    // A restart with a higher incarnation brings it back.
    const restarted = sim.restart(leaver, { seeds: [sim.addressOf(ids[0] as string)] });
    expect(restarted.self.incarnation).toBe(leftIncarnation + 1);
    const back = sim.runUntil(() => sim.allAlive(ids), 60_000);
    expect(back).toBeDefined();
  });
});

describe("restart", () => {
  it("a restarted member's higher incarnation overrides the `dead` the others hold", () => {
    const sim = new Simulation({ seed: 31 });
    const ids = nodeIds(8);
    sim.addCluster(ids);
    sim.runFor(5_000);
    const victim = ids[5] as string;
    const before = sim.node(victim).self.incarnation;
    sim.crash(victim);
    expect(sim.runUntil(() => sim.allRunningSee(victim, (m) => m?.state === "dead"), 60_000)).toBeDefined();

    sim.restart(victim, { incarnation: before + 1, seeds: [sim.addressOf(ids[0] as string)] });
    const took = sim.runUntil(() => sim.allRunningSee(victim, (m) => m?.state === "alive" && m.incarnation === before + 1), 60_000);
    console.log(`restart with a higher incarnation: alive everywhere after ${took} ms`);
    expect(took).toBeDefined();
    expect(took as number).toBeLessThanOrEqual(5 * PERIOD);
    // The node reported the comeback as a membership change (dead -> alive) on every other member.
    const comebacks = sim.history.filter((c) => c.member.id === victim && c.previous === "dead" && c.member.state === "alive");
    expect(new Set(comebacks.map((c) => c.observer))).toEqual(new Set(ids.filter((id) => id !== victim)));
    expect(sim.allAlive(ids)).toBe(true);
  });

  it("a member restarted with a stale incarnation learns it is dead and refutes past it", () => {
    const sim = new Simulation({ seed: 32 });
    const ids = nodeIds(6);
    sim.addCluster(ids);
    sim.runFor(5_000);
    const victim = ids[2] as string;
    sim.crash(victim);
    expect(sim.runUntil(() => sim.allRunningSee(victim, (m) => m?.state === "dead"), 60_000)).toBeDefined();
    sim.restart(victim, { incarnation: 0, seeds: [sim.addressOf(ids[0] as string)] });
    expect(sim.runUntil(() => sim.allAlive(ids), 60_000)).toBeDefined();
    expect(sim.node(victim).self.incarnation).toBeGreaterThan(0);
  });
});

describe("refutation", () => {
  it("a member cut off long enough to be suspected, but not declared dead, refutes and is alive everywhere at a higher incarnation", () => {
    const sim = new Simulation({ seed: 41 });
    const ids = nodeIds(10);
    sim.addCluster(ids);
    sim.runFor(10_000);
    const target = ids[7] as string;
    const before = sim.node(target).self.incarnation;
    const cutAt = sim.now;
    const others = ids.filter((id) => id !== target);
    sim.partition([[target], others]);
    const suspected = sim.runUntil(() => sim.history.some((c) => c.at >= cutAt && c.member.id === target && c.member.state === "suspect"), 30_000);
    expect(suspected).toBeDefined();
    sim.runFor(1_000);
    sim.heal();
    const took = sim.runUntil(() => sim.allRunningSee(target, (m) => m?.state === "alive" && m.incarnation > before), 30_000);
    console.log(`refutation: suspected ${suspected} ms after the cut; alive again everywhere ${took} ms after healing`);
    expect(took).toBeDefined();
    expect(sim.node(target).self.incarnation).toBeGreaterThan(before);
    expect(sim.node(target).stats().refutations).toBeGreaterThan(0);
    // It was never declared dead by anyone.
    expect(sim.history.some((c) => c.member.id === target && c.member.state === "dead")).toBe(false);
    // While cut off, the target's own probes failed and it suspected others in turn; those
    // suspicions leak out after the heal and are refuted as well, so the whole cluster settles.
    const settled = sim.runUntil(() => sim.allAlive(ids), 30_000);
    console.log(`refutation: whole cluster all-alive ${settled} ms after the target was`);
    expect(settled).toBeDefined();
  });
});
