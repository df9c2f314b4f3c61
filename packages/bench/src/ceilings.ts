// The machine's ceilings, measured by the same closed loop as the workloads so that the ratio
// of the two is honest on a noisy machine:
//  - transport: the client's RPC stack against a call that does nothing (grpc.health.v1
//    Health/Check: no storage, no replication) on one node;
//  - storage: raw classic-level (LevelDB) in this process, the engine under every node.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createClient } from "@connectrpc/connect";
import { createDynamoTransport, type Protocol } from "@dynamo-ts/client";
import { Health } from "@dynamo-ts/proto";
import { ClassicLevel } from "classic-level";
import { workerRng } from "./random.js";
import { type PhaseLimits, type PhaseOptions, type PhaseResult, type Progress, runPhase } from "./runner.js";
import { ValuePool } from "./values.js";

export interface CeilingRunOptions {
  readonly concurrency: number;
  readonly limits: PhaseLimits;
  readonly seed: number;
  readonly signal?: AbortSignal;
  readonly onProgress?: (progress: Progress) => void;
  /** Each sub-measurement ended. */
  readonly onPhaseEnd?: (result: PhaseResult) => void;
}

export interface TransportCeilingOptions extends CeilingRunOptions {
  readonly node: string;
  readonly protocol: Protocol;
  /** As DynamoClient's `httpVersion` option (default 2). */
  readonly httpVersion?: "1.1" | "2";
  /** As DynamoClient's `lean` option (default true). */
  readonly lean?: boolean;
  readonly timeoutMs: number;
  /** The cluster CA (TLS on), as the clients use it. */
  readonly ca?: string;
}

export interface TransportCeiling extends PhaseResult {
  readonly node: string;
  readonly method: string;
}

/**
 * Health/Check at `concurrency` in flight over the transport DynamoClient itself uses
 * (createDynamoTransport of @dynamo-ts/client, with the run's protocol and HTTP version), so
 * the ceiling is the client's stack, not a faster one.
 */
export async function measureTransportCeiling(options: TransportCeilingOptions): Promise<TransportCeiling> {
  const { transport, close } = createDynamoTransport({
    node: options.node,
    protocol: options.protocol,
    ...(options.httpVersion ? { httpVersion: options.httpVersion } : {}),
    lean: options.lean ?? true,
    ...(options.ca ? { ca: options.ca } : {}),
  });
  const health = createClient(Health, transport);
  const call = { timeoutMs: options.timeoutMs };
  try {
    const result = await runPhase({
      name: "transport ceiling",
      concurrency: options.concurrency,
      limits: options.limits,
      signal: options.signal,
      onProgress: options.onProgress,
      createSource: () => () => ({
        kind: "check",
        execute: async () => {
          await health.check({}, call);
        },
      }),
    });
    return { ...result, node: options.node, method: "grpc.health.v1.Health/Check" };
  } finally {
    close();
  }
}

export interface StorageCeilingOptions extends CeilingRunOptions {
  readonly valueSize: number;
  /** Distinct keys to write and then read (the workloads' record count). */
  readonly keys: number;
  /** Writes per batch in the durable measurement (the node's group commit). */
  readonly batchSize: number;
  /** Parent of the temporary database directory; the OS temp dir when omitted. */
  readonly parentDir?: string;
}

export interface StorageCeiling {
  /** Awaited puts, `concurrency` in flight. */
  readonly put: PhaseResult;
  /** Awaited gets of written keys, `concurrency` in flight. */
  readonly get: PhaseResult;
  /** Awaited `sync: true` puts (fsync each), `concurrency` in flight. */
  readonly syncPut: PhaseResult;
  /** `sync: true` batches of `batchSize` puts, one at a time, as the node's group commit writes them; throughput counts puts. */
  readonly syncBatchPut: PhaseResult;
  readonly batchSize: number;
}

export async function measureStorageCeiling(options: StorageCeilingOptions): Promise<StorageCeiling> {
  if (!Number.isInteger(options.keys) || options.keys < 1) throw new RangeError(`the storage ceiling needs at least one key, got ${options.keys}`);
  if (!Number.isInteger(options.batchSize) || options.batchSize < 1) throw new RangeError(`batch size must be a positive integer, got ${options.batchSize}`);
  const dir = mkdtempSync(join(options.parentDir ?? tmpdir(), "dynamo-bench-storage-"));
  const db = new ClassicLevel<string, Uint8Array>(dir, { keyEncoding: "utf8", valueEncoding: "view" });
  const values = new ValuePool(options.valueSize, options.seed);
  const key = (i: number) => `bench-storage:${i}`;
  const common = { concurrency: options.concurrency, limits: options.limits, signal: options.signal, onProgress: options.onProgress };
  const measure = async (phase: PhaseOptions): Promise<PhaseResult> => {
    const result = await runPhase(phase);
    options.onPhaseEnd?.(result);
    return result;
  };
  // Puts cycle through the key space so that, once it has been written, every get finds its key.
  let nextKey = 0;
  let written = 0;
  const putSource = (phase: string, sync: boolean) => (worker: number) => {
    const rng = workerRng(options.seed, phase, worker);
    return () => ({
      kind: "put",
      execute: async () => {
        const i = nextKey++ % options.keys;
        await db.put(key(i), values.next(rng), { sync });
        written = Math.max(written, i + 1);
      },
    });
  };
  try {
    await db.open();
    const put = await measure({ ...common, name: "storage ceiling: put", createSource: putSource("storage put", false) });
    const get = await measure({
      ...common,
      name: "storage ceiling: get",
      createSource: (worker) => {
        const rng = workerRng(options.seed, "storage get", worker);
        return () => ({
          kind: "get",
          execute: async () => {
            const value = await db.get(key(rng.nextInt(Math.max(1, written))));
            return { notFound: value === undefined };
          },
        });
      },
    });
    const syncPut = await measure({ ...common, name: "storage ceiling: put sync", createSource: putSource("storage put sync", true) });
    const syncBatchPut = await measure({
      ...common,
      concurrency: 1,
      name: "storage ceiling: batch sync",
      createSource: (worker) => {
        const rng = workerRng(options.seed, "storage batch sync", worker);
        return () => ({
          kind: "batch",
          execute: async () => {
            const batch = db.batch();
            for (let j = 0; j < options.batchSize; j++) batch.put(key(nextKey++ % options.keys), values.next(rng));
            await batch.write({ sync: true });
            return { operations: options.batchSize };
          },
        });
      },
    });
    return { put, get, syncPut, syncBatchPut, batchSize: options.batchSize };
  } finally {
    await db.close().catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
  }
}
