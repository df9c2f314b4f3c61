import { Ring } from "@dynamo-ts/ring";
import { emptySet, type SiblingSet, update } from "@dynamo-ts/vclock";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { jsonLogger } from "../observability/log.js";
import type { Replicas } from "../requests/replicas.js";
import { openTempReplica, type TempReplica } from "../test-support/temp-replica.js";
import { isPurgeable, type StrayKeys, TombstoneCollector } from "./tombstones.js";

const value = new TextEncoder().encode("v");
const written = update(emptySet(), new Map(), "a", value, 1_000);
const deleted: SiblingSet = update(written, written.clock, "a", null, 2_000);

describe("isPurgeable (tombstone collection rule)", () => {
  it("allows purging only identical tombstone-only sets on every replica after the grace period", () => {
    expect(isPurgeable([deleted, deleted, deleted], 3, 10_000, 5_000)).toBe(true);
  });
  it("refuses within the grace period", () => {
    expect(isPurgeable([deleted, deleted, deleted], 3, 6_000, 5_000)).toBe(false);
  });
  it("refuses when a replica did not answer or holds something else", () => {
    expect(isPurgeable([deleted, deleted, undefined], 3, 10_000, 5_000)).toBe(false);
    expect(isPurgeable([deleted, deleted, written], 3, 10_000, 5_000)).toBe(false);
    expect(isPurgeable([deleted, deleted], 3, 10_000, 5_000)).toBe(false);
  });
  it("refuses live values and concurrent writes beside a tombstone", () => {
    const concurrent = update(deleted, new Map(), "b", value, 2_500);
    expect(isPurgeable([written, written, written], 3, 10_000, 5_000)).toBe(false);
    expect(isPurgeable([concurrent, concurrent, concurrent], 3, 10_000, 5_000)).toBe(false);
    expect(isPurgeable([emptySet(), emptySet(), emptySet()], 3, 10_000, 5_000)).toBe(false);
  });
});

describe("TombstoneCollector: keys this node no longer owns (stray keys)", () => {
  const NOW = 1_000_000;
  const ring = new Ring(["n1", "n2", "n3", "n4"]);
  const n = 2;
  const keys = Array.from({ length: 200 }, (_, i) => `key-${i}`);
  const owned = keys.filter((key) => ring.preferenceList(key, n).includes("n1"));
  const stray = keys.filter((key) => !owned.includes(key));
  let temp: TempReplica;
  let removedEvents: string[];
  beforeEach(async () => {
    temp = await openTempReplica({ nodeId: "n1", prefix: "dynamo-strays-" });
    for (const key of keys) await temp.replica.apply(key, update(emptySet(), new Map(), "n9", value, 1_000));
    removedEvents = [];
    temp.replica.onChange((change) => {
      if (change.after === undefined) removedEvents.push(change.key);
    });
  });
  afterEach(() => temp.close());

  const collector = (settledSince: number | undefined, cleanupDelayMs = 1_000, remove?: StrayKeys["remove"]) => {
    const replicas: Replicas = { endpoint: () => temp.replica, isAvailable: () => true };
    return new TombstoneCollector(
      { nodeId: "n1", n, graceMs: 5_000, intervalMs: 60_000, maxPerSweep: 10, cleanupDelayMs },
      temp.storage,
      () => ring,
      replicas,
      () => Promise.resolve(false),
      temp.metrics,
      jsonLogger("n1", () => {}, "silent"),
      { settledSince: () => settledSince, remove: remove ?? ((key, scanned) => temp.replica.removeStray(key, scanned)) },
      () => NOW,
    );
  };
  const held = async () => {
    const present: string[] = [];
    for (const key of keys) if ((await temp.storage.get(key)) !== undefined) present.push(key);
    return present;
  };

  it("removes them once the ring has stayed unchanged for the delay, and keeps every key this node owns", async () => {
    expect(owned.length).toBeGreaterThan(50);
    expect(stray.length).toBeGreaterThan(50);
    await collector(NOW - 1_000).sweep();
    expect(await held()).toEqual(owned);
    expect(removedEvents.sort()).toEqual([...stray].sort());
    expect(temp.metrics.get("stray_keys_removed")).toBe(stray.length);
  });

  it("keeps them while the ring changes shape, before the delay has passed, and when the delay is 0", async () => {
    await collector(undefined).sweep();
    await collector(NOW - 999).sweep();
    await collector(NOW - 10_000_000, 0).sweep();
    expect(await held()).toEqual(keys);
    expect(removedEvents).toEqual([]);
  });

  it("keeps a key written again after the scan saw it", async () => {
    const rewritten = stray[0]!;
    await collector(NOW - 1_000, 1_000, async (key, scanned) => {
      if (key === rewritten) await temp.replica.apply(key, update(scanned, scanned.clock, "n9", value, 2_000));
      return temp.replica.removeStray(key, scanned);
    }).sweep();
    expect(await held()).toEqual(keys.filter((key) => owned.includes(key) || key === rewritten));
  });
});
