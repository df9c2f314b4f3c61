// A node's data directory, with real processes: a node that lost its data does not answer reads
// as a replica until it has rebuilt them, and a directory of another node or cluster is refused.
import { execFile } from "node:child_process";
import { rmSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { eventually, freePort, TestCluster } from "../test-support/cluster.js";

describe("3 nodes, N=3: a node restarted without its data", () => {
  let cluster: TestCluster;
  beforeAll(async () => {
    // Periodic anti-entropy off: only the rebuild of the wiped node moves data.
    cluster = await TestCluster.start({ nodes: 3, args: ["--anti-entropy-interval-ms", "0", "--read-repair", "off"] });
  }, 30_000);
  afterAll(async () => cluster?.stop());

  for (const wiped of ["its data store", "its whole data directory"]) {
    it(`answers no read from ${wiped.replace("its", "an emptied")} until it rebuilt it, and no acknowledged key reads NotFound`, async () => {
      const prefix = wiped.includes("whole") ? "dir" : "store";
      const keys = Array.from({ length: 50 }, (_, i) => `${prefix}-${i}`);
      const writer = cluster.client("n1");
      for (const key of keys) await writer.put(key, `value-of-${key}`, { w: 3 });
      const n3 = cluster.node("n3");
      await n3.kill();
      rmSync(wiped.includes("whole") ? n3.dataDir : join(n3.dataDir, "data"), { recursive: true, force: true });
      await n3.start();

      // R=1 through the wiped node: its own (empty) replica must not be the one answering.
      const reader = cluster.client("n3");
      for (const key of keys)
        expect(
          (await reader.get(key, { r: 1 }))?.values.map((v) => Buffer.from(v).toString()),
          key,
        ).toEqual([`value-of-${key}`]);

      await cluster.waitRebuilt();
      for (const key of keys) expect(await cluster.readReplica("n3", key), key).toBeDefined();
      const status = await cluster.status("n3");
      expect(status.rebuilding).toBe(false);
      expect(Number(status.counters["anti_entropy_keys_repaired"] ?? 0)).toBeGreaterThanOrEqual(keys.length);
    });
  }

  it("stays rebuilt across a restart (the identity file records it)", async () => {
    const n3 = cluster.node("n3");
    await n3.restart();
    expect((await cluster.status("n3")).rebuilding).toBe(false);
  });
});

describe("a data directory that belongs to someone else", () => {
  let cluster: TestCluster;
  beforeAll(async () => {
    cluster = await TestCluster.start({ nodes: 1, n: 1 });
  }, 30_000);
  afterAll(async () => cluster?.stop());

  const main = join(import.meta.dirname, "../../dist/main.js");
  const run = async (...args: string[]) => {
    try {
      await promisify(execFile)(process.execPath, [main, ...args], { timeout: 10_000 });
      return { code: 0, stderr: "" };
    } catch (err) {
      const e = err as { code: number; stderr: string };
      return { code: e.code, stderr: e.stderr };
    }
  };

  it("refuses to start another node, or a node of another cluster, on it", async () => {
    const n1 = cluster.node("n1");
    await n1.kill();
    const listen = `127.0.0.1:${await freePort()}`;
    const other = await run("--node-id", "n9", "--listen", listen, "--data-dir", n1.dataDir, "--cluster-secret", "integration-test-secret-0123456789");
    expect(other.code).toBe(1);
    expect(other.stderr).toMatch(/belongs to node n1, not n9/);
    const foreign = await run("--node-id", "n1", "--listen", listen, "--data-dir", n1.dataDir, "--cluster-secret", "another-cluster-secret-0123456789");
    expect(foreign.code).toBe(1);
    expect(foreign.stderr).toMatch(/written by a node of another cluster/);
    await n1.start();
    await eventually(async () => expect((await cluster.status("n1")).nodeId).toBe("n1"));
  });
});
