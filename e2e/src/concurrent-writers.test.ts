// Invariants (docs/architecture.md) 2 (no lost update), 5 (bounded siblings) and 6 (read your
// writes) with concurrent writers on the same few keys through different coordinators:
//   1. blind writes from every writer to every key: none saw another, so each key must hold
//      exactly one sibling per acknowledged write;
//   2. a read-modify-write storm on the same keys: concurrent writes with the same context
//      become siblings, nothing acknowledged may vanish unseen;
//   3. a write with the context of an R=N read resolves each key to exactly that one value.
import { expect, it } from "vitest";
import { History } from "./checker.js";
import { decodeValue } from "./cluster.js";
import { describeWithDocker } from "./environment.js";
import { printLogsOnFailure, useCluster, verifyNothingLost } from "./suite.js";
import { keyNames, Workload } from "./workload.js";

const WRITERS = 6;
const HOT_KEYS = keyNames("hot", 4);

await describeWithDocker("concurrent writers", () => {
  const cluster = useCluster({ name: "concurrent" });
  const history = new History();

  it("keeps one sibling per concurrent blind write", async () => {
    printLogsOnFailure(cluster);
    const c = cluster();
    const startedAt = Date.now();
    await Promise.all(
      Array.from({ length: WRITERS }, async (_, writer) => {
        const node = c.node(writer % c.nodes.length);
        for (const key of HOT_KEYS) {
          const value = `blind.w${writer}.${key}`;
          const begin = Date.now();
          await node.client.put(key, value);
          history.record({ kind: "put", key, value, covers: [], acknowledged: true, node: node.id, startedAt: begin, endedAt: Date.now() });
        }
      }),
    );
    const report = await verifyNothingLost("concurrent blind writes", c, history, undefined, startedAt);
    expect(report.acknowledgedPuts).toBe(WRITERS * HOT_KEYS.length);
    for (const key of HOT_KEYS) {
      const read = await c.node(0).client.get(key, { r: c.n });
      expect(read?.values.map(decodeValue).sort()).toEqual(Array.from({ length: WRITERS }, (_, writer) => `blind.w${writer}.${key}`).sort());
    }
  });

  it("loses nothing when writers race read-modify-writes on the same keys", async () => {
    printLogsOnFailure(cluster);
    const c = cluster();
    const startedAt = Date.now();
    const workload = new Workload({
      cluster: c,
      history,
      keys: HOT_KEYS,
      writers: WRITERS,
      seed: 41,
      valuePrefix: "race",
      maxOpsPerWriter: 100,
      mix: { readModifyWrite: 0.85, blindPut: 0.15, delete: 0 },
    }).start();
    const stats = await workload.finished();
    expect(stats.acknowledged).toBeGreaterThan(0);
    const report = await verifyNothingLost("concurrent read-modify-writes", c, history, stats, startedAt);
    const siblings = await Promise.all(HOT_KEYS.map(async (key) => (await c.node(1).client.get(key, { r: c.n }))?.values.length ?? 0));
    console.log(`[e2e] concurrent read-modify-writes: siblings per key after the race: ${siblings.join(", ")}`);
    expect(report.acknowledgedPuts).toBeGreaterThan(WRITERS * HOT_KEYS.length);
  });

  it("resolves siblings with a write that carries the context of the read", async () => {
    printLogsOnFailure(cluster);
    const c = cluster();
    const startedAt = Date.now();
    for (const [i, key] of HOT_KEYS.entries()) {
      const node = c.node(i % c.nodes.length);
      const read = await node.client.get(key, { r: c.n });
      const covers = read?.values.map(decodeValue) ?? [];
      const value = `resolved.${key}`;
      const begin = Date.now();
      await node.client.put(key, value, read ? { context: read.context } : {});
      history.record({ kind: "put", key, value, covers, acknowledged: true, node: node.id, startedAt: begin, endedAt: Date.now() });
      // Read your writes (R + W > N), through another coordinator.
      const after = await c.node((i + 1) % c.nodes.length).client.get(key);
      expect(after?.values.map(decodeValue)).toEqual([value]);
    }
    await verifyNothingLost("sibling resolution", c, history, undefined, startedAt);
  });
});
