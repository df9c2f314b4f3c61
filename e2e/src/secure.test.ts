// The kill -9 suite with security on: TLS on every node's port and mutual TLS between nodes
// (certificates made by openssl), and a bearer token required of every client. Writers keep
// writing while one node is killed and restarted on its data; nothing acknowledged may be lost,
// and a client without a token is refused throughout.
import { DynamoClient } from "@dynamo-ts/client";
import { expect, it } from "vitest";
import { History } from "./checker.js";
import { describeWithDocker } from "./environment.js";
import { printLogsOnFailure, useCluster, verifyNothingLost } from "./suite.js";
import { keyNames, Workload, type WorkloadStats } from "./workload.js";

await describeWithDocker("kill -9 and restart with TLS and client tokens", () => {
  const cluster = useCluster({ name: "secure", secure: true });

  it("keeps every acknowledged write when one node is killed -9 and restarted under load, over mutual TLS with tokens", async () => {
    printLogsOnFailure(cluster);
    const c = cluster();
    // The CA but no token: Unauthenticated.
    const anonymous = new DynamoClient({ node: `127.0.0.1:${c.node(0).hostPort}`, ca: c.caPem() });
    await expect(anonymous.put("no-token", "x")).rejects.toMatchObject({ codeName: "Unauthenticated" });
    anonymous.close();

    const history = new History();
    const startedAt = Date.now();
    const workload = new Workload({ cluster: c, history, keys: keyNames("secure", 24), writers: 3, seed: 31, valuePrefix: "secure" }).start();
    let stats: WorkloadStats;
    let killedAt: number;
    let restartedAt: number;
    try {
      await workload.waitForAcknowledged(200, "before the kill");
      killedAt = Date.now();
      await c.kill(1);
      await workload.waitForAcknowledged(300, "while node2 is down");
      restartedAt = Date.now();
      await c.start(1);
      await workload.waitForAcknowledged(200, "after node2 restarted");
    } finally {
      stats = await workload.stop();
    }
    expect(history.acknowledgedBetween(killedAt, restartedAt)).toBeGreaterThan(0);
    await verifyNothingLost("kill -9 one node, TLS and tokens on", c, history, stats, startedAt);
  });
});
