import { describe, expect, it } from "vitest";
import { mulberry32, Simulation } from "./simulation.js";
import { nodeIds } from "./test-support.js";

function fingerprint(seed: number): string {
  const sim = new Simulation({ seed, lossRate: 0.1 });
  const ids = nodeIds(6);
  sim.addCluster(ids);
  sim.runFor(20_000);
  sim.crash(ids[1] as string);
  sim.runFor(20_000);
  return JSON.stringify({ history: sim.history, network: sim.network });
}

describe("Simulation", () => {
  it("mulberry32 is deterministic and uniform enough", () => {
    const a = mulberry32(99);
    const b = mulberry32(99);
    const xs = Array.from({ length: 10_000 }, () => a());
    expect(xs.slice(0, 5)).toEqual(Array.from({ length: 5 }, () => b()));
    expect(xs.every((x) => x >= 0 && x < 1)).toBe(true);
    const mean = xs.reduce((s, x) => s + x, 0) / xs.length;
    expect(mean).toBeGreaterThan(0.48);
    expect(mean).toBeLessThan(0.52);
  });

  it("is exactly reproducible from its seed", () => {
    expect(fingerprint(5)).toBe(fingerprint(5));
    expect(fingerprint(5)).not.toBe(fingerprint(6));
  });

  it("blocks cut links and delivers again once healed", () => {
    const sim = new Simulation({ seed: 1 });
    sim.addCluster(["a", "b", "c"]);
    sim.cut("a", "b");
    sim.runFor(30_000);
    expect(sim.network.blocked).toBeGreaterThan(0);
    // a and b cannot talk, but c vouches for each through ping-req, so nobody is suspected for long.
    expect(sim.allRunningSee("a", (m) => m?.state !== "dead")).toBe(true);
    sim.heal();
    sim.runFor(30_000);
    expect(sim.allAlive()).toBe(true);
  });

  it("drops messages to a crashed node and restarts it with the persisted incarnation + 1", () => {
    const sim = new Simulation({ seed: 2 });
    sim.addCluster(["a", "b", "c"]);
    sim.runFor(5_000);
    sim.crash("c");
    expect(sim.isRunning("c")).toBe(false);
    expect(sim.runningIds()).toEqual(["a", "b"]);
    sim.runFor(3_000);
    expect(sim.network.blocked).toBeGreaterThan(0);
    const restarted = sim.restart("c", { seeds: [sim.addressOf("a")] });
    expect(restarted.self.incarnation).toBe(1);
    expect(() => sim.restart("c")).toThrow(/is running/);
    expect(() => sim.addNode("a")).toThrow(/already has a node/);
    expect(() => sim.node("zz")).toThrow(/no node "zz"/);
  });

  it("uses a custom latency function and advances the clock exactly", () => {
    const delays: number[] = [];
    const sim = new Simulation({
      seed: 3,
      latency: () => {
        delays.push(50);
        return 50;
      },
    });
    sim.addCluster(["a", "b"]);
    sim.runFor(2_500);
    expect(sim.now).toBe(2_500);
    expect(delays.length).toBe(sim.network.sent);
    expect(sim.runUntil(() => true, 1_000)).toBe(0);
    expect(sim.runUntil(() => false, 1_000)).toBeUndefined();
    expect(sim.now).toBe(3_500);
  });
});
