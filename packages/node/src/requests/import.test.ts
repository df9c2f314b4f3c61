// Coordinator.importRecord on the bench of fake replicas, and the bounds an imported record's
// clock must respect (import-checks.ts).
import { Code, ConnectError } from "@connectrpc/connect";
import { emptySet, type SiblingSet, sync, update } from "@dynamo-ts/vclock";
import { describe, expect, it } from "vitest";
import { CoordinatorBench, failure } from "../test-support/coordinator-bench.js";
import { checkImportedRecord, collidingVersion, MAX_IMPORT_CLOCK_ENTRIES, MAX_IMPORT_COUNTER } from "./import-checks.js";

const utf8 = new TextEncoder();
// The bench's fake clock starts here: imported timestamps are checked against it.
const NOW = 1_000_000;

function version(node: string, value: string | null, base: SiblingSet = emptySet(), context = base.clock): SiblingSet {
  return update(base, context, node, value === null ? null : utf8.encode(value), NOW);
}

describe("Coordinator.importRecord", () => {
  it("writes the record to every replica of the key, from a node outside its preference list too", async () => {
    const bench = new CoordinatorBench({ nodes: ["n1", "n2", "n3", "n4", "n5"], self: "n1" });
    const key = bench.keyWhere((p) => !p.includes("n1"));
    const record = sync(version("a1", "x"), version("a2", "y"));
    expect(await bench.coordinator.importRecord(key, record, bench.deadline())).toBe("imported");
    for (const node of bench.ring.preferenceList(key, 3)) expect(bench.valuesOn(node, key)).toEqual(["x", "y"]);
    expect(bench.valuesOn("n1", key)).toEqual([]);
    expect(bench.metrics.get("imports_applied")).toBe(1);
  });

  it("is idempotent: a record the replicas already hold is unchanged and writes nothing", async () => {
    const bench = new CoordinatorBench({ nodes: ["n1", "n2", "n3"], self: "n1" });
    const record = version("n2", "v");
    expect(await bench.coordinator.importRecord("k", record, bench.deadline())).toBe("imported");
    const writes = bench.writes.length;
    expect(await bench.coordinator.importRecord("k", record, bench.deadline())).toBe("unchanged");
    expect(bench.writes.length).toBe(writes);
    expect(bench.metrics.get("imports_unchanged")).toBe(1);
  });

  it("merges causally: an older record changes nothing, a concurrent one becomes a sibling, a tombstone deletes what it covers", async () => {
    const bench = new CoordinatorBench({ nodes: ["n1", "n2", "n3"], self: "n1" });
    const old = version("n1", "old");
    // "new" is written with old's clock as its context: it supersedes old.
    await bench.put("k", "new", { context: bench.coordinator.contextOf("k", old) });
    expect(await bench.coordinator.importRecord("k", old, bench.deadline())).toBe("unchanged");
    expect(await bench.coordinator.importRecord("k", version("x9", "other"), bench.deadline())).toBe("imported");
    expect(bench.valuesOn("n2", "k")).toEqual(["new", "other"]);
    const stored = bench.replica("n1").store.get("k")!;
    expect(await bench.coordinator.importRecord("k", version("x9", null, stored), bench.deadline())).toBe("imported");
    expect(bench.valuesOn("n3", "k")).toEqual([]);
  });

  it("refuses a record whose merge would pass --max-siblings, and counts it", async () => {
    const bench = new CoordinatorBench({ nodes: ["n1", "n2", "n3"], self: "n1" });
    let record = emptySet();
    for (let i = 0; i < 101; i++) record = sync(record, version(`w${i}`, `v${i}`));
    const err = await failure(bench.coordinator.importRecord("k", record, bench.deadline()));
    expect(err.code).toBe(Code.FailedPrecondition);
    expect(err.rawMessage).toMatch(/101 siblings, more than the limit of 100/);
    expect(bench.metrics.get("imports_refused_max_siblings")).toBe(1);
    expect(bench.writes).toHaveLength(0);
  });

  it("refuses a version that collides with a different one under the same dot", async () => {
    const bench = new CoordinatorBench({ nodes: ["n1", "n2", "n3"], self: "n1" });
    await bench.put("k", "here");
    const err = await failure(bench.coordinator.importRecord("k", version("n1", "there"), bench.deadline()));
    expect(err.code).toBe(Code.FailedPrecondition);
    expect(err.rawMessage).toMatch(/same id \(n1, 1\)/);
  });

  it("fails with Unavailable when the read quorum can't be met", async () => {
    const bench = new CoordinatorBench({ nodes: ["n1", "n2", "n3"], self: "n1" });
    bench.replica("n2").behaviour = "down";
    bench.replica("n3").behaviour = "down";
    const err = await failure(bench.coordinator.importRecord("k", version("n2", "v"), bench.deadline()));
    expect(err.code).toBe(Code.Unavailable);
  });

  it("refuses keys this cluster does not take", async () => {
    const bench = new CoordinatorBench({ nodes: ["n1", "n2", "n3"], self: "n1" });
    expect((await failure(bench.coordinator.importRecord("k".repeat(300), version("n2", "v"), bench.deadline()))).code).toBe(Code.InvalidArgument);
  });
});

describe("checkImportedRecord", () => {
  const bounds = { maxValueBytes: 16, now: NOW };
  const refused = (set: SiblingSet) => {
    try {
      checkImportedRecord(set, bounds);
    } catch (err) {
      expect(ConnectError.from(err).code).toBe(Code.InvalidArgument);
      return ConnectError.from(err).rawMessage;
    }
    return undefined;
  };

  it("takes what a cluster writes", () => {
    expect(refused(sync(version("n1", "a"), version("n2", null)))).toBeUndefined();
  });

  it("refuses counters at 2^48 and above, too many node ids, ids no node can have, future timestamps, large values, empty records", () => {
    const high = {
      clock: new Map([["n1", MAX_IMPORT_COUNTER]]),
      siblings: [{ dot: { node: "n1", counter: MAX_IMPORT_COUNTER }, value: utf8.encode("v"), timestamp: NOW }],
    };
    expect(refused(high)).toMatch(/counter 281474976710656 for n1, at or above 2\^48/);
    const wide = {
      clock: new Map(Array.from({ length: MAX_IMPORT_CLOCK_ENTRIES + 1 }, (_, i) => [`n${String(i).padStart(4, "0")}`, 1] as const)),
      siblings: [],
    };
    expect(refused({ ...wide, siblings: [{ dot: { node: "n0000", counter: 1 }, value: null, timestamp: NOW }] })).toMatch(/257 node ids/);
    expect(refused(version("bad id!", "v"))).toMatch(/not a node id/);
    expect(refused(update(emptySet(), new Map(), "n1", utf8.encode("v"), NOW + 2 * 24 * 3600 * 1000))).toMatch(/more than a day ahead/);
    expect(refused(version("n1", "x".repeat(17)))).toMatch(/holds 17 bytes, the value limit is 16/);
    expect(refused(emptySet())).toMatch(/no version/);
  });

  it("finds versions that share a dot but differ", () => {
    expect(collidingVersion(version("n1", "a"), version("n1", "b"))?.dot).toEqual({ node: "n1", counter: 1 });
    expect(collidingVersion(version("n1", "a"), version("n1", "a"))).toBeUndefined();
  });
});
