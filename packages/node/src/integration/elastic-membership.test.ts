// Elastic membership with real processes: two nodes join a running 3-node cluster (--seeds), one
// is decommissioned and one killed and removed, under continuous writes, while a reader at R=1 and
// R=2 fails on any NotFound for an acknowledged key.
// Writes are at W=3 (= N), as in the issue: at W=2 a read at R=1 may miss a write that is
// acknowledged but still on its way to the third replica, with or without a membership change.
// Joining nodes copy their ranges (bootstrap) before they own them; a leaving node, or the node
// removing a dead one, streams the ranges to the nodes that gain them first; see docs/membership.md.
import type { DynamoClient } from "@dynamo-ts/client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { Ring } from "@dynamo-ts/ring";
import { dynamo, eventually, TestCluster, type TestNode } from "../test-support/cluster.js";

const PRELOADED = 1500;

describe("3 → 5 → 3 nodes: two joins at once, a decommission and a removal, under writes and reads", () => {
  let cluster: TestCluster;
  beforeAll(async () => {
    cluster = await TestCluster.start({
      nodes: 3,
      n: 3,
      r: 2,
      w: 2,
      // A slow copy, so that the reader runs while ranges are moving.
      args: [
        "--gossip-interval-ms",
        "200",
        "--gossip-sync-interval-ms",
        "1000",
        "--gossip-suspicion-ms",
        "2000",
        "--stream-bytes-per-second",
        "40000",
        "--request-timeout-ms",
        "10000",
        // Keys the old owners no longer own after the joins are removed 5 s after the ring settles.
        "--cleanup-delay-ms",
        "5000",
        "--tombstone-sweep-interval-ms",
        "2000",
      ],
    });
  }, 60_000);
  afterAll(async () => cluster?.stop());

  it("no acknowledged key reads NotFound at R=1 or R=2 during or after the changes, and ends on exactly N owners", async () => {
    const acknowledged: string[] = [];
    const writer = cluster.client("n1");
    for (let i = 0; i < PRELOADED; i += 50) {
      await Promise.all(
        Array.from({ length: 50 }, async (_, j) => {
          const key = `pre-${i + j}`;
          await writer.put(key, `v${i + j}`, { w: 3 });
          acknowledged.push(key);
        }),
      );
    }

    const clients = new Map<string, DynamoClient>();
    const clientOf = (node: TestNode) => clients.get(node.id) ?? clients.set(node.id, cluster.client(node.id)).get(node.id)!;
    // Nodes about to go (decommissioned or killed) are not asked: a client would see Unavailable.
    const going = new Set<string>();
    const serving = () => cluster.nodes.filter((node) => node.running && !going.has(node.id));
    const notFound: string[] = [];
    const phases = { reads: 0, writes: 0 };
    let stop = false;
    const writing = (async () => {
      for (let i = 0; !stop; i++) {
        const key = `live-${i}`;
        try {
          await clientOf(cluster.nodes[i % 3]!).put(key, `live${i}`, { w: 3 });
          acknowledged.push(key);
          phases.writes++;
        } catch {
          // Not acknowledged: not checked.
        }
      }
    })();
    const reading = (async () => {
      for (let i = 0; !stop; i++) {
        const key = acknowledged[Math.floor(Math.random() * acknowledged.length)]!;
        const nodes = serving();
        if (nodes.length === 0) break;
        const node = nodes[i % nodes.length]!;
        const r = i % 2 === 0 ? 1 : 2;
        try {
          const result = await clientOf(node).get(key, { r });
          if (result == null) notFound.push(`${key} via ${node.id} at R=${r}`);
          phases.reads++;
        } catch {
          // Unavailable or a timeout is not a NotFound.
        }
      }
    })();
    const growAndShrink = async () => {
      // 3 → 5: two joins at once.
      const joined = await Promise.all([cluster.addNode("n4"), cluster.addNode("n5")]);
      const started = Date.now();
      // What an operator sees mid-join (the transcript in the README).
      await eventually(async () => {
        const members = (await cluster.status("n1")).members;
        expect(members.filter((m) => m.ringStatus === "joining").map((m) => m.nodeId)).toEqual(["n4", "n5"]);
      }, 30_000);
      await eventually(async () => expect((await cluster.status("n4")).transfers.filter((t) => t.done && t.keys > 0n).length).toBeGreaterThan(10), 60_000, 100);
      console.log(`dynamo status mid-join:\n${(await admin("status", "--node", cluster.node("n4").address)).stdout}`);
      for (const node of joined) {
        await eventually(() => expect(node.output.join("")).toContain("bootstrap complete"), 120_000, 250);
      }
      console.log(`both joins complete ${Date.now() - started} ms after the nodes started`);
      for (const node of joined) {
        const line = node.output
          .join("")
          .split("\n")
          .find((l) => l.includes("bootstrap complete"));
        console.log(`${node.id}: ${line}`);
      }
      // Every node hears that the new nodes own their ranges, while reads and writes go on.
      await cluster.waitAllNormal();
      await new Promise((r) => setTimeout(r, 1000));
      const expected5 = new Ring(["n1", "n2", "n3", "n4", "n5"], { vnodes: 256 });
      const expected = expected5.ownership();
      for (const node of cluster.nodes) {
        for (const m of (await cluster.status(node.id)).members) expect(m.ownership).toBeCloseTo(expected.get(m.nodeId)!, 10);
      }
      console.log(`dynamo status after the joins:\n${(await admin("status", "--node", cluster.node("n1").address)).stdout}`);
      console.log(`joins: ${phases.reads} reads, ${phases.writes} acknowledged writes, ${notFound.length} NotFound`);

      // The old owners remove what they no longer own: each preloaded key ends on exactly its 3
      // owners in the 5-node ring, while reads go on.
      for (const id of ["n1", "n2", "n3"]) {
        await eventually(async () => expect(Number((await cluster.status(id)).counters["stray_keys_removed"] ?? 0)).toBeGreaterThan(0), 60_000, 250);
      }
      const holders = async (key: string) => {
        const held = await Promise.all(cluster.nodes.map(async (node) => ((await cluster.readReplica(node.id, key)) === undefined ? [] : [node.id])));
        return held.flat().sort();
      };
      await eventually(
        async () => {
          for (let i = 0; i < PRELOADED; i += 15) expect(await holders(`pre-${i}`)).toEqual([...expected5.preferenceList(`pre-${i}`, 3)].sort());
        },
        60_000,
        500,
      );
      const removedStrays = await Promise.all(["n1", "n2", "n3"].map(async (id) => Number((await cluster.status(id)).counters["stray_keys_removed"])));
      console.log(`stray keys removed after the joins (n1, n2, n3): ${removedStrays.join(", ")}; ${notFound.length} NotFound so far`);

      // 5 → 4: n5 decommissions itself, streaming its ranges to the nodes that gain them.
      const n5 = cluster.node("n5");
      going.add("n5");
      const decommissionStarted = Date.now();
      const decommission = admin("decommission", "--node", n5.address);
      await eventually(
        async () => expect((await cluster.status("n5")).transfers.filter((t) => t.kind === "decommission" && t.done && t.keys > 0n).length).toBeGreaterThan(10),
        60_000,
        100,
      );
      console.log(`dynamo status mid-decommission:\n${(await admin("status", "--node", n5.address)).stdout}`);
      const decommissioned = await decommission;
      console.log(`$ dynamo decommission --node ${n5.address}\n${decommissioned.stderr}${decommissioned.stdout}`);
      expect(decommissioned.code).toBe(0);
      await eventually(() => expect(n5.running).toBe(false), 30_000);
      console.log(`decommission of n5 took ${Date.now() - decommissionStarted} ms`);
      expect(n5.output.join("")).toContain("decommission complete");

      // 4 → 3: n4 is killed (kill -9) and an operator removes it through n1.
      const n4 = cluster.node("n4");
      going.add("n4");
      await n4.kill();
      await eventually(async () => expect((await cluster.status("n1")).members.find((m) => m.nodeId === "n4")?.state).toBe("dead"), 30_000, 200);
      // A live node can't be removed; the refusal says why.
      const refused = await admin("remove-node", "n1", "--node", cluster.node("n2").address);
      expect(refused.code).toBe(1);
      expect(refused.stderr).toMatch(/n1 is alive: only a dead member can be removed/);
      const removed = await admin("remove-node", "n4", "--node", cluster.node("n1").address);
      console.log(`$ dynamo remove-node n4 --node ${cluster.node("n1").address}\n${removed.stderr}${removed.stdout}`);
      expect(removed.code).toBe(0);
      for (const id of ["n1", "n2", "n3"]) {
        await eventually(async () => expect((await cluster.status(id)).members.find((m) => m.nodeId === "n4")?.ringStatus).toBe("removed"), 30_000, 200);
      }
      // Shrinking below N owners is refused.
      const tooFew = await admin("decommission", "--node", cluster.node("n3").address);
      expect(tooFew.code).toBe(1);
      expect(tooFew.stderr).toMatch(/would leave 2 owner\(s\).*for N=3 replicas/);
      console.log(`dynamo status after 3 → 5 → 3:\n${(await admin("status", "--node", cluster.node("n1").address)).stdout}`);
    };
    const admin = (...args: string[]) => dynamo(...args, "--secret", cluster.secret);
    try {
      await growAndShrink();
    } finally {
      // Also when a step fails: the loops must not outlive the test.
      stop = true;
      await Promise.all([writing, reading]);
    }
    console.log(`during the changes: ${phases.reads} reads, ${phases.writes} acknowledged writes, ${notFound.length} NotFound`);
    expect(notFound).toEqual([]);

    // Afterwards: every acknowledged key, at R=1 and R=2, through every node; and in each of the
    // three remaining stores, read directly: N = 3 owners of 3 nodes.
    const missing: string[] = [];
    const absent: string[] = [];
    const nodes = serving();
    expect(nodes.map((n) => n.id)).toEqual(["n1", "n2", "n3"]);
    for (let i = 0; i < acknowledged.length; i += 100) {
      await Promise.all(
        acknowledged.slice(i, i + 100).map(async (key, j) => {
          const node = nodes[(i + j) % nodes.length]!;
          for (const r of [1, 2]) if ((await clientOf(node).get(key, { r })) == null) missing.push(`${key} via ${node.id} at R=${r}`);
          for (const owner of nodes) if ((await cluster.readReplica(owner.id, key)) === undefined) absent.push(`${key} on ${owner.id}`);
        }),
      );
    }
    console.log(
      `after 3 → 5 → 3: ${acknowledged.length} acknowledged keys read at R=1 and R=2, ${missing.length} NotFound; ${absent.length} missing from one of the 3 owners' stores`,
    );
    expect(missing).toEqual([]);
    expect(absent).toEqual([]);
  }, 420_000);
});

describe("a joining node killed with kill -9 mid-copy", () => {
  let cluster: TestCluster;
  beforeAll(async () => {
    cluster = await TestCluster.start({
      nodes: 3,
      n: 3,
      args: ["--gossip-interval-ms", "200", "--gossip-sync-interval-ms", "1000", "--stream-bytes-per-second", "8000", "--request-timeout-ms", "5000"],
    });
  }, 60_000);
  afterAll(async () => cluster?.stop());

  it("resumes its copy after a restart and then holds every key it owns", async () => {
    const writer = cluster.client("n1");
    const keys = Array.from({ length: 1000 }, (_, i) => `resume-${i}`);
    for (let i = 0; i < keys.length; i += 50) await Promise.all(keys.slice(i, i + 50).map((key) => writer.put(key, key, { w: 3 })));
    const joiner = await cluster.addNode("n4");
    // Some pages copied, not all: kill it there.
    await eventually(() => expect(existsSync(join(joiner.dataDir, "bootstrap.json"))).toBe(true), 60_000, 50);
    await joiner.kill();
    const progress = JSON.parse(readFileSync(join(joiner.dataDir, "bootstrap.json"), "utf8")) as Record<string, { done: boolean }>;
    expect(Object.keys(progress).length).toBeGreaterThan(0);
    await joiner.start();
    await eventually(() => expect(joiner.output.join("")).toContain("bootstrap: resuming from the progress of an earlier start"), 10_000);
    await eventually(() => expect(joiner.output.join("")).toContain("bootstrap complete"), 120_000, 250);
    expect(existsSync(join(joiner.dataDir, "bootstrap.json"))).toBe(false);
    // Its own store, read directly: every key it owns in the 4-node ring.
    const ring = new Ring(["n1", "n2", "n3", "n4"], { vnodes: 256 });
    const owned = keys.filter((key) => ring.preferenceList(key, 3).includes("n4"));
    const missing: string[] = [];
    for (const key of owned) if ((await cluster.readReplica("n4", key)) === undefined) missing.push(key);
    console.log(`n4 owns ${owned.length} of ${keys.length} keys after a kill -9 mid-copy and a restart; ${missing.length} missing from its store`);
    expect(owned.length).toBeGreaterThan(0);
    expect(missing).toEqual([]);
  }, 240_000);
});

describe("a decommission interrupted by a kill -9 of the leaving node", () => {
  let cluster: TestCluster;
  beforeAll(async () => {
    cluster = await TestCluster.start({
      nodes: 3,
      n: 3,
      args: ["--gossip-interval-ms", "200", "--gossip-sync-interval-ms", "1000", "--stream-bytes-per-second", "8000", "--request-timeout-ms", "5000"],
    });
  }, 60_000);
  afterAll(async () => cluster?.stop());

  it("resumes after a restart, completes, and leaves every key on the remaining N owners", async () => {
    const leaver = await cluster.addNode("n4");
    await eventually(() => expect(leaver.output.join("")).toContain("bootstrap complete"), 60_000, 100);
    await cluster.waitAllNormal();
    const writer = cluster.client("n1");
    const keys = Array.from({ length: 1000 }, (_, i) => `leave-${i}`);
    for (let i = 0; i < keys.length; i += 50) await Promise.all(keys.slice(i, i + 50).map((key) => writer.put(key, key, { w: 3 })));
    const started = await dynamo("decommission", "--no-wait", "--node", leaver.address, "--secret", cluster.secret);
    expect(started.code).toBe(0);
    // Some pages streamed, not all: kill it there.
    await eventually(() => expect(existsSync(join(leaver.dataDir, "decommission.json"))).toBe(true), 60_000, 50);
    await leaver.kill();
    const progress = JSON.parse(readFileSync(join(leaver.dataDir, "decommission.json"), "utf8")) as Record<string, { done: boolean }>;
    expect(Object.keys(progress).length).toBeGreaterThan(0);
    await leaver.start();
    await eventually(() => expect(leaver.output.join("")).toContain("decommission: resuming from the progress of an earlier start"), 10_000);
    await eventually(() => expect(leaver.running).toBe(false), 120_000, 250);
    expect(leaver.output.join("")).toContain("decommission complete");
    // Its data dir is kept, and refuses to start a node again until it is wiped.
    expect(existsSync(join(leaver.dataDir, "ring-status.json"))).toBe(true);
    await expect(leaver.start(5_000)).rejects.toThrow(/which was decommissioned/);
    const absent: string[] = [];
    for (const key of keys) for (const id of ["n1", "n2", "n3"]) if ((await cluster.readReplica(id, key)) === undefined) absent.push(`${key} on ${id}`);
    console.log(`decommission with a kill -9 and a restart: ${keys.length} keys, ${absent.length} missing from one of the 3 remaining stores`);
    expect(absent).toEqual([]);
  }, 240_000);
});

describe("grow, delete, collect the tombstones, shrink: deleted keys stay deleted", () => {
  let cluster: TestCluster;
  beforeAll(async () => {
    cluster = await TestCluster.start({
      nodes: 3,
      n: 3,
      args: [
        "--gossip-interval-ms",
        "200",
        "--gossip-sync-interval-ms",
        "1000",
        "--hint-ttl-ms",
        "1000",
        "--tombstone-grace-ms",
        "1500",
        "--tombstone-sweep-interval-ms",
        "250",
        "--cleanup-delay-ms",
        "2000",
      ],
    });
  }, 60_000);
  afterAll(async () => cluster?.stop());

  // The old owner of a key that a join moved keeps no copy of it: a copy left behind would miss
  // the delete, outlive the tombstone, and be the only version once the shrink gives it back.
  it("removes the copies the join left on old owners, so none comes back after the shrink", async () => {
    const writer = cluster.client("n1");
    const keys = Array.from({ length: 200 }, (_, i) => `zombie-${i}`);
    await Promise.all(keys.map((key) => writer.put(key, "brains", { w: 3 })));
    const n4 = await cluster.addNode("n4");
    await eventually(() => expect(n4.output.join("")).toContain("bootstrap complete"), 60_000, 100);
    await cluster.waitAllNormal();

    // Keys the join moved: n4 owns them now, and one old node no longer does.
    const ring4 = new Ring(["n1", "n2", "n3", "n4"], { vnodes: 256 });
    const moved = keys.map((key) => {
      const owners = ring4.preferenceList(key, 3);
      return { key, owners, old: ["n1", "n2", "n3"].find((id) => !owners.includes(id)) };
    });
    const movedKeys = moved.filter((m) => m.old !== undefined);
    expect(movedKeys.length).toBeGreaterThan(20);
    await eventually(
      async () => {
        for (const { key, old } of movedKeys) expect(await cluster.readReplica(old!, key)).toBeUndefined();
      },
      30_000,
      250,
    );

    // Deleted, and the tombstones collected on the owners once the grace period passed.
    await Promise.all(movedKeys.map(({ key }) => writer.delete(key, { w: 3 })));
    await eventually(
      async () => {
        for (const { key, owners } of movedKeys) for (const id of owners) expect(await cluster.readReplica(id, key)).toBeUndefined();
      },
      30_000,
      250,
    );

    // n4 leaves: its ranges go back to the old owners.
    const decommissioned = await dynamo("decommission", "--node", n4.address, "--secret", cluster.secret);
    expect(decommissioned.code).toBe(0);
    await eventually(() => expect(n4.running).toBe(false), 30_000);
    const back: string[] = [];
    for (const { key } of movedKeys) {
      for (const id of ["n1", "n2", "n3"]) {
        if ((await cluster.client(id).get(key, { r: 1 })) !== null) back.push(`${key} read via ${id}`);
        if ((await cluster.readReplica(id, key)) !== undefined) back.push(`${key} in ${id}'s store`);
      }
    }
    console.log(`grow, delete, collect, shrink: ${movedKeys.length} keys moved by the join and deleted; ${back.length} came back`);
    expect(back).toEqual([]);
  }, 240_000);
});
