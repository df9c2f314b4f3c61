// Invariants 1 (durability) and 2 (no lost update) of docs/architecture.md under kill -9: writers
// keep writing while one node is killed and restarted on its data, then all three nodes are killed
// at once and restarted. Every acknowledged write must still be there (or superseded by a write
// that saw it).
import { it } from "vitest";
import { History } from "./checker.js";
import { describeWithDocker } from "./environment.js";
import { killOneAndRestartUnderLoad, printLogsOnFailure, useCluster, verifyNothingLost } from "./suite.js";
import { keyNames, Workload, type WorkloadStats } from "./workload.js";

await describeWithDocker("kill -9 and restart", () => {
  const cluster = useCluster({ name: "kill" });

  it("keeps every acknowledged write when one node is killed -9 and restarted under load", async () => {
    printLogsOnFailure(cluster);
    await killOneAndRestartUnderLoad(cluster(), "kill -9 one node", "kill", 11);
  });

  it("keeps every acknowledged write when all nodes are killed -9 at once", async () => {
    printLogsOnFailure(cluster);
    const c = cluster();
    const history = new History();
    const startedAt = Date.now();
    const workload = new Workload({ cluster: c, history, keys: keyNames("killall", 24), writers: 3, seed: 12, valuePrefix: "killall" }).start();
    let stats: WorkloadStats;
    try {
      await workload.waitForAcknowledged(300, "before killing every node");
      // Writers are mid-flight: whatever was acknowledged before the kill must survive it.
      await Promise.all(c.nodes.map((_, i) => c.kill(i)));
    } finally {
      stats = await workload.stop();
    }
    await Promise.all(c.nodes.map((_, i) => c.start(i)));
    await verifyNothingLost("kill -9 all nodes", c, history, stats, startedAt);
  });
});
