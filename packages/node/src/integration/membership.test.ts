// Membership with real processes: a cluster formed through one seed, failure detection by
// gossip, rejoin after a restart, and a graceful leave.
import { DynamoClient } from "@dynamo-ts/client";
import { Ring } from "@dynamo-ts/ring";
import { liveValues } from "@dynamo-ts/vclock";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { eventually, TEST_SECRET, TestCluster } from "../test-support/cluster.js";

const INTERVAL_MS = 200;
const SUSPICION_MS = 1000;
// SWIM's bound: a few protocol periods to suspect, then the suspicion timeout (scaled by
// log10 n, which is 1 for 5 nodes); doubled for slow process scheduling on a loaded machine.
const DEAD_BOUND_MS = 2 * (6 * INTERVAL_MS + SUSPICION_MS) + 2000;

describe("5 nodes formed from one seed", () => {
  let cluster: TestCluster;
  beforeAll(async () => {
    cluster = await TestCluster.start({
      nodes: 5,
      n: 3,
      seedOnly: true,
      args: [
        "--gossip-interval-ms",
        String(INTERVAL_MS),
        "--gossip-suspicion-ms",
        String(SUSPICION_MS),
        "--gossip-sync-interval-ms",
        "1000",
        "--hint-interval-ms",
        "200",
      ],
    });
  });
  afterAll(async () => cluster?.stop());

  const view = async (id: string) => new Map((await cluster.status(id)).members.map((m) => [m.nodeId, m]));

  it("every node learns every member and computes the same ring", async () => {
    for (const node of cluster.nodes) {
      await eventually(async () => {
        const members = await view(node.id);
        expect([...members.keys()].sort()).toEqual(["n1", "n2", "n3", "n4", "n5"]);
        for (const m of members.values()) expect(m.state).toBe("alive");
      });
    }
    const ownerships = await Promise.all(cluster.nodes.map(async (n) => JSON.stringify([...(await view(n.id)).values()].map((m) => [m.nodeId, m.ownership]))));
    expect(new Set(ownerships).size).toBe(1);
    const expected = new Ring(["n1", "n2", "n3", "n4", "n5"], { vnodes: 256 }).ownership();
    for (const m of (await view("n2")).values()) expect(m.ownership).toBeCloseTo(expected.get(m.nodeId)!, 10);
    await cluster.client("n5").put("formed", "yes", { w: 3 });
    expect((await cluster.client("n2").get("formed", { r: 3 }))?.values.length).toBe(1);
  });

  it("marks a killed node dead everywhere within the bound, and alive again after a restart, with its hints delivered", async () => {
    await cluster.node("n4").kill();
    const killedAt = Date.now();
    for (const id of ["n1", "n2", "n3", "n5"]) {
      await eventually(async () => expect((await view(id)).get("n4")?.state).toBe("dead"), DEAD_BOUND_MS);
    }
    const detectedIn = Date.now() - killedAt;
    console.log(`n4 marked dead on all 4 other nodes within ${detectedIn} ms (bound ${DEAD_BOUND_MS} ms)`);

    // Writes meant for n4 while it is dead become hints on the fallbacks.
    const ring = new Ring(["n1", "n2", "n3", "n4", "n5"], { vnodes: 256 });
    const keys: string[] = [];
    for (let i = 0; keys.length < 10; i++) if (ring.preferenceList(`for-n4-${i}`, 3).includes("n4")) keys.push(`for-n4-${i}`);
    for (const key of keys) await cluster.client("n1").put(key, "while-dead", { w: 2 });

    const before = (await cluster.status("n2")).members.find((m) => m.nodeId === "n4")!.incarnation;
    await cluster.node("n4").start();
    for (const id of ["n1", "n2", "n3", "n5"]) {
      await eventually(async () => {
        const m = (await view(id)).get("n4")!;
        expect(m.state).toBe("alive");
        expect(m.incarnation).toBeGreaterThan(before);
      });
    }
    for (const key of keys) {
      await eventually(async () => {
        const set = await cluster.readReplica("n4", key);
        expect(set && liveValues(set).map((v) => new TextDecoder().decode(v))).toEqual(["while-dead"]);
      });
    }
    for (const node of cluster.nodes) await eventually(async () => expect((await cluster.hints(node.id)).get("n4") ?? 0).toBe(0));
  });

  it("removes a node that leaves gracefully from every node's ring", async () => {
    const leaver = new DynamoClient({ node: cluster.node("n5").address, clusterSecret: TEST_SECRET, httpVersion: "1.1" });
    try {
      await leaver.leave();
    } finally {
      leaver.close();
    }
    await eventually(() => expect(cluster.node("n5").running).toBe(false));
    const expected = new Ring(["n1", "n2", "n3", "n4"], { vnodes: 256 }).ownership();
    for (const id of ["n1", "n2", "n3", "n4"]) {
      await eventually(async () => {
        const members = await view(id);
        expect(members.get("n5")?.state).toBe("left");
        expect(members.get("n5")?.ownership).toBe(0);
        for (const [node, share] of expected) expect(members.get(node)?.ownership).toBeCloseTo(share, 10);
      });
    }
    // The cluster keeps serving without it.
    await cluster.client("n1").put("after-leave", "ok", { w: 3 });
    expect((await cluster.client("n3").get("after-leave", { r: 3 }))?.values.length).toBe(1);
  });
});
