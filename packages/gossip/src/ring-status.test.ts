import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { ringSupersedes } from "./precedence.js";
import { Simulation, mulberry32 } from "./simulation.js";
import { Swim } from "./swim.js";
import { nodeIds } from "./test-support.js";
import { RING_STATUSES, type MemberUpdate, type RingStatus, type SenderInfo } from "./types.js";

const address = (id: string) => `${id}.test:7946`;
const sender = (id: string, ringStatus: RingStatus = "normal", ringVersion = 0): SenderInfo => ({
  id,
  address: address(id),
  incarnation: 0,
  ringStatus,
  ringVersion,
});
const claim = (id: string, ringStatus: RingStatus, ringVersion: number, state: MemberUpdate["state"] = "alive"): MemberUpdate => ({
  id,
  address: address(id),
  state,
  incarnation: 0,
  ringStatus,
  ringVersion,
});
const newSwim = (id: string, ringStatus?: RingStatus, ringVersion?: number) =>
  new Swim({ id, address: address(id), random: mulberry32(1), now: 0, ...(ringStatus ? { ringStatus } : {}), ...(ringVersion ? { ringVersion } : {}) });

describe("ring status precedence", () => {
  const versioned = fc.record({ ringStatus: fc.constantFrom(...RING_STATUSES), ringVersion: fc.nat(5) });

  it("is a strict total order with removed on top, so merging is keep-the-maximum", () => {
    fc.assert(
      fc.property(versioned, versioned, versioned, (a, b, c) => {
        const same = a.ringStatus === b.ringStatus && a.ringVersion === b.ringVersion;
        expect(ringSupersedes(a, a)).toBe(false);
        if (!same) expect(ringSupersedes(a, b)).toBe(!ringSupersedes(b, a));
        if (ringSupersedes(a, b) && ringSupersedes(b, c)) expect(ringSupersedes(a, c)).toBe(true);
        if (a.ringStatus === "removed" && b.ringStatus !== "removed") expect(ringSupersedes(a, b)).toBe(true);
      }),
      { seed: 5, numRuns: 500 },
    );
  });

  it("converges to the same view whatever order the claims arrive in", () => {
    const claims = fc.array(fc.record({ id: fc.constantFrom("b", "c"), ringStatus: fc.constantFrom(...RING_STATUSES), ringVersion: fc.nat(4) }), {
      maxLength: 25,
    });
    fc.assert(
      fc.property(claims, fc.nat(), (list, seed) => {
        const shuffled = [...list];
        const random = mulberry32(seed);
        shuffled.sort(() => random() - 0.5);
        const views = [list, shuffled].map((order) => {
          const swim = newSwim("a");
          for (const c of order) swim.receive(address("z"), { type: "ack", seq: 1, from: sender("z"), updates: [claim(c.id, c.ringStatus, c.ringVersion)] }, 0);
          return swim.members().map((m) => [m.id, m.ringStatus, m.ringVersion]);
        });
        expect(views[1]).toEqual(views[0]);
      }),
      { seed: 6, numRuns: 300 },
    );
  });
});

describe("Swim ring status", () => {
  it("starts with the persisted status and version; refuses invalid ones", () => {
    expect(newSwim("a", "joining", 3).self).toMatchObject({ ringStatus: "joining", ringVersion: 3 });
    expect(newSwim("a").self).toMatchObject({ ringStatus: "normal", ringVersion: 0 });
    expect(() => new Swim({ id: "a", address: "a", ringStatus: "gone" as RingStatus, random: Math.random, now: 0 })).toThrow(/ring status/);
    expect(() => new Swim({ id: "a", address: "a", ringVersion: -1, random: Math.random, now: 0 })).toThrow(/ring version/);
  });

  it("setRingStatus bumps the version, reports the change and travels in the sender info of every message", () => {
    const a = newSwim("a", "joining", 0);
    a.drainChanges();
    a.setRingStatus("normal", 10);
    expect(a.self).toMatchObject({ ringStatus: "normal", ringVersion: 1 });
    expect(a.drainChanges()).toEqual([{ member: a.self, previous: "alive", previousRingStatus: "joining" }]);
    const b = newSwim("b");
    const [ack] = a.receive(address("b"), { type: "ping", seq: 3, from: sender("b"), targetId: "a", updates: [] }, 20);
    b.receive(address("a"), ack!.message, 21);
    expect(b.member("a")).toMatchObject({ ringStatus: "normal", ringVersion: 1 });
    expect(() => a.setRingStatus("removed" as never, 30)).toThrow(/cannot set its own ring status/);
  });

  it("a member outbids a newer record of its own status (one from before a restart) with its current status", () => {
    const a = newSwim("a", "normal", 1);
    a.receive(address("z"), { type: "ack", seq: 1, from: sender("z"), updates: [claim("a", "leaving", 7)] }, 0);
    expect(a.self).toMatchObject({ ringStatus: "normal", ringVersion: 8 });
  });

  it("removeMember refuses self, unknown and live members, and marks a dead one removed", () => {
    const a = newSwim("a");
    a.receive(address("b"), { type: "ack", seq: 1, from: sender("b"), updates: [claim("c", "normal", 4, "dead")] }, 0);
    expect(a.removeMember("a", 1)).toMatch(/cannot remove itself/);
    expect(a.removeMember("x", 1)).toMatch(/no member/);
    expect(a.removeMember("b", 1)).toMatch(/b is alive: only a dead member can be removed/);
    expect(a.removeMember("c", 1)).toBeUndefined();
    expect(a.member("c")).toMatchObject({ ringStatus: "removed", ringVersion: 5 });
    // The removed member's own later claims, even at a higher version, do not undo it.
    a.receive(address("c"), { type: "ack", seq: 2, from: { ...sender("c", "normal", 99), incarnation: 9 }, updates: [] }, 2);
    expect(a.member("c")).toMatchObject({ state: "alive", incarnation: 9, ringStatus: "removed", ringVersion: 5 });
  });

  it("markLeaving makes a dead member leaving on its behalf, and the member outbids it when it comes back", () => {
    const a = newSwim("a");
    a.receive(address("b"), { type: "ack", seq: 1, from: sender("b"), updates: [claim("c", "normal", 4, "dead")] }, 0);
    expect(a.markLeaving("a", 1)).toMatch(/cannot remove itself/);
    expect(a.markLeaving("x", 1)).toMatch(/no member/);
    expect(a.markLeaving("b", 1)).toMatch(/b is alive: only a dead member can be removed/);
    a.drainChanges();
    expect(a.markLeaving("c", 1)).toBeUndefined();
    expect(a.member("c")).toMatchObject({ ringStatus: "leaving", ringVersion: 5 });
    expect(a.drainChanges()).toEqual([{ member: a.member("c"), previous: "dead", previousRingStatus: "normal" }]);
    expect(a.markLeaving("c", 2)).toBeUndefined(); // already leaving: nothing to do
    expect(a.member("c")?.ringVersion).toBe(5);
    // c comes back and, as the authority on its own status, outbids the claim.
    const c = newSwim("c", "normal", 4);
    c.receive(address("a"), { type: "ack", seq: 2, from: sender("a"), updates: [a.member("c")!] }, 3);
    expect(c.self).toMatchObject({ ringStatus: "normal", ringVersion: 6 });
    a.receive(address("c"), { type: "ack", seq: 3, from: { ...sender("c", "normal", 6), incarnation: 9 }, updates: [] }, 4);
    expect(a.member("c")).toMatchObject({ state: "alive", ringStatus: "normal", ringVersion: 6 });
    expect(a.removeMember("c", 5)).toMatch(/alive/);
  });

  it("a removed member that comes back learns it is removed and cannot change its status", () => {
    const sim = new Simulation({ seed: 21 });
    const ids = nodeIds(4);
    sim.addCluster(ids);
    const victim = ids[3]!;
    sim.crash(victim);
    const others = ids.slice(0, 3);
    expect(sim.runUntil(() => others.every((id) => sim.view(id, victim)?.state === "dead"), 60_000)).toBeDefined();
    expect(sim.node(ids[0]!).removeMember(victim, 0)).toBeUndefined();
    expect(sim.runUntil(() => others.every((id) => sim.view(id, victim)?.ringStatus === "removed"), 60_000)).toBeDefined();
    const back = sim.restart(victim, { incarnation: 5, seeds: [sim.addressOf(ids[0]!)] });
    expect(sim.runUntil(() => back.removed, 60_000)).toBeDefined();
    expect(() => back.setRingStatus("normal", 0)).toThrow(/was removed/);
    sim.runFor(20_000);
    for (const id of others) expect(sim.view(id, victim)?.ringStatus).toBe("removed");
  });

  it("a member's ring status changes reach every member, in order", () => {
    const sim = new Simulation({ seed: 22 });
    const ids = nodeIds(6);
    sim.addCluster(ids);
    const joiner = sim.node(ids[5]!);
    joiner.setRingStatus("leaving", 0);
    expect(sim.runUntil(() => sim.allRunningSee(ids[5]!, (m) => m?.ringStatus === "leaving"), 30_000)).toBeDefined();
    joiner.setRingStatus("left", 0);
    expect(sim.runUntil(() => sim.allRunningSee(ids[5]!, (m) => m?.ringStatus === "left" && m.ringVersion === 2), 30_000)).toBeDefined();
  });
});
