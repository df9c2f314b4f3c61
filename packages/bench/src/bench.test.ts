import { describe, expect, it } from "vitest";
import { cpuPerOperation, ratios } from "./bench.js";
import type { StorageCeiling } from "./ceilings.js";
import type { LatencySummary } from "./latency.js";
import type { PhaseResult } from "./runner.js";

function latency(count: number): LatencySummary {
  return { count, meanMs: 1, p50Ms: 1, p95Ms: 1, p99Ms: 1, p999Ms: 1, maxMs: 1 };
}

function phase(throughput: number, counts: Record<string, number> = {}, requestsPerSecond = throughput): PhaseResult {
  return {
    name: "p",
    concurrency: 1,
    operations: 0,
    requests: 0,
    durationMs: 1000,
    throughput,
    requestsPerSecond,
    errors: { total: 0, byCode: {}, samples: {} },
    notFound: 0,
    siblingReads: 0,
    latency: Object.fromEntries(Object.entries(counts).map(([k, c]) => [k, latency(c)])),
    interrupted: false,
  };
}

const storage: StorageCeiling = { put: phase(100_000), get: phase(200_000), syncPut: phase(10_000), syncBatchPut: phase(150_000), batchSize: 100 };

describe("ratios", () => {
  it("divides by the transport ceiling, in operations and in RPCs", () => {
    const r = ratios(phase(1_000, { read: 1 }, 1_500), phase(4_000), undefined);
    expect(r.throughputToTransport).toBe(0.25);
    expect(r.requestsToTransport).toBe(0.375);
    expect(r.throughputToStorage).toBeUndefined();
  });

  it("divides by what storage sustains for the measured mix of gets and puts", () => {
    // Half reads (5 µs of storage each), half updates (10 µs): 7.5 µs per operation on average.
    const r = ratios(phase(1_000, { read: 500, update: 500 }), undefined, storage);
    expect(r.throughputToStorage).toBeCloseTo(1_000 / (1 / 7.5e-6), 10);
    // A read-modify-write costs a get and a put.
    const f = ratios(phase(1_000, { readModifyWrite: 10 }), undefined, storage);
    expect(f.throughputToStorage).toBeCloseTo(1_000 * 15e-6, 10);
    expect(r.throughputToTransport).toBeUndefined();
  });

  it("leaves out ratios to a ceiling that measured nothing", () => {
    expect(ratios(phase(1_000, { read: 1 }), phase(0), { ...storage, get: phase(0) })).toEqual({});
  });
});

describe("cpuPerOperation", () => {
  const at = (nodeMicroseconds: bigint | undefined, user: number, system: number) => ({ nodeMicroseconds, client: { user, system } });

  it("divides the nodes' and this process's CPU time over the window by the operations", () => {
    expect(cpuPerOperation(at(1_000_000n, 500, 100), at(3_000_000n, 400_500, 200_100), 4_000)).toEqual({
      nodeMsPerOperation: 0.5,
      clientMsPerOperation: 0.15,
    });
  });

  it("leaves the nodes out when one did not report, and gives nothing without operations", () => {
    expect(cpuPerOperation(at(undefined, 0, 0), at(5n, 1_000, 0), 1)).toEqual({ clientMsPerOperation: 1 });
    expect(cpuPerOperation(at(10n, 0, 0), at(5n, 1_000, 0), 1)).toEqual({ clientMsPerOperation: 1 });
    expect(cpuPerOperation(at(0n, 0, 0), at(5n, 1_000, 0), 0)).toBeUndefined();
  });
});
