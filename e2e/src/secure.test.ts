// The kill -9 suite with security on: TLS on every node's port and mutual TLS between nodes
// (certificates made by openssl), and a bearer token required of every client. Writers keep
// writing while one node is killed and restarted on its data; nothing acknowledged may be lost,
// and a client without a token is refused throughout.
import { DynamoClient } from "@dynamo-ts/client";
import { expect, it } from "vitest";
import { describeWithDocker } from "./environment.js";
import { killOneAndRestartUnderLoad, printLogsOnFailure, useCluster } from "./suite.js";

await describeWithDocker("kill -9 and restart with TLS and client tokens", () => {
  const cluster = useCluster({ name: "secure", secure: true });

  it("keeps every acknowledged write when one node is killed -9 and restarted under load, over mutual TLS with tokens", async () => {
    printLogsOnFailure(cluster);
    const c = cluster();
    // The CA but no token: Unauthenticated.
    const anonymous = new DynamoClient({ node: `127.0.0.1:${c.node(0).hostPort}`, ca: c.caPem() });
    await expect(anonymous.put("no-token", "x")).rejects.toMatchObject({ codeName: "Unauthenticated" });
    anonymous.close();

    await killOneAndRestartUnderLoad(c, "kill -9 one node, TLS and tokens on", "secure", 31, 300);
  });
});
