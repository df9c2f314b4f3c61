import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { GossipConfigError } from "./errors.js";
import { supersedes } from "./precedence.js";
import { mulberry32 } from "./simulation.js";
import { Swim } from "./swim.js";
import type { GossipMessage, MemberState, MemberUpdate, Outgoing, SenderInfo } from "./types.js";

const address = (id: string) => `${id}.test:7946`;

function makeSwim(id = "a", options: { incarnation?: number; seed?: number; config?: Record<string, number> } = {}): Swim {
  return new Swim({
    id,
    address: address(id),
    random: mulberry32(options.seed ?? 1),
    now: 0,
    ...(options.incarnation !== undefined ? { incarnation: options.incarnation } : {}),
    ...(options.config !== undefined ? { config: options.config } : {}),
  });
}

function info(id: string, incarnation = 0): SenderInfo {
  return { id, address: address(id), incarnation, ringStatus: "normal", ringVersion: 0 };
}

function update(id: string, state: MemberState, incarnation: number): MemberUpdate {
  return { id, address: address(id), state, incarnation, ringStatus: "normal", ringVersion: 0 };
}

/** Teaches `swim` about `ids` (alive at incarnation 0) through a sync-response from the first one. */
function withPeers(swim: Swim, ids: readonly string[], now = 0): void {
  const [first] = ids;
  if (first === undefined) return;
  swim.receive(address(first), { type: "sync-response", seq: 0, from: info(first), updates: ids.map((id) => update(id, "alive", 0)) }, now);
  swim.drainChanges();
}

/** Calls tick once, at the next deadline. */
function tickOnce(swim: Swim): { at: number; out: Outgoing }[] {
  const at = swim.nextDeadline();
  return swim.tick(at).map((out) => ({ at, out }));
}

/** Calls tick at successive deadlines up to `until`, collecting everything sent. */
function tickUntil(swim: Swim, until: number): { at: number; out: Outgoing }[] {
  const sent: { at: number; out: Outgoing }[] = [];
  for (let guard = 0; guard < 10_000; guard++) {
    const at = swim.nextDeadline();
    if (at > until) return sent;
    for (const out of swim.tick(at)) sent.push({ at, out });
  }
  throw new Error("tickUntil did not finish");
}

/** Ticks up to `until`, with every member except `unreachable` answering its pings at once. */
function answerPingsUntil(swim: Swim, until: number, unreachable: string): void {
  for (let guard = 0; guard < 10_000; guard++) {
    const at = swim.nextDeadline();
    if (at > until) return;
    for (const out of swim.tick(at)) {
      if (out.message.type === "ping" && out.message.targetId !== unreachable) {
        swim.receive(out.to, { type: "ack", seq: out.message.seq, from: info(out.message.targetId), updates: [] }, at);
      }
    }
  }
}

function ofType<T extends GossipMessage["type"]>(sent: { out: Outgoing }[], type: T): (Outgoing & { message: Extract<GossipMessage, { type: T }> })[] {
  return sent.map((s) => s.out).filter((o) => o.message.type === type) as (Outgoing & {
    message: Extract<GossipMessage, { type: T }>;
  })[];
}

describe("Swim construction", () => {
  it("starts alive with the given incarnation and reports itself as a change", () => {
    const swim = makeSwim("a", { incarnation: 4 });
    expect(swim.self).toEqual({
      id: "a",
      address: address("a"),
      state: "alive",
      incarnation: 4,
      ringStatus: "normal",
      ringVersion: 0,
      lastHeardAt: undefined,
      stateChangedAt: 0,
    });
    expect(swim.drainChanges()).toEqual([{ member: swim.self, previous: undefined, previousRingStatus: undefined }]);
    expect(swim.drainChanges()).toEqual([]);
  });

  it("rejects bad options with GossipConfigError", () => {
    const random = mulberry32(1);
    expect(() => new Swim({ id: "", address: "x", random, now: 0 })).toThrow(/member id must not be empty/);
    expect(() => new Swim({ id: "a", address: "x", incarnation: -1, random, now: 0 })).toThrow(GossipConfigError);
    expect(() => new Swim({ id: "a", address: "x", random, now: 0, config: { pingTimeoutMs: 2000 } })).toThrow(/pingTimeoutMs/);
    expect(() => makeSwim("a").join(["ok:1", ""], 0)).toThrow(/seed address must not be empty/);
  });
});

describe("Swim receive", () => {
  it("answers a ping with an ack of the same seq, to the sender's advertised address", () => {
    const swim = makeSwim("a");
    const out = swim.receive("10.9.9.9:55555", { type: "ping", seq: 42, from: info("b", 3), targetId: "a", updates: [] }, 100);
    expect(out).toHaveLength(1);
    expect(out[0]?.to).toBe(address("b"));
    expect(out[0]?.message).toMatchObject({ type: "ack", seq: 42, from: info("a", 0) });
    // The sender is now known, alive, heard from directly.
    expect(swim.member("b")).toMatchObject({ state: "alive", incarnation: 3, lastHeardAt: 100, stateChangedAt: 100 });
  });

  it("does not ack a ping addressed to another id at its address", () => {
    const swim = makeSwim("a");
    expect(swim.receive(address("b"), { type: "ping", seq: 1, from: info("b"), targetId: "old-a", updates: [] }, 0)).toEqual([]);
  });

  it("ignores malformed messages and messages from its own id, without throwing", () => {
    const swim = makeSwim("a");
    fc.assert(
      fc.property(fc.anything(), (junk) => {
        expect(swim.receive("x", junk as GossipMessage, 0)).toEqual([]);
      }),
      { numRuns: 300 },
    );
    const bad = { type: "ack", seq: 1, from: info("b"), updates: [{ id: "c", address: "c", state: "zombie", incarnation: 0 }] };
    expect(swim.receive("x", bad as unknown as GossipMessage, 0)).toEqual([]);
    expect(swim.receive("x", { type: "ping", seq: 1, from: info("a", 9), targetId: "a", updates: [] }, 0)).toEqual([]);
    expect(swim.members().map((m) => m.id)).toEqual(["a"]);
    expect(swim.stats().messagesIgnored).toBeGreaterThanOrEqual(302);
  });

  it("relays a ping-req: pings the target with its own seq and relays the ack with the requester's seq", () => {
    const swim = makeSwim("helper");
    const [ping] = swim.receive(address("req"), { type: "ping-req", seq: 77, from: info("req"), target: { id: "t", address: address("t") }, updates: [] }, 0);
    expect(ping?.to).toBe(address("t"));
    expect(ping?.message.type).toBe("ping");
    const relayed = swim.receive(address("t"), { type: "ack", seq: ping?.message.seq ?? -1, from: info("t"), updates: [] }, 10);
    expect(relayed).toHaveLength(1);
    expect(relayed[0]?.to).toBe(address("req"));
    expect(relayed[0]?.message).toMatchObject({ type: "ack", seq: 77, from: info("helper") });
    // A second (duplicate) ack is not relayed again.
    expect(swim.receive(address("t"), { type: "ack", seq: ping?.message.seq ?? -1, from: info("t"), updates: [] }, 11)).toEqual([]);
  });

  it("answers a sync-request with its full state and merges the requester's", () => {
    const swim = makeSwim("a");
    withPeers(swim, ["b", "c"]);
    const out = swim.receive(address("d"), { type: "sync-request", seq: 5, from: info("d"), updates: [update("d", "alive", 0), update("e", "alive", 2)] }, 0);
    expect(out[0]?.to).toBe(address("d"));
    expect(out[0]?.message.type).toBe("sync-response");
    expect(out[0]?.message.seq).toBe(5);
    expect(out[0]?.message.updates.map((u) => u.id).sort()).toEqual(["a", "b", "c", "d", "e"]);
  });
});

describe("Swim failure detection", () => {
  it("pings, asks k helpers after pingTimeout, suspects at the period's end and declares dead after the suspicion timeout", () => {
    const swim = makeSwim("a");
    withPeers(swim, ["b", "c", "d", "e", "f"]);
    // First probe starts within the first period.
    const first = tickOnce(swim);
    const [ping] = ofType(first, "ping");
    expect(ping).toBeDefined();
    const target = ping?.message.targetId as string;
    const startedAt = first[0]?.at as number;

    const indirect = tickUntil(swim, startedAt + 300);
    const pingReqs = ofType(indirect, "ping-req");
    expect(pingReqs).toHaveLength(3);
    expect(new Set(pingReqs.map((o) => o.to)).size).toBe(3);
    expect(pingReqs.every((o) => o.to !== address(target) && o.message.target.id === target)).toBe(true);
    expect(pingReqs.every((o) => o.message.seq === ping?.message.seq)).toBe(true);
    expect(swim.member(target)?.state).toBe("alive");

    answerPingsUntil(swim, startedAt + 1000, target);
    expect(swim.member(target)).toMatchObject({ state: "suspect", incarnation: 0, stateChangedAt: startedAt + 1000 });
    expect(swim.drainChanges().find((c) => c.member.id === target)).toMatchObject({ previous: "alive", member: { state: "suspect" } });

    answerPingsUntil(swim, startedAt + 5999, target);
    expect(swim.member(target)?.state).toBe("suspect");
    answerPingsUntil(swim, startedAt + 6000, target);
    expect(swim.member(target)).toMatchObject({ state: "dead", stateChangedAt: startedAt + 6000 });
    expect(swim.stats()).toMatchObject({ suspicionsRaised: 1, deathsDeclared: 1 });
    expect(["b", "c", "d", "e", "f"].filter((id) => swim.member(id)?.state !== "alive")).toEqual([target]);
  });

  it("accepts an ack relayed by a helper (same seq) as proof of life", () => {
    const swim = makeSwim("a");
    withPeers(swim, ["b", "c", "d", "e"]);
    const [ping] = ofType(tickOnce(swim), "ping");
    const startedAt = swim.nextDeadline() - 300;
    const [pingReq] = ofType(tickUntil(swim, startedAt + 300), "ping-req");
    const helper = pingReq?.message ? pingReq.to : "";
    swim.receive(helper, { type: "ack", seq: ping?.message.seq ?? -1, from: info("c"), updates: [] }, startedAt + 500);
    tickUntil(swim, startedAt + 1000);
    expect(swim.member(ping?.message.targetId ?? "")?.state).toBe("alive");
  });

  it("probes every live member exactly once per round, in a shuffled order", () => {
    const swim = makeSwim("a", { seed: 3 });
    const peers = ["b", "c", "d", "e", "f", "g", "h"];
    withPeers(swim, peers);
    const orders: string[][] = [];
    for (let round = 0; round < 3; round++) {
      const targets: string[] = [];
      while (targets.length < peers.length) {
        const at = swim.nextDeadline();
        for (const out of swim.tick(at)) {
          if (out.message.type !== "ping") continue;
          targets.push(out.message.targetId);
          swim.receive(out.to, { type: "ack", seq: out.message.seq, from: info(out.message.targetId), updates: [] }, at + 1);
        }
      }
      expect([...targets].sort()).toEqual(peers);
      orders.push(targets);
    }
    expect(new Set(orders.map((o) => o.join())).size).toBeGreaterThan(1);
  });

  it("a late tick still runs the indirect phase before suspecting", () => {
    const swim = makeSwim("a");
    withPeers(swim, ["b", "c", "d", "e"]);
    const [ping] = ofType(tickOnce(swim), "ping");
    const target = ping?.message.targetId ?? "";
    // The process stalled for 5 s: the tick arrives far beyond the probe's deadline.
    const late = swim.tick(6000);
    expect(
      ofType(
        late.map((out) => ({ out })),
        "ping-req",
      ),
    ).toHaveLength(3);
    expect(swim.member(target)?.state).toBe("alive");
    expect(swim.nextDeadline()).toBeGreaterThan(6000);
  });
});

describe("Swim incarnations and precedence", () => {
  it("refutes a suspicion at its incarnation by gossiping alive at a higher one", () => {
    const swim = makeSwim("a", { incarnation: 2 });
    withPeers(swim, ["b"]);
    const out = swim.receive(address("b"), { type: "ping", seq: 1, from: info("b"), targetId: "a", updates: [update("a", "suspect", 2)] }, 0);
    expect(swim.self).toMatchObject({ state: "alive", incarnation: 3 });
    expect(swim.stats().refutations).toBe(1);
    expect(out[0]?.message.from.incarnation).toBe(3);
    expect(out[0]?.message.updates).toContainEqual(update("a", "alive", 3));
    // Being declared dead (or left) at an even higher incarnation is refuted the same way.
    swim.receive(address("b"), { type: "ack", seq: 1, from: info("b"), updates: [update("a", "dead", 7)] }, 0);
    expect(swim.self.incarnation).toBe(8);
    // Stale claims change nothing.
    swim.receive(address("b"), { type: "ack", seq: 1, from: info("b"), updates: [update("a", "suspect", 5), update("a", "alive", 8)] }, 0);
    expect(swim.self.incarnation).toBe(8);
    expect(swim.stats().refutations).toBe(2);
  });

  it("follows SWIM precedence for a peer", () => {
    const swim = makeSwim("a");
    const gossip = (...updates: MemberUpdate[]) => swim.receive(address("z"), { type: "ack", seq: 9, from: info("z"), updates }, 0);
    gossip(update("b", "alive", 1));
    gossip(update("b", "alive", 0)); // older alive: ignored
    expect(swim.member("b")).toMatchObject({ state: "alive", incarnation: 1 });
    gossip(update("b", "suspect", 1)); // suspect at same incarnation beats alive
    expect(swim.member("b")?.state).toBe("suspect");
    gossip(update("b", "alive", 1)); // alive at same incarnation does not refute
    expect(swim.member("b")?.state).toBe("suspect");
    gossip(update("b", "alive", 2)); // refutation
    expect(swim.member("b")).toMatchObject({ state: "alive", incarnation: 2 });
    gossip(update("b", "dead", 2));
    expect(swim.member("b")?.state).toBe("dead");
    gossip(update("b", "suspect", 2), update("b", "alive", 2));
    expect(swim.member("b")?.state).toBe("dead");
    gossip(update("b", "left", 2)); // administrative departure outranks dead
    expect(swim.member("b")?.state).toBe("left");
    gossip(update("b", "dead", 2), update("b", "alive", 2));
    expect(swim.member("b")?.state).toBe("left");
    gossip(update("b", "alive", 3)); // restart with a higher incarnation
    expect(swim.member("b")).toMatchObject({ state: "alive", incarnation: 3 });
  });

  it("supersedes is a strict total order on (incarnation, state)", () => {
    const versioned = fc.record({ state: fc.constantFrom<MemberState>("alive", "suspect", "dead", "left"), incarnation: fc.nat(5) });
    fc.assert(
      fc.property(versioned, versioned, versioned, (a, b, c) => {
        const same = a.state === b.state && a.incarnation === b.incarnation;
        expect(supersedes(a, a)).toBe(false);
        if (!same) expect(supersedes(a, b)).toBe(!supersedes(b, a));
        if (supersedes(a, b) && supersedes(b, c)) expect(supersedes(a, c)).toBe(true);
      }),
      { numRuns: 500 },
    );
  });

  it("converges to the same view whatever order gossip arrives in", () => {
    const state = fc.constantFrom<MemberState>("alive", "suspect", "dead", "left");
    const gossip = fc.array(fc.record({ id: fc.constantFrom("b", "c", "d"), state, incarnation: fc.nat(4) }), { maxLength: 30 });
    fc.assert(
      fc.property(gossip, fc.nat(), (updates, shuffleSeed) => {
        const shuffled = [...updates];
        const random = mulberry32(shuffleSeed);
        shuffled.sort(() => random() - 0.5);
        const views = [updates, shuffled].map((order) => {
          const swim = makeSwim("a");
          for (const u of order) {
            swim.receive(
              address("z"),
              { type: "ack", seq: 1, from: info("z", 0), updates: [{ ...u, address: address(u.id), ringStatus: "normal", ringVersion: 0 }] },
              0,
            );
          }
          return swim.members().map((m) => [m.id, m.state, m.incarnation]);
        });
        expect(views[1]).toEqual(views[0]);
      }),
      { numRuns: 300 },
    );
  });

  it("in a push-pull merge, treats a remote `dead` of a live member as `suspect` but learns unknown dead members as dead", () => {
    const swim = makeSwim("a");
    withPeers(swim, ["b"]);
    swim.receive(address("z"), { type: "sync-response", seq: 0, from: info("z"), updates: [update("b", "dead", 0), update("c", "dead", 4)] }, 0);
    expect(swim.member("b")?.state).toBe("suspect");
    expect(swim.member("c")).toMatchObject({ state: "dead", incarnation: 4 });
  });

  it("puts the recipient's own bad news first, so a wrongly suspected member hears it at once", () => {
    const swim = makeSwim("a", { config: { maxPiggyback: 2 } });
    withPeers(swim, ["b", "c", "d", "e"]);
    swim.receive(address("z"), { type: "ack", seq: 1, from: info("z"), updates: [update("d", "suspect", 0)] }, 0);
    const [ack] = swim.receive(address("d"), { type: "ping", seq: 3, from: info("d", 0), targetId: "a", updates: [] }, 0);
    expect(ack?.message.updates[0]).toEqual(update("d", "suspect", 0));
    expect(ack?.message.updates).toHaveLength(2);
  });

  it("retransmits each update at most retransmitMult * ceil(log2(n + 1)) times, at most maxPiggyback per message", () => {
    const swim = makeSwim("a", { config: { retransmitMult: 2, maxPiggyback: 3 } });
    withPeers(swim, ["b", "c", "d"]); // n = 4 live members: limit 2 * ceil(log2 5) = 6
    swim.receive(address("z"), { type: "ack", seq: 1, from: info("z"), updates: [update("q", "suspect", 3)] }, 0);
    let sentQ = 0;
    for (let i = 0; i < 40; i++) {
      const [ack] = swim.receive(address("b"), { type: "ping", seq: i, from: info("b"), targetId: "a", updates: [] }, 0);
      expect(ack?.message.updates.length).toBeLessThanOrEqual(3);
      if (ack?.message.updates.some((u) => u.id === "q")) sentQ++;
    }
    expect(sentQ).toBe(2 * Math.ceil(Math.log2(6)));
    expect(swim.stats().pendingBroadcasts).toBe(0);
  });
});

describe("Swim join and leave", () => {
  it("joins through seeds, ignoring its own address, and retries with backoff until a peer answers", () => {
    const swim = makeSwim("a");
    const first = swim.join([address("a"), "seed:1", "seed:1", "seed:2"], 0);
    expect(first.map((o) => [o.to, o.message.type])).toEqual([
      ["seed:1", "sync-request"],
      ["seed:2", "sync-request"],
    ]);
    const retries = ofType(tickUntil(swim, 8000), "sync-request").length;
    // Retries at +1 s, +3 s, +7 s (backoff 1, 2, 4 s); the regular push-pull adds at most one more.
    expect(retries).toBeGreaterThanOrEqual(6);
    expect(retries).toBeLessThanOrEqual(7);
    swim.receive(
      "seed:1",
      {
        type: "sync-response",
        seq: 0,
        from: { id: "s1", address: "seed:1", incarnation: 0, ringStatus: "normal", ringVersion: 0 },
        updates: [update("b", "alive", 0)],
      },
      8000,
    );
    expect(swim.members().map((m) => m.id)).toEqual(["a", "b", "s1"]);
    const later = tickUntil(swim, 30_000);
    expect(ofType(later, "sync-request").every((o) => o.to !== "seed:2")).toBe(true);
  });

  it("leaves with a higher incarnation, tells a few members, stops probing and keeps `left` over later claims", () => {
    const swim = makeSwim("a", { incarnation: 5 });
    withPeers(swim, ["b", "c", "d", "e"]);
    const out = swim.leave(100);
    expect(swim.self).toMatchObject({ state: "left", incarnation: 6, stateChangedAt: 100 });
    expect(out.length).toBeGreaterThanOrEqual(3);
    for (const o of out) expect(o.message.updates).toContainEqual(update("a", "left", 6));
    expect(swim.nextDeadline()).toBe(Number.POSITIVE_INFINITY);
    expect(swim.tick(10_000)).toEqual([]);
    expect(swim.leave(200)).toEqual([]);
    // Still answers pings, announcing that it left.
    const [ack] = swim.receive(address("b"), { type: "ping", seq: 1, from: info("b"), targetId: "a", updates: [update("a", "suspect", 9)] }, 300);
    expect(ack?.message.updates[0]).toEqual(update("a", "left", 10));
    expect(swim.self.state).toBe("left");
  });
});
