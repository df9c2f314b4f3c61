import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { covers } from "./clock.js";
import type { VersionVector } from "./clock.js";
import { encodeSiblingSet } from "./encoding.js";
import { InvalidVersionError } from "./errors.js";
import { emptySet, equalSets, isDeleted, liveValues, resolveLastWriteWins, sync, update } from "./siblings.js";
import type { SiblingSet } from "./siblings.js";
import { REPLICAS, expectedSiblingIds, historyArbitrary, simulate } from "./test-support/histories.js";

const text = (s: string): Uint8Array => new TextEncoder().encode(s);
const values = (set: SiblingSet): string[] => liveValues(set).map((v) => new TextDecoder().decode(v));
const NONE: VersionVector = new Map();
const params = { numRuns: 200, seed: 42 };

/** Sync laws are checked on states reachable by real histories: the only states replicas ever hold. */
const threeStates = historyArbitrary(30).chain((ops) => {
  const { history } = simulate(ops);
  const pick = fc.nat({ max: history.length - 1 }).map((i) => history[i] as SiblingSet);
  return fc.tuple(pick, pick, pick);
});

const sameBytes = (a: SiblingSet, b: SiblingSet): void => {
  expect(equalSets(a, b)).toBe(true);
  expect(encodeSiblingSet(a)).toEqual(encodeSiblingSet(b));
};

describe("update", () => {
  it("tags a first write with the coordinator's first dot", () => {
    const set = update(undefined, NONE, "a", text("v"), 10);
    expect(set.siblings).toEqual([{ dot: { node: "a", counter: 1 }, value: text("v"), timestamp: 10 }]);
    expect(set.clock).toEqual(new Map([["a", 1]]));
  });

  it("keeps both values when two clients write with the same stale context through one coordinator (no lost update)", () => {
    const initial = update(undefined, NONE, "a", text("v0"), 1);
    const read = initial.clock;
    const first = update(initial, read, "a", text("alice"), 2);
    const second = update(first, read, "a", text("bob"), 3);
    expect(values(second)).toEqual(["alice", "bob"]);
    expect(second.siblings.map((s) => s.dot)).toEqual([
      { node: "a", counter: 2 },
      { node: "a", counter: 3 },
    ]);
  });

  it("keeps both values when the two writes go through different coordinators and the replicas sync", () => {
    const initial = update(undefined, NONE, "a", text("v0"), 1);
    const onA = initial;
    const onB = sync(emptySet(), initial);
    const read = initial.clock;
    const a = update(onA, read, "a", text("alice"), 2);
    const b = update(onB, read, "b", text("bob"), 3);
    expect(values(sync(a, b))).toEqual(["alice", "bob"]);
    expect(values(sync(b, a))).toEqual(["alice", "bob"]);
  });

  it("replaces exactly the siblings that were read and keeps one written concurrently after the read", () => {
    let state = update(undefined, NONE, "a", text("x"), 1);
    state = update(state, NONE, "b", text("y"), 2); // a blind write: x and y are concurrent
    expect(values(state)).toEqual(["x", "y"]);
    const read = state.clock;
    state = update(state, NONE, "a", text("z"), 3); // written after the read, not seen by it
    state = update(state, read, "b", text("resolved"), 4);
    expect(values(state)).toEqual(["z", "resolved"]);
  });

  it("supersedes what the context covered with a tombstone", () => {
    const written = update(undefined, NONE, "a", text("v"), 1);
    const deleted = update(written, written.clock, "a", null, 2);
    expect(isDeleted(deleted)).toBe(true);
    expect(deleted.siblings).toEqual([{ dot: { node: "a", counter: 2 }, value: null, timestamp: 2 }]);
    expect(liveValues(deleted)).toEqual([]);
  });

  it("keeps a write that was concurrent with a delete as a sibling", () => {
    const written = update(undefined, NONE, "a", text("v"), 1);
    const read = written.clock;
    const concurrent = update(sync(emptySet(), written), read, "b", text("concurrent"), 2);
    const deleted = update(written, read, "a", null, 3);
    for (const merged of [sync(concurrent, deleted), sync(deleted, concurrent)]) {
      expect(values(merged)).toEqual(["concurrent"]);
      expect(isDeleted(merged)).toBe(false);
      expect(merged.siblings).toHaveLength(2);
    }
  });

  it("continues the coordinator's counter from the context when the context is ahead of the stored state", () => {
    const set = update(undefined, new Map([["a", 4]]), "a", text("v"), 1);
    expect(set.siblings[0]?.dot).toEqual({ node: "a", counter: 5 });
  });

  it("rejects an empty coordinator, a bad timestamp and counter overflow", () => {
    expect(() => update(undefined, NONE, "", text("v"), 1)).toThrow(InvalidVersionError);
    expect(() => update(undefined, NONE, "a", text("v"), -1)).toThrow(InvalidVersionError);
    expect(() => update(undefined, NONE, "a", text("v"), 1.5)).toThrow(InvalidVersionError);
    expect(() => update(undefined, new Map([["a", Number.MAX_SAFE_INTEGER]]), "a", text("v"), 1)).toThrow(/2\^53/);
  });
});

describe("sync", () => {
  it("never resurrects a value that a tombstone's context covered", () => {
    const written = update(undefined, NONE, "a", text("v"), 1);
    const stale = sync(emptySet(), written);
    const deleted = update(written, written.clock, "a", null, 2);
    for (const merged of [sync(stale, deleted), sync(deleted, stale), sync(sync(deleted, stale), stale)]) {
      expect(isDeleted(merged)).toBe(true);
      sameBytes(merged, deleted);
    }
  });

  it("has the empty set as identity", () => {
    fc.assert(
      fc.property(threeStates, ([a]) => {
        sameBytes(sync(a, emptySet()), a);
        sameBytes(sync(emptySet(), a), a);
      }),
      params,
    );
  });

  it("is commutative, associative and idempotent", () => {
    fc.assert(
      fc.property(threeStates, ([a, b, c]) => {
        sameBytes(sync(a, b), sync(b, a));
        sameBytes(sync(sync(a, b), c), sync(a, sync(b, c)));
        sameBytes(sync(a, a), a);
        sameBytes(sync(sync(a, b), b), sync(a, b));
      }),
      params,
    );
  });

  it("converges deterministically even when two sides disagree on a dot's content", () => {
    const clock = new Map([["a", 1]]);
    const x: SiblingSet = { clock, siblings: [{ dot: { node: "a", counter: 1 }, value: text("x"), timestamp: 5 }] };
    const y: SiblingSet = { clock, siblings: [{ dot: { node: "a", counter: 1 }, value: text("y"), timestamp: 5 }] };
    const z: SiblingSet = { clock, siblings: [{ dot: { node: "a", counter: 1 }, value: text("z"), timestamp: 4 }] };
    sameBytes(sync(x, y), sync(y, x));
    expect(values(sync(x, y))).toEqual(["y"]);
    expect(values(sync(z, x))).toEqual(["x"]);
    // The same value and timestamp under two content types (or one and none): still one winner.
    const typed = (contentType?: string): SiblingSet => ({
      clock,
      siblings: [{ dot: { node: "a", counter: 1 }, value: text("x"), timestamp: 5, ...(contentType ? { contentType } : {}) }],
    });
    const [plain, json, textual] = [typed(), typed("application/json"), typed("text/plain")];
    sameBytes(sync(json, textual), sync(textual, json));
    sameBytes(sync(plain, json), sync(json, plain));
    expect(sync(json, textual).siblings[0]!.contentType).toBe("text/plain");
    expect(sync(plain, json).siblings[0]!.contentType).toBe("application/json");
  });
});

describe("random histories across three replicas", () => {
  it("keep exactly the writes that no known write saw: none lost, none kept after being superseded", () => {
    fc.assert(
      fc.property(historyArbitrary(60), (ops) => {
        const sim = simulate(ops);
        REPLICAS.forEach((_, replica) => {
          const state = sim.states[replica] as SiblingSet;
          const actual = state.siblings.map((s) => s.timestamp);
          expect(actual.toSorted((x, y) => x - y)).toEqual(expectedSiblingIds(sim, replica));
          // The clock covers exactly the writes the replica knows of.
          for (const write of sim.writes) {
            expect(covers(state.clock, write.dot)).toBe(sim.known[replica]?.has(write.id));
          }
        });
      }),
      { numRuns: 300, seed: 1234 },
    );
  });

  it("converge to the same bytes on every replica after a full round of syncs, holding every write none saw", () => {
    fc.assert(
      fc.property(historyArbitrary(60), (ops) => {
        const sim = simulate(ops);
        const all = sim.states.reduce((acc, s) => sync(acc, s), emptySet());
        const converged = sim.states.map((s) => sync(s, all));
        for (const state of converged) sameBytes(state, all);
        const superseded = new Set(sim.writes.flatMap((w) => [...w.saw]));
        const survivors = sim.writes.filter((w) => !superseded.has(w.id)).map((w) => w.id);
        expect(all.siblings.map((s) => s.timestamp).toSorted((x, y) => x - y)).toEqual(survivors);
        // Bounded siblings: never more than the writes that are mutually concurrent.
        expect(all.siblings.length).toBeLessThanOrEqual(survivors.length);
      }),
      { numRuns: 200, seed: 99 },
    );
  });
});

describe("resolveLastWriteWins", () => {
  it("keeps the sibling with the greatest timestamp, then node, then counter, and keeps the clock", () => {
    let state = update(undefined, NONE, "a", text("old"), 5);
    state = update(state, NONE, "b", text("new"), 9);
    state = update(state, NONE, "c", text("older"), 1);
    const resolved = resolveLastWriteWins(state);
    expect(values(resolved)).toEqual(["new"]);
    expect(resolved.clock).toBe(state.clock);

    let tied = update(undefined, NONE, "b", text("b1"), 7);
    tied = update(tied, NONE, "a", text("a1"), 7);
    tied = update(tied, NONE, "b", text("b2"), 7);
    expect(values(resolveLastWriteWins(tied))).toEqual(["b2"]);
  });

  it("is not undone by syncing with a replica holding the discarded siblings", () => {
    let state = update(undefined, NONE, "a", text("x"), 1);
    state = update(state, NONE, "b", text("y"), 2);
    const resolved = resolveLastWriteWins(state);
    sameBytes(sync(resolved, state), resolved);
    sameBytes(sync(state, resolved), resolved);
  });
});

describe("liveValues, isDeleted, equalSets", () => {
  it("treat the empty set as deleted", () => {
    expect(isDeleted(emptySet())).toBe(true);
    expect(liveValues(emptySet())).toEqual([]);
  });

  it("tell sets apart by clock, dots, values, timestamps and content types", () => {
    const base = update(undefined, NONE, "a", text("v"), 1);
    expect(equalSets(base, update(undefined, NONE, "a", text("v"), 1))).toBe(true);
    expect(equalSets(base, update(undefined, NONE, "a", text("w"), 1))).toBe(false);
    expect(equalSets(base, update(undefined, NONE, "a", text("v"), 2))).toBe(false);
    expect(equalSets(base, update(undefined, NONE, "b", text("v"), 1))).toBe(false);
    expect(equalSets(base, update(undefined, NONE, "a", null, 1))).toBe(false);
    expect(equalSets(base, update(undefined, NONE, "a", text("v"), 1, "text/plain"))).toBe(false);
    expect(equalSets(update(undefined, NONE, "a", text("v"), 1, "text/plain"), update(undefined, NONE, "a", text("v"), 1, "text/plain"))).toBe(true);
    expect(equalSets(base, { clock: new Map([["a", 2]]), siblings: base.siblings })).toBe(false);
  });
});
