import { Code, ConnectError } from "@connectrpc/connect";
import { decodeSiblingSet, encodeSiblingSet, type SiblingSet, sync } from "@dynamo-ts/vclock";
import { describe, expect, it } from "vitest";
import { type KeyRepairDeps, rebuildVersion, repairKey } from "./key-repair.js";

const value = (s: string) => new TextEncoder().encode(s);
const damaged: SiblingSet = {
  clock: new Map([
    ["a", Number.MAX_SAFE_INTEGER],
    ["forged-1", 5],
    ["forged-2", 9],
  ]),
  siblings: [
    { dot: { node: "a", counter: Number.MAX_SAFE_INTEGER }, value: value("x"), timestamp: 20 },
    { dot: { node: "forged-2", counter: 9 }, value: value("y"), timestamp: 10 },
  ],
};

/** Replicas in memory; `interfere` runs once before the first reset (a concurrent write). */
function replicas(states: Record<string, SiblingSet | undefined>, interfere?: () => void): KeyRepairDeps & { states: typeof states } {
  let interfered = false;
  return {
    states,
    nodeId: "a",
    preferenceList: () => Object.keys(states),
    read: async (node) => states[node],
    reset: async (node, _key, expected, record) => {
      if (!interfered && interfere) {
        interfered = true;
        interfere();
      }
      const current = states[node];
      const holds = current === undefined ? expected.byteLength === 0 : Buffer.from(encodeSiblingSet(current)).equals(expected);
      if (holds) states[node] = decodeSiblingSet(record);
      return holds;
    },
  };
}

describe("key repair", () => {
  it("keeps the sibling values under fresh dots of one node, in timestamp order", () => {
    const rebuilt = rebuildVersion(damaged, "a");
    expect([...rebuilt.clock]).toEqual([["a", 2]]);
    expect(rebuilt.siblings.map((s) => [s.dot.counter, new TextDecoder().decode(s.value!), s.timestamp])).toEqual([
      [1, "y", 10],
      [2, "x", 20],
    ]);
    // Copies of one write (same value and time) seen twice are kept once.
    const twice = sync(rebuilt, damaged);
    expect(rebuildVersion(twice, "a").siblings).toHaveLength(2);
  });

  it("keeps content types, and tells apart two writes that differ only in content type", () => {
    const typed: SiblingSet = {
      clock: new Map([["forged", 3]]),
      siblings: [
        { dot: { node: "forged", counter: 1 }, value: value("v"), timestamp: 10, contentType: "text/plain" },
        { dot: { node: "forged", counter: 2 }, value: value("v"), timestamp: 10 },
        { dot: { node: "forged", counter: 3 }, value: value("v"), timestamp: 10, contentType: "text/plain" },
      ],
    };
    const rebuilt = rebuildVersion(typed, "a");
    expect(rebuilt.siblings.map((s) => s.contentType)).toEqual(["text/plain", undefined]);
    expect("contentType" in rebuilt.siblings[1]!).toBe(false);
    expect(decodeSiblingSet(encodeSiblingSet(rebuilt)).siblings.map((s) => s.contentType)).toEqual(["text/plain", undefined]);
  });

  it("replaces the state on every replica, including one that lacked the key", async () => {
    const deps = replicas({ a: damaged, b: damaged, c: undefined });
    const result = await repairKey(deps, "k", new AbortController().signal);
    expect(result).toMatchObject({ replicas: ["a", "b", "c"], siblings: 2, clockEntriesBefore: 3, highestCounterBefore: Number.MAX_SAFE_INTEGER, attempts: 1 });
    for (const node of ["a", "b", "c"]) expect([...deps.states[node]!.clock]).toEqual([["a", 2]]);
  });

  it("starts over when a replica changed between the read and the reset, and loses nothing", async () => {
    const extra: SiblingSet = { clock: new Map([["b", 1]]), siblings: [{ dot: { node: "b", counter: 1 }, value: value("late"), timestamp: 30 }] };
    const deps = replicas({ a: damaged, b: damaged, c: damaged }, () => (deps.states.c = sync(deps.states.c!, extra)));
    const result = await repairKey(deps, "k", new AbortController().signal);
    expect(result.attempts).toBe(2);
    for (const node of ["a", "b", "c"]) expect(deps.states[node]!.siblings.map((s) => new TextDecoder().decode(s.value!)).sort()).toEqual(["late", "x", "y"]);
  });

  it("needs every replica to answer, and the key to exist", async () => {
    const down = replicas({ a: damaged, b: damaged });
    down.read = async (node) => {
      if (node === "b") throw new ConnectError("down", Code.Unavailable);
      return damaged;
    };
    await expect(repairKey(down, "k", new AbortController().signal)).rejects.toMatchObject({ code: Code.Unavailable });
    await expect(repairKey(replicas({ a: undefined }), "k", new AbortController().signal)).rejects.toMatchObject({ code: Code.NotFound });
  });
});
