// The checker is the oracle of every fault suite, so it is tested on its own, without Docker:
// each case is a small history and the final state a correct (or broken) cluster would show.
import { describe, expect, it } from "vitest";
import { History, HistoryError, type FinalRead, type RecordedWrite } from "./checker.js";

let clock = 0;
function put(key: string, value: string, covers: string[] = [], acknowledged = true): RecordedWrite {
  clock += 2;
  return { kind: "put", key, value, covers, acknowledged, node: "node1", startedAt: clock - 1, endedAt: clock };
}
function del(key: string, covers: string[], acknowledged = true): RecordedWrite {
  clock += 2;
  return { kind: "delete", key, covers, acknowledged, node: "node2", startedAt: clock - 1, endedAt: clock };
}
function history(...writes: RecordedWrite[]): History {
  const h = new History();
  for (const w of writes) h.record(w);
  return h;
}
function reads(key: string, values: string[] | null, nodes = ["node1", "node2", "node3"]): FinalRead[] {
  return nodes.map((node) => ({ node, key, values }));
}
function kinds(h: History, finals: FinalRead[]): string[] {
  return h.check(finals).violations.map((v) => `${v.kind}:${v.value ?? v.key}`);
}

describe("History.check", () => {
  it("accepts acknowledged puts that are among the siblings", () => {
    const h = history(put("k", "a"), put("k", "b"));
    const report = h.check(reads("k", ["a", "b"]));
    expect(report.violations).toEqual([]);
    expect(report.summary).toBe("checked 2 operations, lost 0");
    expect(report.acknowledgedPuts).toBe(2);
  });

  it("reports an acknowledged put that vanished without being superseded", () => {
    const h = history(put("k", "a"), put("k", "b"));
    const report = h.check(reads("k", ["a"]));
    expect(report.lost).toBe(1);
    expect(report.summary).toBe("checked 2 operations, lost 1");
    expect(report.violations.map((v) => v.value)).toEqual(["b"]);
  });

  it("counts a lost value once however many coordinators read the key", () => {
    const h = history(put("k", "a"));
    expect(h.check(reads("k", null)).lost).toBe(1);
  });

  it("accepts a value superseded by an acknowledged read-modify-write", () => {
    const h = history(put("k", "a"), put("k", "b", ["a"]));
    expect(kinds(h, reads("k", ["b"]))).toEqual([]);
  });

  it("accepts a value superseded by an unacknowledged write that did apply", () => {
    const h = history(put("k", "a"), put("k", "b", ["a"], false));
    expect(kinds(h, reads("k", ["b"]))).toEqual([]);
  });

  it("reports a value whose only superseder never applied", () => {
    const h = history(put("k", "a"), put("k", "b", ["a"], false));
    expect(kinds(h, reads("k", null))).toEqual(["lost:a"]);
  });

  it("follows chains of supersession", () => {
    const h = history(put("k", "a"), put("k", "b", ["a"]), put("k", "c", ["b"], false));
    expect(kinds(h, reads("k", ["c"]))).toEqual([]);
    expect(kinds(h, reads("k", null))).toEqual(["lost:a", "lost:b"]);
  });

  it("accepts values removed by a delete that had seen them", () => {
    const h = history(put("k", "a"), put("k", "b"), del("k", ["a", "b"]));
    expect(kinds(h, reads("k", null))).toEqual([]);
  });

  it("treats an unacknowledged delete as possibly applied", () => {
    const h = history(put("k", "a"), del("k", ["a"], false));
    expect(kinds(h, reads("k", null))).toEqual([]);
    expect(kinds(h, reads("k", ["a"]))).toEqual([]);
  });

  it("does not let a delete remove a value it had not seen", () => {
    const h = history(put("k", "a"), put("k", "b"), del("k", ["a"]));
    expect(kinds(h, reads("k", null))).toEqual(["lost:b"]);
  });

  it("reports a value an acknowledged delete had removed coming back", () => {
    const h = history(put("k", "a"), del("k", ["a"]));
    expect(kinds(h, reads("k", ["a"]))).toEqual(["resurrected:a", "resurrected:a", "resurrected:a"]);
  });

  it("reports resurrection through a chain of reads", () => {
    const h = history(put("k", "a"), put("k", "b", ["a"], false), put("k", "c", ["b"]));
    expect(kinds(h, reads("k", ["a", "c"], ["node1"]))).toEqual(["resurrected:a"]);
  });

  it("reports siblings nobody wrote and duplicated siblings", () => {
    const h = history(put("k", "a"));
    expect(kinds(h, reads("k", ["a", "zz"], ["node1"]))).toEqual(["unknown:zz"]);
    expect(kinds(h, reads("k", ["a", "a"], ["node1"]))).toEqual(["duplicate:a"]);
    expect(kinds(h, [{ node: "node1", key: "other", values: ["a"] }, ...reads("k", ["a"], ["node1"])])).toEqual(["unknown:a"]);
  });

  it("reports coordinators that disagree after merging every replica", () => {
    const h = history(put("k", "a"), put("k", "b", [], false));
    const finals: FinalRead[] = [
      { node: "node1", key: "k", values: ["a", "b"] },
      { node: "node2", key: "k", values: ["b", "a"] },
      { node: "node3", key: "k", values: ["a"] },
    ];
    expect(kinds(h, finals)).toEqual(["divergent:k"]);
  });

  it("keeps keys apart", () => {
    const h = history(put("k1", "a"), put("k2", "b"), del("k2", ["b"]));
    expect(kinds(h, [...reads("k1", ["a"]), ...reads("k2", null)])).toEqual([]);
    expect(kinds(h, [...reads("k1", null), ...reads("k2", null)])).toEqual(["lost:a"]);
  });

  it("refuses histories it cannot judge", () => {
    const h = history(put("k", "a"));
    expect(() => h.record(put("k", "a"))).toThrow(HistoryError);
    expect(() => h.check([])).toThrow(/no final read of k/);
  });

  it("counts acknowledged writes inside a time window", () => {
    const early = put("k", "a");
    const late = put("k", "b");
    const failed = put("k", "c", [], false);
    const h = history(early, late, failed);
    expect(h.acknowledgedBetween(late.startedAt, Number.MAX_SAFE_INTEGER)).toBe(1);
    expect(h.acknowledgedCount()).toBe(2);
    expect(h.keys()).toEqual(["k"]);
  });
});
