import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { Ring, RingError, TOKEN_SPACE, hashKey, rangeContains, rangeSize, type NodeId, type TokenRange } from "./index.js";

// ---------- a deliberately naive model of the placement rules, used as an oracle ----------

interface ModelVnode {
  token: number;
  node: NodeId;
  index: number;
}

function modelVnodes(nodes: readonly NodeId[], vnodes: number): ModelVnode[] {
  const all: ModelVnode[] = [];
  for (const node of new Set(nodes)) {
    for (let index = 0; index < vnodes; index++) all.push({ token: hashKey(`${node}#${index}`), node, index });
  }
  return all.sort((a, b) => a.token - b.token || (a.node < b.node ? -1 : a.node > b.node ? 1 : 0) || a.index - b.index);
}

function modelPreferenceList(vnodes: ModelVnode[], token: number, n: number): NodeId[] {
  const first = vnodes.findIndex((vnode) => vnode.token >= token);
  const start = first === -1 ? 0 : first;
  const result: NodeId[] = [];
  for (let step = 0; step < vnodes.length && result.length < n; step++) {
    const node = vnodes[(start + step) % vnodes.length]!.node;
    if (!result.includes(node)) result.push(node);
  }
  return result;
}

// ---------- arbitraries and helpers ----------

const nodeId = fc.string({ minLength: 1, maxLength: 6 });
const nodeSet = (minLength = 1, maxLength = 8) => fc.uniqueArray(nodeId, { minLength, maxLength });
const smallVnodes = fc.integer({ min: 1, max: 24 });
const token = fc.integer({ min: 0, max: TOKEN_SPACE - 1 });
const replicaCount = fc.integer({ min: 1, max: 5 });
const keys = (count: number, prefix = "key") => Array.from({ length: count }, (_, i) => `${prefix}:${i}`);
const names = (count: number) => Array.from({ length: count }, (_, i) => `node-${i + 1}`);

// Two node ids whose vnode 0 tokens collide (found by search; asserted below).
const COLLIDING_A = "n100940";
const COLLIDING_B = "n16724";

function segmentContaining(segments: TokenRange[], t: number): TokenRange[] {
  return segments.filter((segment) => rangeContains(segment, t));
}

// ---------- tests ----------

describe("Ring construction", () => {
  it("sorts and de-duplicates node ids and defaults to 256 vnodes", () => {
    const ring = new Ring(["c", "a", "b", "a"]);
    expect(ring.nodes).toEqual(["a", "b", "c"]);
    expect(ring.vnodes).toBe(256);
    expect(ring.segments()).toHaveLength(3 * 256);
  });

  it("rejects empty or non-string node ids", () => {
    expect(() => new Ring(["a", ""])).toThrow(RingError);
    expect(() => new Ring(["a", 7 as unknown as string])).toThrow(/node id must be a non-empty string/);
  });

  it.each([0, 4097, 1.5, Number.NaN, -3])("rejects vnodes = %s", (vnodes) => {
    expect(() => new Ring(["a"], { vnodes })).toThrow(/vnodes must be an integer in 1\.\.4096/);
  });

  it("accepts the vnode bounds 1 and 4096", () => {
    expect(new Ring(["a", "b"], { vnodes: 1 }).segments()).toHaveLength(2);
    expect(new Ring(["a"], { vnodes: 4096 }).vnodes).toBe(4096);
  });

  it("rejects replica counts and tokens that are out of range", () => {
    const ring = new Ring(["a", "b"], { vnodes: 4 });
    expect(() => ring.preferenceList("k", 0)).toThrow(RingError);
    expect(() => ring.preferenceList("k", 1.5)).toThrow(RingError);
    expect(() => ring.preferenceListForToken(-1, 2)).toThrow(RingError);
    expect(() => ring.preferenceListForToken(TOKEN_SPACE, 2)).toThrow(RingError);
    expect(() => ring.sloppyPreferenceList("k", 0, () => true)).toThrow(RingError);
    expect(() => ring.replicasOf({ start: 0, end: -2 }, 1)).toThrow(RingError);
  });

  it("is usable when empty: no nodes, no segments, no replicas", () => {
    const ring = new Ring([]);
    expect(ring.nodes).toEqual([]);
    expect(ring.preferenceList("k", 3)).toEqual([]);
    expect(ring.sloppyPreferenceList("k", 3, () => true)).toEqual([]);
    expect(ring.segments()).toEqual([]);
    expect(ring.ownership().size).toBe(0);
    expect(ring.withNode("a").nodes).toEqual(["a"]);
  });

  it("is independent of the order and repetition of the given nodes", () => {
    fc.assert(
      fc.property(nodeSet(1, 7), smallVnodes, fc.array(token, { minLength: 1, maxLength: 20 }), (nodes, vnodes, tokens) => {
        const reordered = [...nodes].reverse().concat(nodes.slice(0, 2));
        const a = new Ring(nodes, { vnodes });
        const b = new Ring(reordered, { vnodes });
        expect(b.nodes).toEqual(a.nodes);
        expect(b.segments()).toEqual(a.segments());
        for (const t of tokens) expect(b.preferenceListForToken(t, 3)).toEqual(a.preferenceListForToken(t, 3));
      }),
      { numRuns: 100, seed: 3 },
    );
  });

  it("builds a 10-node ring with the default vnodes and agrees with the model on it", () => {
    const nodes = names(10);
    const ring = new Ring(nodes);
    const model = modelVnodes(nodes, 256);
    for (const key of keys(300)) {
      expect(ring.preferenceList(key, 3)).toEqual(modelPreferenceList(model, hashKey(key), 3));
    }
  });
});

describe("preference lists", () => {
  it("match the naive model: first min(n, nodes) distinct nodes clockwise from the key's token", () => {
    fc.assert(
      fc.property(nodeSet(), smallVnodes, fc.array(token, { minLength: 1, maxLength: 15 }), replicaCount, (nodes, vnodes, tokens, n) => {
        const ring = new Ring(nodes, { vnodes });
        const model = modelVnodes(nodes, vnodes);
        for (const t of [...tokens, 0, TOKEN_SPACE - 1, ...model.slice(0, 3).map((v) => v.token)]) {
          const list = ring.preferenceListForToken(t, n);
          expect(list).toEqual(modelPreferenceList(model, t, n));
          expect(list).toHaveLength(Math.min(n, ring.nodes.length));
          expect(new Set(list).size).toBe(list.length);
        }
      }),
      { numRuns: 150, seed: 4 },
    );
  });

  it("start with the primary owner: the owner of the segment holding the key's token", () => {
    const ring = new Ring(names(5), { vnodes: 32 });
    const segments = ring.segments();
    for (const key of keys(200)) {
      const [segment, ...others] = segmentContaining(segments, hashKey(key));
      expect(others).toEqual([]);
      expect(ring.preferenceList(key, 3)[0]).toBe(ring.replicasOf(segment!, 1)[0]);
      expect(ring.preferenceList(key, 3)).toEqual(ring.replicasOf(segment!, 3));
    }
  });

  it("accept a key as bytes, placing it like the equivalent string", () => {
    const ring = new Ring(names(4), { vnodes: 16 });
    expect(ring.preferenceList(new TextEncoder().encode("ключ"), 3)).toEqual(ring.preferenceList("ключ", 3));
  });

  it("break equal vnode tokens by node id, then vnode index", () => {
    expect(hashKey(`${COLLIDING_A}#0`)).toBe(hashKey(`${COLLIDING_B}#0`));
    expect(COLLIDING_A < COLLIDING_B).toBe(true);
    const collisionToken = hashKey(`${COLLIDING_A}#0`);
    for (const order of [
      [COLLIDING_A, COLLIDING_B],
      [COLLIDING_B, COLLIDING_A],
    ]) {
      const ring = new Ring(order, { vnodes: 1 });
      // One distinct token: a single segment spanning the whole ring, owned by the lower node id.
      expect(ring.segments()).toEqual([{ start: collisionToken, end: collisionToken }]);
      expect(ring.preferenceList("anything", 2)).toEqual([COLLIDING_A, COLLIDING_B]);
      expect(ring.ownership()).toEqual(
        new Map([
          [COLLIDING_A, 1],
          [COLLIDING_B, 0],
        ]),
      );
    }
  });
});

describe("minimal movement", () => {
  it("adding a node only moves keys to it, and replica sets change only by taking it in", () => {
    fc.assert(
      fc.property(nodeSet(1, 6), nodeId, smallVnodes, replicaCount, (nodes, added, vnodes, n) => {
        fc.pre(!nodes.includes(added));
        const before = new Ring(nodes, { vnodes });
        const after = before.withNode(added);
        for (const key of keys(60)) {
          const oldList = before.preferenceList(key, n);
          const newList = after.preferenceList(key, n);
          expect([oldList[0], added]).toContain(newList[0]);
          for (const node of newList) expect([...oldList, added]).toContain(node);
        }
      }),
      { numRuns: 100, seed: 5 },
    );
  });

  it("removing a node only moves the keys it owned", () => {
    fc.assert(
      fc.property(nodeSet(2, 7), fc.nat(), smallVnodes, (nodes, pick, vnodes) => {
        const removed = nodes[pick % nodes.length]!;
        const before = new Ring(nodes, { vnodes });
        const after = before.withoutNode(removed);
        for (const key of keys(60)) {
          const oldPrimary = before.preferenceList(key, 1)[0];
          const newPrimary = after.preferenceList(key, 1)[0];
          if (oldPrimary !== removed) expect(newPrimary).toBe(oldPrimary);
          else expect(newPrimary).not.toBe(removed);
        }
      }),
      { numRuns: 100, seed: 6 },
    );
  });

  it.each([3, 5, 10])("moves about 1/(k+1) of the keys when a node joins %i nodes, and the same back when it leaves", (k) => {
    const before = new Ring(names(k));
    const joiner = `node-${k + 1}`;
    const after = before.withNode(joiner);
    const sample = keys(20_000, "user");
    const moved = sample.filter((key) => before.preferenceList(key, 1)[0] !== after.preferenceList(key, 1)[0]);
    const fraction = moved.length / sample.length;
    // Every moved key moved to the joiner; the fraction is its ownership share (up to sampling
    // noise), which with 256 vnodes is within a few percent of the ideal 1/(k+1).
    expect(moved.every((key) => after.preferenceList(key, 1)[0] === joiner)).toBe(true);
    expect(Math.abs(fraction - after.ownership().get(joiner)!)).toBeLessThan(0.015);
    expect(Math.abs(fraction - 1 / (k + 1)) / (1 / (k + 1))).toBeLessThan(0.2);
    const back = after.withoutNode(joiner);
    expect(back.segments()).toEqual(before.segments());
  });
});

describe("sloppyPreferenceList", () => {
  const scenario = fc.record({
    nodes: nodeSet(1, 8),
    vnodes: smallVnodes,
    n: replicaCount,
    down: fc.array(fc.boolean(), { minLength: 8, maxLength: 8 }),
    key: fc.string({ maxLength: 8 }),
  });

  it("uses only available nodes, keeps available preference nodes in place and takes fallbacks clockwise", () => {
    fc.assert(
      fc.property(scenario, ({ nodes, vnodes, n, down, key }) => {
        const ring = new Ring(nodes, { vnodes });
        const unavailable = new Set(ring.nodes.filter((_, i) => down[i]));
        const available = (node: NodeId) => !unavailable.has(node);
        const calls: NodeId[] = [];
        const placements = ring.sloppyPreferenceList(key, n, (node) => {
          calls.push(node);
          return available(node);
        });

        const preference = ring.preferenceList(key, n);
        const clockwise = ring.preferenceList(key, ring.nodes.length); // every node, clockwise order
        const expectedFallbacks = clockwise.slice(preference.length).filter(available);
        const expected = [];
        for (const node of preference) {
          if (available(node)) expected.push({ node });
          else if (expectedFallbacks.length > 0) expected.push({ node: expectedFallbacks.shift()!, standsInFor: node });
        }
        expect(placements).toEqual(expected);

        const used = placements.map((p) => p.node);
        expect(new Set(used).size).toBe(used.length);
        expect(used.every(available)).toBe(true);
        expect(placements).toHaveLength(Math.min(preference.length, ring.nodes.filter(available).length));
        for (const placement of placements) {
          if (placement.standsInFor === undefined) {
            expect(preference).toContain(placement.node);
          } else {
            expect(preference).not.toContain(placement.node);
            expect(preference).toContain(placement.standsInFor);
            expect(available(placement.standsInFor)).toBe(false);
          }
        }
        expect(new Set(calls).size).toBe(calls.length); // asked at most once per node
      }),
      { numRuns: 300, seed: 7 },
    );
  });

  it("equals the preference list when every node is available", () => {
    fc.assert(
      fc.property(scenario, ({ nodes, vnodes, n, key }) => {
        const ring = new Ring(nodes, { vnodes });
        const placements = ring.sloppyPreferenceList(key, n, () => true);
        expect(placements).toEqual(ring.preferenceList(key, n).map((node) => ({ node })));
        for (const placement of placements) expect(Object.hasOwn(placement, "standsInFor")).toBe(false);
      }),
      { numRuns: 100, seed: 8 },
    );
  });

  it("names the stand-ins in a concrete five-node cluster and returns fewer when too few are up", () => {
    const ring = new Ring(names(5), { vnodes: 64 });
    const [first, second, third] = ring.preferenceList("cart:42", 3) as [NodeId, NodeId, NodeId];
    const [fourth, fifth] = ring.preferenceList("cart:42", 5).slice(3) as [NodeId, NodeId];

    expect(ring.sloppyPreferenceList("cart:42", 3, (node) => node !== second)).toEqual([
      { node: first },
      { node: fourth, standsInFor: second },
      { node: third },
    ]);
    expect(ring.sloppyPreferenceList("cart:42", 3, (node) => node !== first && node !== fourth)).toEqual([
      { node: fifth, standsInFor: first },
      { node: second },
      { node: third },
    ]);
    // Only two nodes up: two placements, never a down node.
    expect(ring.sloppyPreferenceList("cart:42", 3, (node) => node === third || node === fifth)).toEqual([{ node: fifth, standsInFor: first }, { node: third }]);
    expect(ring.sloppyPreferenceList("cart:42", 3, () => false)).toEqual([]);
  });
});

describe("segments, ranges and ownership", () => {
  it("segments are contiguous, in token order and cover every token exactly once", () => {
    fc.assert(
      fc.property(nodeSet(), smallVnodes, fc.array(token, { minLength: 1, maxLength: 20 }), (nodes, vnodes, tokens) => {
        const ring = new Ring(nodes, { vnodes });
        const segments = ring.segments();
        expect(segments.length).toBe(new Set(modelVnodes(nodes, vnodes).map((v) => v.token)).size);
        for (let i = 0; i < segments.length; i++) {
          const previous = segments[(i + segments.length - 1) % segments.length]!;
          expect(segments[i]!.start).toBe(previous.end);
          if (i > 0) expect(segments[i]!.end).toBeGreaterThan(previous.end);
        }
        expect(segments.reduce((sum, segment) => sum + rangeSize(segment), 0)).toBe(TOKEN_SPACE);
        for (const t of [...tokens, 0, TOKEN_SPACE - 1, ...segments.map((s) => s.end)]) {
          expect(segmentContaining(segments, t)).toHaveLength(1);
        }
      }),
      { numRuns: 150, seed: 9 },
    );
  });

  it("a one-vnode, one-node ring is a single whole-ring segment", () => {
    const ring = new Ring(["solo"], { vnodes: 1 });
    const t = hashKey("solo#0");
    expect(ring.segments()).toEqual([{ start: t, end: t }]);
  });

  it("ownership sums to 1, lists every node and predicts where sampled keys land", () => {
    fc.assert(
      fc.property(nodeSet(), smallVnodes, (nodes, vnodes) => {
        const ring = new Ring(nodes, { vnodes });
        const shares = ring.ownership();
        expect([...shares.keys()]).toEqual(ring.nodes);
        expect([...shares.values()].reduce((a, b) => a + b, 0)).toBeCloseTo(1, 12);
        for (const share of shares.values()) expect(share >= 0 && share <= 1).toBe(true);
      }),
      { numRuns: 150, seed: 11 },
    );
    const ring = new Ring(names(5));
    const sample = keys(20_000, "item");
    const counts = new Map<NodeId, number>();
    for (const key of sample) {
      const primary = ring.preferenceList(key, 1)[0]!;
      counts.set(primary, (counts.get(primary) ?? 0) + 1);
    }
    for (const [node, share] of ring.ownership()) {
      expect(Math.abs((counts.get(node) ?? 0) / sample.length - share)).toBeLessThan(0.015);
    }
  });
});

describe("withNode / withoutNode", () => {
  it("equal a freshly built ring, keep vnodes, and are idempotent", () => {
    const ring = new Ring(["a", "b"], { vnodes: 16 });
    const grown = ring.withNode("c");
    expect(grown.vnodes).toBe(16);
    expect(grown.segments()).toEqual(new Ring(["c", "b", "a"], { vnodes: 16 }).segments());
    expect(grown.withNode("c")).toBe(grown);
    expect(grown.withoutNode("c").segments()).toEqual(ring.segments());
    expect(ring.withoutNode("zed")).toBe(ring);
    expect(ring.nodes).toEqual(["a", "b"]); // unchanged
    expect(() => ring.withNode("")).toThrow(RingError);
    expect(ring.has("a") && !ring.has("c")).toBe(true);
  });
});
