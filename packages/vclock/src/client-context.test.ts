import { decodeSiblingSet, encodeSiblingSet } from "./encoding.js";
import { liveValues, type SiblingSet, sync } from "./siblings.js";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  type CausalContext,
  contextAfterWrite,
  decodeClientContext,
  encodeClientContext,
  MAX_CONTEXT_DOTS,
  normalize,
  writeWithContext,
} from "./client-context.js";

const EMPTY: CausalContext = { clock: new Map(), dots: [] };
const bytes = (s: string) => new TextEncoder().encode(s);
const values = (set: SiblingSet) =>
  liveValues(set)
    .map((v) => new TextDecoder().decode(v))
    .sort();

describe("client causal context", () => {
  it("encodes a plain clock exactly like vclock's context", () => {
    const ctx = { clock: new Map([["a", 3]]), dots: [] };
    const decoded = decodeClientContext(encodeClientContext(ctx));
    expect([...decoded.clock]).toEqual([["a", 3]]);
    expect(decodeClientContext(new Uint8Array()).clock.size).toBe(0);
  });

  it("round-trips dots and folds those that extend the clock", () => {
    const ctx = normalize({
      clock: new Map([["a", 2]]),
      dots: [
        { node: "a", counter: 3 },
        { node: "a", counter: 5 },
        { node: "b", counter: 2 },
      ],
    });
    expect([...ctx.clock]).toEqual([["a", 3]]);
    expect(ctx.dots).toEqual([
      { node: "a", counter: 5 },
      { node: "b", counter: 2 },
    ]);
    const back = decodeClientContext(encodeClientContext(ctx));
    expect(back).toEqual(ctx);
  });

  it("caps the number of dots", () => {
    const dots = Array.from({ length: MAX_CONTEXT_DOTS + 10 }, (_, i) => ({ node: "z", counter: 2 * i + 3 }));
    expect(normalize({ clock: new Map(), dots }).dots).toHaveLength(MAX_CONTEXT_DOTS);
  });

  it("rejects malformed dotted contexts", () => {
    for (const bad of [
      [0xd1],
      [0xd1, 0x00, 0x00],
      [0xd1, 0x05],
      [0xd1, 0x00, 0x01, 0x01, 0x61, 0x00],
      [0xd1, 0x00, 0x01, 0x01, 0xff, 0x01],
      [0xd1, 0x00, 0x01, 0x01, 0x61, 0x01, 0x00],
    ]) {
      expect(() => decodeClientContext(Uint8Array.from(bad)), JSON.stringify(bad)).toThrow();
    }
  });

  it("a put's returned context replaces only that put, never a concurrent write through the same coordinator", () => {
    let stored: SiblingSet | undefined = writeWithContext(undefined, EMPTY, "a", bytes("0"), 1);
    const base = contextAfterWrite(EMPTY, stored, "a");
    stored = writeWithContext(stored, base, "a", bytes("mine"), 2);
    const mine = contextAfterWrite(base, stored, "a");
    stored = writeWithContext(stored, base, "a", bytes("theirs"), 3);
    expect(values(stored)).toEqual(["mine", "theirs"]);
    stored = writeWithContext(stored, mine, "a", bytes("mine-2"), 4);
    expect(values(stored)).toEqual(["mine-2", "theirs"]);
  });

  it("never loses a write no context saw (property: random clients, coordinators, syncs)", () => {
    const op = fc.record({ client: fc.integer({ min: 0, max: 2 }), node: fc.constantFrom("a", "b", "c"), kind: fc.constantFrom("read", "write", "sync") });
    fc.assert(
      fc.property(fc.array(op, { minLength: 1, maxLength: 40 }), (ops) => {
        const replicas = new Map<string, SiblingSet | undefined>([
          ["a", undefined],
          ["b", undefined],
          ["c", undefined],
        ]);
        // Per client: its context and the values it has seen (what its context may replace).
        const clients = [0, 1, 2].map(() => ({ ctx: EMPTY, seen: new Set<string>() }));
        const written = new Set<string>();
        const superseded = new Set<string>();
        let counter = 0;
        for (const { client, node, kind } of ops) {
          const c = clients[client]!;
          const state = replicas.get(node);
          if (kind === "read") {
            if (state) {
              c.ctx = { clock: state.clock, dots: [] };
              c.seen = new Set(values(state));
            }
          } else if (kind === "write") {
            const value = `v${counter++}`;
            for (const v of c.seen) superseded.add(v);
            const next = writeWithContext(state, c.ctx, node, bytes(value), counter);
            replicas.set(node, decodeSiblingSet(encodeSiblingSet(next)));
            written.add(value);
            c.ctx = contextAfterWrite(c.ctx, next, node);
            c.seen = new Set([...c.seen, value]);
          } else {
            const other = node === "a" ? "b" : node === "b" ? "c" : "a";
            const merged = sync(state ?? { clock: new Map(), siblings: [] }, replicas.get(other) ?? { clock: new Map(), siblings: [] });
            replicas.set(node, merged);
            replicas.set(other, merged);
          }
        }
        let all: SiblingSet = { clock: new Map(), siblings: [] };
        for (const s of replicas.values()) if (s) all = sync(all, s);
        const live = new Set(values(all));
        for (const v of written) {
          if (!superseded.has(v)) expect(live.has(v), `${v} was lost`).toBe(true);
        }
      }),
      { seed: 7, numRuns: 300 },
    );
  });
});
