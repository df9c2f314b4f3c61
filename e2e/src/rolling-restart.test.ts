// Invariants (docs/architecture.md) 2 (no lost update) and 3 (no resurrection) through a rolling
// restart: each node in turn is stopped gracefully (SIGTERM, which must end the process cleanly)
// and started again while writers put and delete. A node that was down missed deletes; its stale
// values must not come back once it rejoins.
import { expect, it } from "vitest";
import { History } from "./checker.js";
import { describeWithDocker } from "./environment.js";
import { printLogsOnFailure, useCluster, verifyNothingLost } from "./suite.js";
import { keyNames, Workload, type WorkloadStats } from "./workload.js";

await describeWithDocker("rolling restart", () => {
  const cluster = useCluster({ name: "rolling" });

  it("loses no write and resurrects no delete while every node is restarted in turn", async () => {
    printLogsOnFailure(cluster);
    const c = cluster();
    const history = new History();
    const startedAt = Date.now();
    const workload = new Workload({
      cluster: c,
      history,
      keys: keyNames("rolling", 24),
      writers: 3,
      seed: 21,
      valuePrefix: "rolling",
      // Deletes matter here: a restarted node holds values deleted while it was down.
      mix: { readModifyWrite: 0.55, blindPut: 0.15, delete: 0.3 },
    }).start();
    let stats: WorkloadStats;
    const exitCodes: number[] = [];
    let deletesWhileDown = 0;
    try {
      await workload.waitForAcknowledged(100, "before the rolling restart");
      for (let i = 0; i < c.nodes.length; i++) {
        const id = c.node(i).id;
        const downAt = Date.now();
        exitCodes.push(await c.stop(i));
        await workload.waitForAcknowledged(120, `while ${id} is stopped`);
        deletesWhileDown += history.all.filter((w) => w.kind === "delete" && w.acknowledged && w.startedAt >= downAt).length;
        await c.start(i);
        await workload.waitForAcknowledged(80, `after ${id} restarted`);
      }
    } finally {
      stats = await workload.stop();
    }
    // SIGTERM reaches node (exec-form entrypoint) and it shuts down cleanly.
    expect(exitCodes).toEqual(c.nodes.map(() => 0));
    expect(deletesWhileDown, "no delete was acknowledged while a node was down").toBeGreaterThan(0);
    await verifyNothingLost("rolling restart", c, history, stats, startedAt);
  });
});
