// Hints stay bounded whatever clients do while a replica is down, with real processes: one hint
// per key and target (newer writes merge into it), byte caps with counted refusals, and what
// the caps refused still reaches the replica through anti-entropy.
import { DynamoClient } from "@dynamo-ts/client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { eventually, TEST_SECRET, TestCluster } from "../test-support/cluster.js";

async function hintsOf(cluster: TestCluster, id: string) {
  const client = new DynamoClient({ node: cluster.node(id).address, httpVersion: "1.1", clusterSecret: TEST_SECRET });
  try {
    return await client.hints();
  } finally {
    client.close();
  }
}

describe("3 nodes, N=3, one replica down: one hint per key", () => {
  let cluster: TestCluster;
  beforeAll(async () => {
    cluster = await TestCluster.start({ nodes: 3, args: ["--hint-interval-ms", "200"] });
  }, 30_000);
  afterAll(async () => cluster?.stop());

  it("keeps one merged hint for a key written 200 times, blind or not, and delivers the latest state", async () => {
    await cluster.node("n3").kill();
    const client = cluster.client("n1");
    const value = "v".repeat(10_000);
    // Read-modify-writes and blind writes, all to one key; past 100 siblings the blind ones are refused.
    let refused = 0;
    for (let i = 0; i < 200; i++) {
      if (i % 2 === 0) {
        const read = await client.get("hot");
        await client.put("hot", `rmw-${i}:${value}`, { context: read?.context });
      } else {
        await client.put("hot", `blind-${i}:${value}`).catch(() => refused++);
      }
    }
    const hints = await hintsOf(cluster, "n1");
    const forN3 = hints.targets.find((t) => t.nodeId === "n3")!;
    expect(Number(forN3.count)).toBe(1);
    // One record's worth, not 200: at most the key's siblings (under 100 of 10 KB).
    expect(Number(forN3.bytes)).toBeLessThan(1_100_000);
    expect(Number(hints.merged)).toBeGreaterThanOrEqual(150);

    await cluster.node("n3").start();
    await eventually(async () => expect(Number((await hintsOf(cluster, "n1")).bytes)).toBe(0));
    const onN3 = await cluster.readReplica("n3", "hot");
    const onN1 = await cluster.readReplica("n1", "hot");
    expect(onN3!.siblings.length).toBe(onN1!.siblings.length);
  });
});

describe("3 nodes, N=3, a 1 MiB hint cap per target", () => {
  let cluster: TestCluster;
  beforeAll(async () => {
    cluster = await TestCluster.start({
      nodes: 3,
      args: ["--hint-interval-ms", "200", "--max-hint-bytes-per-target", String(1024 * 1024), "--anti-entropy-interval-ms", "500"],
    });
  }, 30_000);
  afterAll(async () => cluster?.stop());

  it("refuses hints past the cap (counted), acknowledges every write, and the replica still gets every key", async () => {
    await cluster.node("n3").kill();
    const client = cluster.client("n1");
    const value = new Uint8Array(60_000).fill(3);
    const keys = Array.from({ length: 40 }, (_, i) => `capped-${i}`);
    for (const key of keys) await client.put(key, value);
    const hints = await hintsOf(cluster, "n1");
    expect(Number(hints.bytes)).toBeLessThanOrEqual(1024 * 1024);
    expect(Number(hints.refused)).toBeGreaterThan(0);
    expect(Number(hints.targets.find((t) => t.nodeId === "n3")!.count)).toBeLessThan(keys.length);

    await cluster.node("n3").start();
    await eventually(async () => {
      for (const key of keys) expect(await cluster.readReplica("n3", key), key).toBeDefined();
    }, 30_000);
  });
});
