// The coordinator in process, on the bench of fake replicas and a fake clock: every outcome here is
// decided by the test's script, so these cases are exact and deterministic.
import { Code, ConnectError } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { CoordinatorBench, failure, settle } from "../test-support/coordinator-bench.js";

const NODES = ["n1", "n2", "n3", "n4", "n5"];

describe("coordinator: writes", () => {
  it("writes to every replica of the preference list and answers after W", async () => {
    const bench = new CoordinatorBench({ nodes: NODES, self: "n1" });
    const key = bench.keyWhere((p) => p[0] === "n1");
    const [, second, third] = bench.ring.preferenceList(key, 3);
    bench.replica(third!).behaviour = "hang";
    await bench.put(key, "v");
    // W=2: the coordinator and the second replica; the third still has its write coming.
    expect(bench.valuesOn("n1", key)).toEqual(["v"]);
    expect(bench.valuesOn(second!, key)).toEqual(["v"]);
    expect(bench.valuesOn(third!, key)).toEqual([]);
    bench.replica(third!).release();
    await settle();
    expect(bench.valuesOn(third!, key)).toEqual(["v"]);
  });

  it("ends the write it left running at the deadline, and keeps a hint for that replica", async () => {
    const bench = new CoordinatorBench({ nodes: NODES, self: "n1" });
    const key = bench.keyWhere((p) => p[0] === "n1");
    const [, , third] = bench.ring.preferenceList(key, 3);
    bench.replica(third!).behaviour = "hang";
    const deadline = bench.deadline(1_000);
    await bench.coordinator.write({ key, value: new TextEncoder().encode("v"), context: new Uint8Array(), w: undefined, deadline }, false);
    expect(deadline.replicaSignal.aborted).toBe(false);
    bench.clock.advance(1_000);
    await settle();
    // The answered request's timer was kept for the write still running, and cut it off.
    expect(deadline.replicaSignal.aborted).toBe(true);
    expect(bench.metrics.get("coordinator_hints")).toBe(1);
  });

  it("leaves no timer behind once the request and every replica call it made are done", async () => {
    const bench = new CoordinatorBench({ nodes: ["n1", "n2", "n3"], self: "n1", readRepair: 1 });
    const put = bench.deadline(1_000);
    await bench.coordinator.write({ key: "k", value: new TextEncoder().encode("v"), context: new Uint8Array(), w: undefined, deadline: put }, false);
    const get = bench.deadline(1_000);
    await bench.coordinator.get("k", 2, get);
    await settle();
    bench.clock.advance(5_000);
    expect(put.replicaSignal.aborted).toBe(false);
    expect(get.replicaSignal.aborted).toBe(false);
  });

  it("stands in for a replica believed down with the next healthy node, which keeps a hint for it and counts for W", async () => {
    const bench = new CoordinatorBench({ nodes: NODES, self: "n1" });
    const key = bench.keyWhere((p) => p[0] === "n1");
    const [, down, other] = bench.ring.preferenceList(key, 3);
    bench.believedDown.add(down!);
    bench.replica(down!).behaviour = "down";
    await bench.put(key, "v", { w: 3 });
    const fallback = bench.ring.sloppyPreferenceList(key, 3, (node) => node !== down).find((p) => p.standsInFor === down)!.node;
    expect(bench.writes.filter((w) => w.hintFor === down).map((w) => w.node)).toEqual([fallback]);
    // The believed-down primary was not even tried.
    expect(bench.writes.some((w) => w.node === down)).toBe(false);
    expect(bench.valuesOn(other!, key)).toEqual(["v"]);
    expect(bench.metrics.get("hinted_writes")).toBe(1);
  });

  it("falls back when a replica believed up fails the call", async () => {
    const bench = new CoordinatorBench({ nodes: NODES, self: "n1" });
    const key = bench.keyWhere((p) => p[0] === "n1");
    const [, failing] = bench.ring.preferenceList(key, 3);
    bench.replica(failing!).behaviour = "down";
    await bench.put(key, "v", { w: 3 });
    expect(bench.writes.filter((w) => w.hintFor === failing)).toHaveLength(1);
  });

  it("tries the next stand-in when a fallback fails too", async () => {
    const bench = new CoordinatorBench({ nodes: NODES, self: "n1" });
    const key = bench.keyWhere((p) => p[0] === "n1");
    const [, failing] = bench.ring.preferenceList(key, 3);
    bench.replica(failing!).behaviour = "down";
    const firstStandIn = bench.ring.sloppyPreferenceList(key, 3, (node) => node !== failing).find((p) => p.standsInFor === failing)!.node;
    bench.replica(firstStandIn).behaviour = "down";
    await bench.put(key, "v", { w: 3 });
    // The write the primary and its first stand-in failed is taken by another node outside the preference list.
    const taken = bench.writes.filter((w) => w.hintFor === failing).map((w) => w.node);
    expect(taken).toHaveLength(1);
    expect([failing, firstStandIn, ...bench.ring.preferenceList(key, 3)]).not.toContain(taken[0]);
    expect(bench.metrics.get("hinted_writes")).toBe(1);
  });

  it("tries a primary believed down as a last resort when no stand-in is left, and counts it if it answers", async () => {
    // Three nodes, N=3: no node outside the preference list to stand in.
    const bench = new CoordinatorBench({ nodes: ["n1", "n2", "n3"], self: "n1" });
    bench.believedDown.add("n3");
    await bench.put("k", "v", { w: 3 });
    expect(bench.valuesOn("n3", "k")).toEqual(["v"]);
    expect(bench.writes.filter((w) => w.node === "n3").map((w) => w.hintFor)).toEqual([undefined]);
    expect(bench.metrics.get("hinted_writes")).toBe(0);
  });

  it("keeps a hint itself when no fallback is left, without counting it towards W", async () => {
    // Three nodes, N=3: no node outside the preference list to stand in.
    const bench = new CoordinatorBench({ nodes: ["n1", "n2", "n3"], self: "n1" });
    bench.replica("n2").behaviour = "down";
    bench.replica("n3").behaviour = "down";
    const err = await failure(bench.put("k", "v", { w: 2 }));
    expect(err.code).toBe(Code.Unavailable);
    expect(err.rawMessage).toMatch(/1 of 3 replicas acknowledged the write, 2 needed/);
    await settle();
    expect([...bench.replica("n1").hints.keys()].sort()).toEqual(["n2\nk", "n3\nk"]);
    expect(bench.metrics.get("coordinator_hints")).toBe(2);
    // The write is still applied locally: Unavailable is not "not written".
    expect(bench.valuesOn("n1", "k")).toEqual(["v"]);
  });

  it("answers DeadlineExceeded when replicas hang past the deadline, and nothing else fires early", async () => {
    const bench = new CoordinatorBench({ nodes: ["n1", "n2", "n3"], self: "n1" });
    bench.replica("n2").behaviour = "hang";
    bench.replica("n3").behaviour = "hang";
    let settled: ConnectError | undefined;
    const write = bench.put("k", "v", { deadlineMs: 500 }).catch((err: unknown) => (settled = ConnectError.from(err)));
    await settle();
    bench.clock.advance(499);
    await settle();
    expect(settled).toBeUndefined();
    bench.clock.advance(1);
    await write;
    expect(settled?.code).toBe(Code.DeadlineExceeded);
    expect(settled?.rawMessage).toMatch(/deadline passed: 1 of 3 replicas acknowledged/);
  });

  it("forwards a write it is not a replica of to the first replica that answers, which coordinates it", async () => {
    const bench = new CoordinatorBench({ nodes: NODES, self: "n1" });
    const key = bench.keyWhere((p) => !p.includes("n1"));
    const [first, second] = bench.ring.preferenceList(key, 3);
    bench.replica(first!).behaviour = "down";
    bench.believedDown.add(first!);
    await bench.put(key, "v");
    expect(bench.forwarded.map((f) => f.node)).toEqual([first, second]);
    expect(bench.valuesOn(second!, key)).toEqual(["v"]);
    expect(bench.valuesOn("n1", key)).toEqual([]);
  });

  it("forwards to the next replica when the first declines the write (its store can't write)", async () => {
    const bench = new CoordinatorBench({ nodes: NODES, self: "n1" });
    const key = bench.keyWhere((p) => !p.includes("n1"));
    const [first, second] = bench.ring.preferenceList(key, 3);
    bench.diskFailing.add(first!);
    await bench.put(key, "v");
    expect(bench.forwarded.map((f) => f.node)).toEqual([first, second]);
    expect(bench.valuesOn(second!, key)).toEqual(["v"]);
  });

  it("answers with the outcome of a forwarded write its coordinator reached: a quorum failure is not retried elsewhere", async () => {
    const bench = new CoordinatorBench({ nodes: NODES, self: "n1" });
    const key = bench.keyWhere((p) => !p.includes("n1"));
    const [first] = bench.ring.preferenceList(key, 3);
    for (const node of NODES) if (node !== first) bench.replica(node).behaviour = "down";
    const err = await failure(bench.put(key, "v", { w: 3 }));
    expect(err.code).toBe(Code.Unavailable);
    expect(err.rawMessage).toMatch(/replicas/);
    // Handing it on would have issued a second version of the same write.
    expect(bench.forwarded.map((f) => f.node)).toEqual([first]);
    expect(bench.valuesOn(first!, key)).toEqual(["v"]);
  });

  it("hands a write to another replica when its own store can't write", async () => {
    const bench = new CoordinatorBench({ nodes: NODES, self: "n1" });
    const key = bench.keyWhere((p) => p[0] === "n1");
    bench.replica("n1").behaviour = "down";
    await bench.put(key, "v");
    const [, second] = bench.ring.preferenceList(key, 3);
    expect(bench.forwarded.map((f) => f.node)).toEqual([second]);
    expect(bench.metrics.get("writes_forwarded_disk_failing")).toBe(1);
  });

  it("returns the context of the new version, which replaces exactly that version", async () => {
    const bench = new CoordinatorBench({ nodes: ["n1", "n2", "n3"], self: "n1" });
    const first = await bench.put("k", "one");
    await bench.put("k", "concurrent");
    await bench.put("k", "two", { context: first });
    expect(bench.valuesOn("n2", "k")).toEqual(["concurrent", "two"]);
  });
});

describe("coordinator: reads", () => {
  it("answers once R replicas replied, merging what they hold", async () => {
    const bench = new CoordinatorBench({ nodes: ["n1", "n2", "n3"], self: "n1" });
    await bench.put("k", "v");
    bench.replica("n3").behaviour = "hang";
    const result = await bench.coordinator.get("k", 2, bench.deadline());
    expect(result.siblings.map((s) => new TextDecoder().decode(s.value))).toEqual(["v"]);
  });

  it("returns each value's content type, kept through forwarding and beside concurrent siblings", async () => {
    const bench = new CoordinatorBench({ nodes: NODES, self: "n1" });
    const key = bench.keyWhere((p) => !p.includes("n1"));
    await bench.put(key, "{}", { contentType: "application/json" });
    await bench.put(key, "raw");
    expect(bench.forwarded).toHaveLength(2);
    const result = await bench.coordinator.get(key, 2, bench.deadline());
    expect(result.siblings.map((s) => [new TextDecoder().decode(s.value), s.contentType]).sort()).toEqual([
      ["raw", undefined],
      ["{}", "application/json"],
    ]);
  });

  it("refuses a content type that is not printable ASCII or too long, and one given with a delete", async () => {
    const bench = new CoordinatorBench({ nodes: ["n1", "n2", "n3"], self: "n1" });
    for (const contentType of ["", "text/plain\n", "t\u00e9xt", "x".repeat(256)]) {
      const err = await failure(bench.put("k", "v", { contentType }));
      expect([contentType, err.code]).toEqual([contentType, Code.InvalidArgument]);
      expect(err.rawMessage).toMatch(/content type must be 1\.\.255 printable ASCII characters/);
    }
    const del = await failure(
      bench.coordinator.write({ key: "k", value: null, contentType: "text/plain", context: new Uint8Array(), w: undefined, deadline: bench.deadline() }, false),
    );
    expect(del.code).toBe(Code.InvalidArgument);
    expect(bench.valuesOn("n1", "k")).toEqual([]);
  });

  it("repairs the replicas that hold less once every replica answered, late ones included", async () => {
    const bench = new CoordinatorBench({ nodes: ["n1", "n2", "n3"], self: "n1", readRepair: 1 });
    bench.replica("n3").behaviour = "down";
    await bench.put("k", "v");
    bench.replica("n3").behaviour = "hang";
    await bench.coordinator.get("k", 2, bench.deadline());
    expect(bench.valuesOn("n3", "k")).toEqual([]);
    bench.replica("n3").behaviour = "ok";
    bench.replica("n3").release();
    await settle();
    expect(bench.valuesOn("n3", "k")).toEqual(["v"]);
    expect(bench.metrics.get("read_repairs")).toBe(1);
  });

  it("ends a read repair still waiting on a replica at the request's deadline, after the answer", async () => {
    const bench = new CoordinatorBench({ nodes: ["n1", "n2", "n3"], self: "n1", readRepair: 1 });
    bench.replica("n3").behaviour = "down";
    await bench.put("k", "v");
    bench.replica("n3").behaviour = "hang";
    const deadline = bench.deadline(1_000);
    await bench.coordinator.get("k", 2, deadline);
    // n3's read answers late (it lacks the value), and the repair write to it then hangs.
    bench.replica("n3").release();
    await settle();
    expect(bench.metrics.get("read_repairs_failed")).toBe(0);
    bench.clock.advance(1_000);
    await settle();
    expect(bench.metrics.get("read_repairs_failed")).toBe(1);
  });

  it("answers NotFound for a missing key, and Unavailable with the count when R can't be met", async () => {
    const bench = new CoordinatorBench({ nodes: ["n1", "n2", "n3"], self: "n1" });
    expect((await failure(bench.coordinator.get("nothing", 2, bench.deadline()))).code).toBe(Code.NotFound);
    bench.replica("n2").behaviour = "down";
    bench.replica("n3").behaviour = "down";
    const err = await failure(bench.coordinator.get("nothing", 2, bench.deadline()));
    expect(err.code).toBe(Code.Unavailable);
    expect(err.rawMessage).toMatch(/1 of 3 replicas answered, 2 needed/);
  });
});
