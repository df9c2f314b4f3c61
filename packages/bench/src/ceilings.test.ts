import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { measureStorageCeiling } from "./ceilings.js";

describe("measureStorageCeiling", () => {
  let parent: string;
  beforeEach(() => {
    parent = mkdtempSync(join(tmpdir(), "dynamo-bench-test-"));
  });
  afterEach(() => {
    rmSync(parent, { recursive: true, force: true });
  });

  it("measures put, get, sync put and sync batches in a temporary LevelDB it removes", async () => {
    const storage = await measureStorageCeiling({
      concurrency: 8,
      limits: { operations: 400 },
      seed: 1,
      valueSize: 100,
      keys: 200,
      batchSize: 10,
      parentDir: parent,
    });
    for (const phase of [storage.put, storage.get, storage.syncPut]) {
      expect(phase.operations).toBe(400);
      expect(phase.errors.total).toBe(0);
      expect(phase.throughput).toBeGreaterThan(0);
      expect(Number.isFinite(phase.throughput)).toBe(true);
    }
    // Every key was written before the gets, so every get found its key.
    expect(storage.get.notFound).toBe(0);
    // 400 batches of 10 puts; throughput counts puts.
    expect(storage.syncBatchPut.operations).toBe(4_000);
    expect(storage.syncBatchPut.latency.batch!.count).toBe(400);
    expect(storage.batchSize).toBe(10);
    expect(readdirSync(parent)).toEqual([]);
  });

  it("rejects an empty key space", async () => {
    await expect(
      measureStorageCeiling({ concurrency: 1, limits: { operations: 1 }, seed: 1, valueSize: 1, keys: 0, batchSize: 1, parentDir: parent }),
    ).rejects.toThrow(RangeError);
  });
});
