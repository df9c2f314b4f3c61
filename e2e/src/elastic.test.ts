// Elastic membership on containers: two nodes join a running 3-node cluster (DYNAMO_SEEDS), one is
// decommissioned (`dynamo decommission`) and one is killed and removed (`dynamo remove-node`),
// while the writers of the lost-write checker run and a reader reads keys written at W=N before
// the changes, at R=1 and R=2 through every serving node, failing on any NotFound.
import { expect, it } from "vitest";
import { History } from "./checker.js";
import { type Cluster, delay, retryUntil } from "./cluster.js";
import { describeWithDocker } from "./environment.js";
import { printLogsOnFailure, useCluster, verifyNothingLost } from "./suite.js";
import { keyNames, Workload, type WorkloadStats } from "./workload.js";

const FIXED_KEYS = 200;

await describeWithDocker("grow and shrink", () => {
  const cluster = useCluster({
    name: "elastic",
    env: {
      DYNAMO_GOSSIP_INTERVAL_MS: "200",
      DYNAMO_GOSSIP_SUSPICION_MS: "2000",
      DYNAMO_GOSSIP_SYNC_INTERVAL_MS: "1000",
      DYNAMO_STREAM_BYTES_PER_SECOND: "200000",
    },
  });

  it("3 → 5 → 3: two joins, a decommission and a removal lose no acknowledged write and read no NotFound", async () => {
    printLogsOnFailure(cluster);
    const c = cluster();
    const fixed = Array.from({ length: FIXED_KEYS }, (_, i) => `fixed-${i}`);
    for (let i = 0; i < fixed.length; i += 20) await Promise.all(fixed.slice(i, i + 20).map((key) => c.node(0).client.put(key, key, { w: 3 })));

    const history = new History();
    const startedAt = Date.now();
    const workload = new Workload({ cluster: c, history, keys: keyNames("elastic", 24), writers: 3, seed: 21, valuePrefix: "elastic" }).start();
    const notFound: string[] = [];
    let reads = 0;
    let reading = true;
    const reader = (async () => {
      for (let i = 0; reading; i++) {
        const serving = c.runningIndexes();
        const node = c.node(serving[i % serving.length]!);
        const key = fixed[i % fixed.length]!;
        const r = i % 2 === 0 ? 1 : 2;
        try {
          if ((await node.client.get(key, { r })) === null) notFound.push(`${key} via ${node.id} at R=${r}`);
          reads++;
        } catch {
          await delay(20); // Unavailable or a timeout is not a NotFound
        }
      }
    })();

    let stats: WorkloadStats;
    try {
      await workload.waitForAcknowledged(100, "before the joins");
      const added = await c.addNodes(2);
      await waitRingStatuses(c, 0, (statuses) => added.every((i) => statuses.get(c.node(i).id) === "normal"));
      console.log(`[e2e] elastic: ${c.node(added[0]!).id} and ${c.node(added[1]!).id} joined`);
      await workload.waitForAcknowledged(100, "after the joins");

      const [joined, leaving] = [added[0]!, added[1]!];
      const decommission = await c.dynamo(0, "decommission", "--node", `${c.node(leaving).id}:7001`);
      console.log(`[e2e] elastic: dynamo decommission --node ${c.node(leaving).id}:7001\n${decommission.output}`);
      expect(decommission.exitCode).toBe(0);
      expect(await c.waitExited(leaving)).toBe(0);

      await c.kill(joined);
      await waitRingStatuses(c, 0, (_, states) => states.get(c.node(joined).id) === "dead");
      const removal = await c.dynamo(0, "remove-node", c.node(joined).id);
      console.log(`[e2e] elastic: dynamo remove-node ${c.node(joined).id}\n${removal.output}`);
      expect(removal.exitCode).toBe(0);
      await waitRingStatuses(c, 1, (statuses) => statuses.get(c.node(joined).id) === "removed");
      await workload.waitForAcknowledged(100, "after the shrink");
    } finally {
      stats = await workload.stop();
      reading = false;
      await reader;
    }
    console.log(`[e2e] elastic: ${reads} reads of ${FIXED_KEYS} keys written at W=3, ${notFound.length} NotFound`);
    expect(notFound).toEqual([]);
    expect(c.runningIndexes()).toEqual([0, 1, 2]);
    await verifyNothingLost("3 → 5 → 3", c, history, stats, startedAt);
  });
});

/** Polls node `index`'s Status until `done` holds for the members' ring statuses and liveness. */
async function waitRingStatuses(c: Cluster, index: number, done: (ringStatuses: Map<string, string>, states: Map<string, string>) => boolean): Promise<void> {
  await retryUntil(180_000, `ring statuses on ${c.node(index).id}`, async () => {
    using admin = c.admin(index);
    const status = await admin.status();
    const ring = new Map(status.members.map((m) => [m.nodeId, m.ringStatus]));
    const states = new Map(status.members.map((m) => [m.nodeId, m.state]));
    if (!done(ring, states)) throw new Error(status.members.map((m) => `${m.nodeId} ${m.state}/${m.ringStatus}`).join(", "));
  });
}
