// Anti-entropy with real node processes: replicas converge without any client reading the keys.
import { cpSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DynamoClient } from "@dynamo-ts/client";
import { isDeleted, liveValues, type SiblingSet } from "@dynamo-ts/vclock";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { dynamo, eventually, TEST_SECRET, TestCluster } from "../test-support/cluster.js";

const text = (set: SiblingSet | undefined) =>
  set
    ? liveValues(set)
        .map((v) => new TextDecoder().decode(v))
        .sort()
    : undefined;

function adminClient(cluster: TestCluster, id: string): DynamoClient {
  return new DynamoClient({ node: cluster.node(id).address, clusterSecret: TEST_SECRET, timeoutMs: 60_000 });
}

/** Keys node `id` holds, from its anti-entropy trees (no read of any key). */
async function keysHeld(cluster: TestCluster, id: string): Promise<number> {
  const client = adminClient(cluster, id);
  try {
    const status = await client.antiEntropyStatus();
    if (!status.ready) throw new Error(`${id}'s trees are not built yet`);
    return status.ranges.reduce((sum, r) => sum + Number(r.keys), 0);
  } finally {
    client.close();
  }
}

async function counters(cluster: TestCluster, id: string): Promise<Record<string, number>> {
  const status = await cluster.status(id);
  return Object.fromEntries(Object.entries(status.counters).map(([k, v]) => [k, Number(v)]));
}

async function repair(cluster: TestCluster, id: string, range?: { start: number; end: number }) {
  const client = adminClient(cluster, id);
  try {
    return await client.repair(range);
  } finally {
    client.close();
  }
}

/** Runs `work` on 0..count-1 with at most `parallel` in flight. */
async function forEachBounded(count: number, parallel: number, work: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: parallel }, async () => {
      while (next < count) await work(next++);
    }),
  );
}

describe("3 nodes, N=3, hinted handoff off: anti-entropy alone repairs", () => {
  let cluster: TestCluster;
  const KEYS = 10_000;
  beforeAll(async () => {
    cluster = await TestCluster.start({
      nodes: 3,
      n: 3,
      args: [
        "--hinted-handoff",
        "false",
        "--anti-entropy-interval-ms",
        "500",
        "--anti-entropy-keys-per-second",
        "1000000",
        "--anti-entropy-bytes-per-second",
        String(1024 * 1024 * 1024),
      ],
    });
  }, 30_000);
  afterAll(async () => cluster?.stop());
  // A failed test must not leave nodes down for the next one.
  afterEach(async () => {
    for (const node of cluster?.nodes ?? []) if (!node.running) await node.start();
    await cluster?.waitAllAlive();
  });

  it(`brings ${KEYS} keys written while a replica was down onto it, with no read`, async () => {
    await cluster.node("n3").kill();
    const writer = cluster.client("n1");
    const writeStarted = Date.now();
    await forEachBounded(KEYS, 64, async (i) => {
      await writer.put(`ae-${i}`, `value-${i}`, { w: 2 });
    });
    const writeMs = Date.now() - writeStarted;
    const before = await Promise.all(["n1", "n2"].map((id) => counters(cluster, id)));

    await cluster.node("n3").start();
    const restarted = Date.now();
    // Polls n3's own count of keys (its trees), never a key: no read repair can help.
    await eventually(async () => expect(await keysHeld(cluster, "n3")).toBe(KEYS), 60_000, 100);
    const convergedMs = Date.now() - restarted;

    // Every key's digest, not only the count: n3's trees now equal its co-replicas' (roots only).
    // Each node's repair also waits for its own round still in flight, so the counters are final.
    for (const id of ["n3", "n1", "n2"]) {
      const check = await repair(cluster, id);
      expect(check.exchanges.map((e) => [e.outcome, e.hashesCompared])).toEqual([
        ["in-sync", 1n],
        ["in-sync", 1n],
      ]);
    }
    const after = await Promise.all(["n1", "n2", "n3"].map((id) => counters(cluster, id)));
    const delta = (name: string) => after.reduce((sum, c, i) => sum + (c[name] ?? 0) - (before[i]?.[name] ?? 0), 0);
    console.log(
      `anti-entropy convergence: ${KEYS} keys written in ${writeMs} ms while n3 was down; n3 held all ${KEYS} ` +
        `${convergedMs} ms after its restart (interval 500 ms); record bytes moved ${delta("anti_entropy_bytes_moved")}, ` +
        `keys fetched ${delta("anti_entropy_keys_fetched")}, keys pushed ${delta("anti_entropy_keys_pushed")}, ` +
        `keys repaired ${delta("anti_entropy_keys_repaired")}, hashes compared ${delta("anti_entropy_hashes_compared")}, ` +
        `exchanges ${delta("anti_entropy_exchanges") - 6} (all three nodes)`,
    );
    expect(delta("anti_entropy_keys_repaired")).toBeGreaterThanOrEqual(KEYS);

    // And the values themselves, a sample read from n3's store directly.
    for (let i = 0; i < KEYS; i += 97) expect(text(await cluster.readReplica("n3", `ae-${i}`))).toEqual([`value-${i}`]);
  });

  it("moves no keys when the cluster is idle and converged: only roots are compared", async () => {
    // Converged: each node's repair finds nothing to do.
    await eventually(
      async () => {
        for (const id of ["n1", "n2", "n3"]) {
          const res = await repair(cluster, id);
          expect(res.exchanges.length).toBeGreaterThan(0);
          for (const e of res.exchanges) expect([e.outcome, e.keysFetched, e.keysPushed]).toEqual(["in-sync", 0n, 0n]);
        }
      },
      30_000,
      200,
    );
    const before = await Promise.all(["n1", "n2", "n3"].map((id) => counters(cluster, id)));

    // Explicit repairs: one root per range and peer, nothing else.
    for (const id of ["n1", "n2", "n3"]) {
      const res = await repair(cluster, id);
      for (const e of res.exchanges) {
        expect(e.outcome).toBe("in-sync");
        expect(e.hashesCompared).toBe(1n);
        expect(e.keysFetched + e.keysPushed + e.bytesMoved).toBe(0n);
      }
    }
    // And several periodic rounds on every node: exchanges happen, keys do not move.
    await eventually(
      async () => {
        for (const [i, id] of ["n1", "n2", "n3"].entries()) {
          const now = await counters(cluster, id);
          expect((now["anti_entropy_rounds"] ?? 0) - (before[i]!["anti_entropy_rounds"] ?? 0)).toBeGreaterThanOrEqual(3);
        }
      },
      30_000,
      200,
    );
    let exchanges = 0;
    for (const [i, id] of ["n1", "n2", "n3"].entries()) {
      const now = await counters(cluster, id);
      const grew = (name: string) => (now[name] ?? 0) - (before[i]![name] ?? 0);
      exchanges += grew("anti_entropy_exchanges");
      expect(grew("anti_entropy_hashes_compared")).toBe(grew("anti_entropy_exchanges"));
      for (const name of ["anti_entropy_keys_fetched", "anti_entropy_keys_pushed", "anti_entropy_bytes_moved", "anti_entropy_keys_repaired"]) {
        expect(grew(name), `${id} ${name}`).toBe(0);
      }
    }
    // A pair of nodes exchanges a range once per interval, whichever of the two opens it.
    expect(exchanges).toBeGreaterThanOrEqual(3 * 2);
  });

  it("runs from the dynamo CLI: repair (all ranges or one) and ranges", async () => {
    const n1 = cluster.node("n1").address;
    const all = await dynamo("repair", "--node", n1, "--secret", TEST_SECRET);
    expect(all.stderr).toBe("");
    expect(all.code).toBe(0);
    expect(all.stdout).toMatch(
      /^2 exchanges over 1 ranges with n2, n3 in \S+: 2 in sync, 0 keys repaired \(0 fetched, 0 pushed\), 0 B moved, 2 hashes compared\n$/,
    );

    const one = await dynamo("repair", "--node", n1, "--secret", TEST_SECRET, "--range", "100:200", "--json");
    expect(one.code).toBe(0);
    expect(JSON.parse(one.stdout).exchanges).toHaveLength(2);

    expect((await dynamo("repair", "--node", n1)).code).toBe(2); // no secret
    expect((await dynamo("repair", "--node", n1, "--secret", TEST_SECRET, "--range", "5")).code).toBe(2);

    const ranges = await dynamo("ranges", "--node", n1, "--secret", TEST_SECRET);
    expect((await dynamo("ranges", "--node", n1)).code).toBe(1); // an admin call: Unauthenticated without the secret
    expect(ranges.code).toBe(0);
    expect(ranges.stdout).toMatch(/^anti-entropy every 500ms, at most 1000000 keys\/s/);
    expect(ranges.stdout).toMatch(/RANGE\s+PEERS\s+KEYS\s+LAST EXCHANGE/);
    expect(ranges.stdout).toContain("n2,n3");
  });

  it("converges a replica restored from an older copy of its data directory; deleted keys stay deleted", async () => {
    const writer = cluster.client("n1");
    const contexts = new Map<string, Uint8Array>();
    for (let i = 0; i < 60; i++) contexts.set(`restore-${i}`, (await writer.put(`restore-${i}`, `original-${i}`, { w: 3 })).context);

    const n2 = cluster.node("n2");
    const backup = mkdtempSync(join(tmpdir(), "dynamo-ae-backup-"));
    try {
      expect(await n2.stop()).toBe(0);
      cpSync(n2.dataDir, backup, { recursive: true });
      await n2.start();
      await cluster.waitAllAlive();

      // After the copy: updates, deletes and new keys, all acknowledged by n2 too (W=3).
      for (let i = 0; i < 20; i++) await writer.put(`restore-${i}`, `updated-${i}`, { w: 3, context: contexts.get(`restore-${i}`)! });
      for (let i = 20; i < 40; i++) await writer.delete(`restore-${i}`, { w: 3, context: contexts.get(`restore-${i}`)! });
      for (let i = 0; i < 20; i++) await writer.put(`restore-new-${i}`, `new-${i}`, { w: 3 });
      expect(isDeleted((await cluster.readReplica("n2", "restore-20"))!)).toBe(true);

      // Roll n2 back to the copy: it holds the originals again, the deleted keys alive, no new keys.
      expect(await n2.stop()).toBe(0);
      rmSync(n2.dataDir, { recursive: true, force: true });
      cpSync(backup, n2.dataDir, { recursive: true });
      await n2.start();
      expect(text(await cluster.readReplica("n2", "restore-0"))).toEqual(["original-0"]);
      expect(text(await cluster.readReplica("n2", "restore-20"))).toEqual(["original-20"]);

      // No reads through the API: anti-entropy alone brings n2 up to date.
      await eventually(
        async () => {
          for (let i = 0; i < 20; i++) expect(text(await cluster.readReplica("n2", `restore-${i}`))).toEqual([`updated-${i}`]);
          for (let i = 20; i < 40; i++) expect(isDeleted((await cluster.readReplica("n2", `restore-${i}`))!)).toBe(true);
          for (let i = 40; i < 60; i++) expect(text(await cluster.readReplica("n2", `restore-${i}`))).toEqual([`original-${i}`]);
          for (let i = 0; i < 20; i++) expect(text(await cluster.readReplica("n2", `restore-new-${i}`))).toEqual([`new-${i}`]);
        },
        30_000,
        200,
      );
      // The stale values did not travel the other way either.
      for (const id of ["n1", "n3"]) {
        for (let i = 20; i < 40; i++) expect(isDeleted((await cluster.readReplica(id, `restore-${i}`))!)).toBe(true);
      }
      for (let i = 20; i < 40; i++) expect(await writer.get(`restore-${i}`, { r: 3 })).toBeNull();
      for (let i = 20; i < 40; i++) expect(isDeleted((await cluster.readReplica("n2", `restore-${i}`))!)).toBe(true);
    } finally {
      rmSync(backup, { recursive: true, force: true });
    }
  });
});

describe("3 nodes, N=3, short tombstone grace: the tombstone rule", () => {
  let cluster: TestCluster;
  beforeAll(async () => {
    cluster = await TestCluster.start({
      nodes: 3,
      n: 3,
      args: [
        "--hinted-handoff",
        "false",
        "--hint-ttl-ms",
        "1000",
        "--tombstone-grace-ms",
        "2000",
        "--tombstone-sweep-interval-ms",
        "250",
        "--anti-entropy-interval-ms",
        "300",
      ],
    });
  }, 30_000);
  afterAll(async () => cluster?.stop());

  it("never copies a purged key back from a replica restored from a copy older than the purge", async () => {
    const writer = cluster.client("n1");
    const { context } = await writer.put("zombie", "brains", { w: 3 });
    const n3 = cluster.node("n3");
    const backup = mkdtempSync(join(tmpdir(), "dynamo-ae-backup-"));
    try {
      expect(await n3.stop()).toBe(0);
      cpSync(n3.dataDir, backup, { recursive: true });
      await n3.start();
      await cluster.waitAllAlive();

      // Deleted everywhere, then purged everywhere once the grace period passed.
      await writer.delete("zombie", { w: 3, context });
      for (const id of ["n1", "n2", "n3"]) await eventually(async () => expect(await cluster.readReplica(id, "zombie")).toBeUndefined(), 20_000, 100);

      // n3 comes back from the copy taken before the delete: it holds the old value again.
      expect(await n3.stop()).toBe(0);
      rmSync(n3.dataDir, { recursive: true, force: true });
      cpSync(backup, n3.dataDir, { recursive: true });
      await n3.start();
      expect(text(await cluster.readReplica("n3", "zombie"))).toEqual(["brains"]);

      // A key n2 misses while it is down, held by n1 and n3: it must still reach n2.
      await cluster.node("n2").kill();
      await writer.put("missed-by-n2", "kept", { w: 2 });
      await cluster.node("n2").start();

      // Anti-entropy repairs what is legitimately missing...
      await eventually(async () => expect(text(await cluster.readReplica("n2", "missed-by-n2"))).toEqual(["kept"]), 20_000, 100);
      // ...and withholds the old key that only the restored replica holds, on every side.
      await eventually(
        async () => {
          const withheld = await Promise.all(["n1", "n2", "n3"].map(async (id) => (await counters(cluster, id))["anti_entropy_keys_withheld"] ?? 0));
          expect(withheld.every((count) => count > 0)).toBe(true);
        },
        20_000,
        200,
      );
      for (const id of ["n1", "n2"]) expect(await cluster.readReplica(id, "zombie")).toBeUndefined();
      const res = await repair(cluster, "n3");
      expect(res.exchanges.map((e) => [e.peer, e.keysWithheld])).toEqual([
        ["n1", 1n],
        ["n2", 1n],
      ]);
      for (const id of ["n1", "n2"]) expect(await cluster.readReplica(id, "zombie")).toBeUndefined();
    } finally {
      rmSync(backup, { recursive: true, force: true });
    }
  });
});
