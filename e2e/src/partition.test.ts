// Invariants 2 and 3 (docs/architecture.md) across a network partition and a frozen node. One node
// is cut off the cluster network (no traffic in or out; its host port goes dark too) while writers
// carry on: the two-node majority must keep acknowledging writes (W=2). After the heal every
// acknowledged write must be readable at R=N. Then a node is paused (a node so slow that calls to
// it hang until their deadline) and resumed, with the same check.
import { expect, it } from "vitest";
import { History } from "./checker.js";
import { describeWithDocker } from "./environment.js";
import { retryUntil } from "./cluster.js";
import { printLogsOnFailure, useCluster, verifyNothingLost } from "./suite.js";
import { keyNames, Workload, type WorkloadStats } from "./workload.js";

await describeWithDocker("partition and heal", () => {
  // Anti-entropy every 2 s, so that it backs hinted handoff up within the test's bound.
  const cluster = useCluster({ name: "partition", env: { DYNAMO_ANTI_ENTROPY_INTERVAL_MS: "2000" } });

  it("keeps writing on the majority side of a partition and loses nothing after the heal", async () => {
    printLogsOnFailure(cluster);
    const c = cluster();
    const history = new History();
    const startedAt = Date.now();
    const workload = new Workload({ cluster: c, history, keys: keyNames("partition", 24), writers: 3, seed: 31, valuePrefix: "partition" }).start();
    let stats: WorkloadStats;
    let cutAt: number;
    let healedAt: number;
    try {
      await workload.waitForAcknowledged(100, "before the partition");
      await c.disconnect(2);
      // Taken once the cut is in place: calls node3 took while Docker was still cutting it off
      // (it could coordinate those) are not "during the partition".
      cutAt = Date.now();
      await workload.waitForAcknowledged(300, "while node3 is partitioned");
      healedAt = Date.now();
      await c.reconnect(2);
      await workload.waitForAcknowledged(100, "after the heal");
    } finally {
      stats = await workload.stop();
    }
    const duringPartition = history.all.filter((w) => w.acknowledged && w.startedAt >= cutAt && w.endedAt <= healedAt);
    expect(duringPartition.length).toBeGreaterThan(0);
    // The cut-off node could not coordinate anything: clients could not reach it either.
    expect(duringPartition.filter((w) => w.node === c.node(2).id)).toEqual([]);
    // Before any read could repair it: the cut-off node converges by itself (hints replayed
    // to it, anti-entropy), every key's three replicas holding the same version.
    const keys = keyNames("partition", 24);
    const healStarted = Date.now();
    await retryUntil(60_000, "the replicas of every key to converge after the heal", async () => {
      for (const key of keys) {
        const records = await Promise.all([0, 1, 2].map((i) => c.replicaRecord(i, key)));
        if (new Set(records).size !== 1) throw new Error(`${key}: the replicas still differ`);
      }
    });
    console.log(
      `[e2e] partition and heal: all ${keys.length} keys identical on all 3 replicas ${Date.now() - healStarted} ms after the workload stopped (no reads since)`,
    );
    await verifyNothingLost("partition and heal", c, history, stats, startedAt);
  });

  it("keeps writing while a node is frozen (paused) and loses nothing after it resumes", async () => {
    printLogsOnFailure(cluster);
    const c = cluster();
    const history = new History();
    const startedAt = Date.now();
    const workload = new Workload({ cluster: c, history, keys: keyNames("paused", 24), writers: 3, seed: 32, valuePrefix: "paused" }).start();
    let stats: WorkloadStats;
    let pausedAt: number;
    let resumedAt: number;
    try {
      await workload.waitForAcknowledged(60, "before the pause");
      pausedAt = Date.now();
      await c.pause(0);
      await workload.waitForAcknowledged(30, "while node1 is paused");
      resumedAt = Date.now();
      await c.unpause(0);
      await workload.waitForAcknowledged(60, "after node1 resumed");
    } finally {
      stats = await workload.stop();
    }
    expect(history.acknowledgedBetween(pausedAt, resumedAt)).toBeGreaterThan(0);
    await verifyNothingLost("pause and resume", c, history, stats, startedAt);
  });
});
