// A benchmark run: ceilings, the load phase, then each workload, against a running cluster.
import { randomBytes } from "node:crypto";
import { DynamoClient, type Protocol, type ResolvedCredentials } from "@dynamo-ts/client";
import { measureStorageCeiling, measureTransportCeiling, type StorageCeiling, type TransportCeiling } from "./ceilings.js";
import { type Rng, workerRng } from "./random.js";
import { type PhaseLimits, type PhaseResult, type Progress, runPhase, type Step, type StepOutcome } from "./runner.js";
import { ValuePool } from "./values.js";
import { chooseOperation, type Distribution, keyChooser, keyName, KeySpace, type OperationKind, WORKLOADS, type WorkloadName } from "./workloads.js";

export type Ceiling = "transport" | "storage";
export const CEILINGS: readonly Ceiling[] = ["transport", "storage"];

export interface BenchOptions {
  /** The cluster secret and/or a bearer token the clients carry (status needs admin credentials). */
  readonly credentials?: ResolvedCredentials;
  /** host:port of the nodes; workers are spread over them round-robin. */
  readonly nodes: readonly string[];
  readonly records: number;
  /** Per workload; give this or durationMs (both: whichever comes first). */
  readonly operations?: number;
  readonly durationMs?: number;
  /** Unmeasured time at the start of every measured phase (load excepted). */
  readonly warmupMs: number;
  readonly concurrency: number;
  /**
   * Workload operations started per second, all clients together, on a fixed schedule (open
   * loop; latency counts from when each was due). Undefined: closed loop, as fast as the clients go.
   */
  readonly rate?: number;
  readonly valueSize: number;
  /** Overrides each workload's own key distribution. */
  readonly distribution?: Distribution;
  readonly r?: number;
  readonly w?: number;
  readonly seed: number;
  readonly workloads: readonly WorkloadName[];
  readonly protocol: Protocol;
  /**
   * HTTP version of every call (gRPC needs 2). Default: 1.1 for Connect and gRPC-Web, 2 for gRPC.
   * Node's HTTP/2 client keeps much of what each request allocates past a young-generation GC,
   * so at high call rates its scavenges pause the load generator for 10-20 ms; its HTTP/1.1
   * client does not (docs/performance.md, thirteenth pass).
   */
  readonly httpVersion?: "1.1" | "2";
  /** The client's lean unary calls (Connect); false: every call through connect-node. */
  readonly leanClient: boolean;
  readonly timeoutMs: number;
  /** Keys are `${keyPrefix}${index}`; a fresh prefix per run keeps runs from creating siblings of each other's keys. */
  readonly keyPrefix: string;
  /** Which ceilings to measure before the workloads (none: no ratios). */
  readonly ceilings: readonly Ceiling[];
  /** Length of each ceiling measurement. */
  readonly ceilingDurationMs: number;
  /** Node the transport ceiling calls; default the first. */
  readonly ceilingNode?: string;
  /** Writes per batch in the durable storage ceiling. */
  readonly storageBatchSize: number;
  /** Parent directory of the storage ceiling's temporary database. */
  readonly storageDir?: string;
}

export const DEFAULT_OPTIONS = {
  nodes: ["127.0.0.1:7001"],
  records: 10_000,
  warmupMs: 1_000,
  concurrency: 64,
  valueSize: 100,
  seed: 1,
  workloads: ["A", "B", "C", "D", "F"],
  protocol: "connect",
  leanClient: true,
  timeoutMs: 5_000,
  ceilings: ["transport", "storage"],
  ceilingDurationMs: 5_000,
  storageBatchSize: 100,
} as const satisfies Partial<BenchOptions>;

export const DEFAULT_DURATION_MS = 10_000;

export function freshKeyPrefix(): string {
  return `bench-${randomBytes(4).toString("hex")}:`;
}

export interface ClusterInfo {
  readonly nodes: readonly string[];
  readonly n: number;
  readonly r: number;
  readonly w: number;
  readonly version: string;
  /** Members the first node sees and their state. */
  readonly members: readonly { readonly nodeId: string; readonly address: string; readonly state: string }[];
}

export interface Ratios {
  /** Workload operations per second / transport ceiling calls per second. */
  readonly throughputToTransport?: number;
  /** Workload RPCs per second / transport ceiling calls per second (F makes 2 RPCs per read-modify-write). */
  readonly requestsToTransport?: number;
  /** Workload throughput / what raw storage sustains for the same mix of gets and puts. */
  readonly throughputToStorage?: number;
}

export interface WorkloadResult extends PhaseResult {
  readonly workload: WorkloadName;
  readonly description: string;
  readonly distribution: Distribution;
  readonly ratios: Ratios;
  /** Increase of the nodes' counters (summed over the nodes) during the workload, warm-up included. */
  readonly clusterCounters?: Readonly<Record<string, number>>;
  /** CPU time per measured operation, over the measured part of the workload (after the warm-up). */
  readonly cpu?: CpuPerOperation;
}

export interface CpuPerOperation {
  /** User + system CPU of the nodes given with --nodes, summed, per operation (ms); absent when a node did not report it. */
  readonly nodeMsPerOperation?: number;
  /** User + system CPU of this bench process per operation (ms): the client's share of the machine. */
  readonly clientMsPerOperation: number;
}

export type ReportedOptions = Omit<BenchOptions, "credentials"> & {
  readonly credentials: { readonly clusterSecret: boolean; readonly token: boolean; readonly ca: boolean };
};

/** The options as a result reports them: whether each credential was given, not what it is. */
export function reportedOptions(options: BenchOptions): ReportedOptions {
  const { credentials, ...rest } = options;
  return {
    ...rest,
    httpVersion: httpVersionOf(options),
    credentials: { clusterSecret: credentials?.clusterSecret !== undefined, token: credentials?.token !== undefined, ca: credentials?.ca !== undefined },
  };
}

export interface BenchResult {
  readonly tool: "dynamo-bench";
  readonly formatVersion: 1;
  readonly startedAt: string;
  readonly finishedAt: string;
  /** The run's options; credentials only as which kinds were given, never their values (results get shared). */
  readonly options: ReportedOptions;
  readonly cluster: ClusterInfo;
  readonly ceilings: { readonly transport?: TransportCeiling; readonly storage?: StorageCeiling };
  readonly load: PhaseResult;
  readonly workloads: readonly WorkloadResult[];
  readonly interrupted: boolean;
}

export interface BenchHooks {
  readonly signal?: AbortSignal;
  /** A phase begins (for the log on stderr). */
  readonly onPhase?: (name: string, detail: string) => void;
  readonly onProgress?: (progress: Progress) => void;
  /** A phase ended (so a live progress line can be closed). */
  readonly onPhaseEnd?: (result: PhaseResult) => void;
}

/** The HTTP version the run's calls use: the option, or 1.1 unless the protocol is gRPC. */
export function httpVersionOf(options: Pick<BenchOptions, "protocol" | "httpVersion">): "1.1" | "2" {
  return options.httpVersion ?? (options.protocol === "grpc" ? "2" : "1.1");
}

export class BenchSetupError extends Error {
  override name = "BenchSetupError";
}

export async function runBench(options: BenchOptions, hooks: BenchHooks = {}): Promise<BenchResult> {
  validate(options);
  const startedAt = new Date().toISOString();
  const clients = options.nodes.map(
    (node) =>
      new DynamoClient({
        node,
        protocol: options.protocol,
        httpVersion: httpVersionOf(options),
        lean: options.leanClient,
        timeoutMs: options.timeoutMs,
        ...options.credentials,
      }),
  );
  const { signal } = hooks;
  const phase = async <T extends PhaseResult>(name: string, detail: string, run: () => Promise<T>): Promise<T> => {
    hooks.onPhase?.(name, detail);
    const result = await run();
    hooks.onPhaseEnd?.(result);
    return result;
  };
  try {
    const cluster = await clusterInfo(options, clients);
    const workloadLimits: PhaseLimits = {
      operations: options.operations,
      durationMs: options.durationMs ?? (options.operations === undefined ? DEFAULT_DURATION_MS : undefined),
      warmupMs: options.warmupMs,
    };
    const ceilingLimits: PhaseLimits = { durationMs: options.ceilingDurationMs, warmupMs: options.warmupMs };
    const common = { concurrency: options.concurrency, seed: options.seed, signal, onProgress: hooks.onProgress };

    let transport: TransportCeiling | undefined;
    let storage: StorageCeiling | undefined;
    if (options.ceilings.includes("transport")) {
      const node = options.ceilingNode ?? options.nodes[0]!;
      transport = await phase("transport ceiling", `grpc.health.v1.Health/Check on ${node}, ${options.concurrency} in flight`, () =>
        measureTransportCeiling({
          ...common,
          limits: ceilingLimits,
          node,
          protocol: options.protocol,
          httpVersion: httpVersionOf(options),
          lean: options.leanClient,
          timeoutMs: options.timeoutMs,
          ...(options.credentials?.ca ? { ca: options.credentials.ca } : {}),
        }),
      );
    }
    if (options.ceilings.includes("storage")) {
      hooks.onPhase?.(
        "storage ceiling",
        `classic-level in this process: put, get, put sync (${options.concurrency} in flight), sync batches of ${options.storageBatchSize}`,
      );
      storage = await measureStorageCeiling({
        ...common,
        onPhaseEnd: hooks.onPhaseEnd,
        limits: ceilingLimits,
        valueSize: options.valueSize,
        keys: options.records,
        batchSize: options.storageBatchSize,
        parentDir: options.storageDir,
      });
    }

    const values = new ValuePool(options.valueSize, options.seed);
    const contexts = new Map<number, Uint8Array>();
    const ops = new Operations(clients, options, values, contexts);

    let nextLoad = 0;
    const load = await phase("load", `${options.records} records of ${options.valueSize} bytes, ${options.concurrency} in flight`, () =>
      runPhase({
        name: "load",
        concurrency: options.concurrency,
        limits: { operations: options.records },
        signal,
        onProgress: hooks.onProgress,
        createSource: (worker) => {
          const rng = workerRng(options.seed, "load", worker);
          return () => {
            const index = nextLoad++;
            return { kind: "insert", execute: () => ops.insert(worker, index, rng) };
          };
        },
      }),
    );

    const keySpace = new KeySpace(options.records);
    const workloads: WorkloadResult[] = [];
    for (const name of options.workloads) {
      if (signal?.aborted) break;
      const spec = WORKLOADS[name];
      const distribution = options.distribution ?? spec.distribution;
      const before = await clusterCounters(clients);
      let cpuAtStart: Promise<CpuSnapshot> | undefined;
      const result = await phase(`workload ${name}`, `${spec.description}, ${distribution}`, () =>
        runPhase({
          name: `workload ${name}`,
          concurrency: options.concurrency,
          ...(options.rate === undefined ? {} : { rate: options.rate }),
          limits: workloadLimits,
          signal,
          onProgress: hooks.onProgress,
          onMeasureStart: () => (cpuAtStart = cpuSnapshot(clients)),
          createSource: (worker) => {
            const rng = workerRng(options.seed, `workload ${name}`, worker);
            const chooser = keyChooser(distribution);
            return (): Step => {
              const kind = chooseOperation(spec, rng.next());
              if (kind === "insert") {
                const index = keySpace.issueInsert();
                return {
                  kind,
                  execute: async () => {
                    try {
                      return await ops.insert(worker, index, rng);
                    } finally {
                      keySpace.settle(index);
                    }
                  },
                };
              }
              const index = keySpace.choose(chooser, rng);
              return { kind, execute: () => ops.run(kind, worker, index, rng) };
            };
          },
        }),
      );
      // One round of Status calls gives both the counters and the nodes' CPU time.
      const cpuAtEnd = await cpuSnapshot(clients);
      const after = cpuAtEnd.counters;
      const cpu = cpuAtStart === undefined ? undefined : cpuPerOperation(await cpuAtStart, cpuAtEnd, result.operations);
      workloads.push({
        ...result,
        workload: name,
        description: spec.description,
        distribution,
        ratios: ratios(result, transport, storage),
        ...(before && after ? { clusterCounters: counterDelta(before, after) } : {}),
        ...(cpu ? { cpu } : {}),
      });
    }

    return {
      tool: "dynamo-bench",
      formatVersion: 1,
      startedAt,
      finishedAt: new Date().toISOString(),
      options: reportedOptions(options),
      cluster,
      ceilings: { ...(transport ? { transport } : {}), ...(storage ? { storage } : {}) },
      load,
      workloads,
      interrupted: signal?.aborted ?? false,
    };
  } finally {
    for (const client of clients) client.close();
  }
}

/** The operations of the workloads, on the client the worker is assigned to. */
class Operations {
  constructor(
    private readonly clients: readonly DynamoClient[],
    private readonly options: BenchOptions,
    private readonly values: ValuePool,
    /** The newest context this run has seen per key: what an application would write back with. */
    private readonly contexts: Map<number, Uint8Array>,
  ) {}

  private client(worker: number): DynamoClient {
    return this.clients[worker % this.clients.length]!;
  }

  private key(index: number): string {
    return keyName(this.options.keyPrefix, index);
  }

  run(kind: Exclude<OperationKind, "insert">, worker: number, index: number, rng: Rng): Promise<StepOutcome> {
    switch (kind) {
      case "read":
        return this.read(worker, index);
      case "update":
        return this.write(worker, index, rng, this.contexts.get(index));
      case "readModifyWrite":
        return this.readModifyWrite(worker, index, rng);
    }
  }

  async insert(worker: number, index: number, rng: Rng): Promise<StepOutcome> {
    return this.write(worker, index, rng, undefined);
  }

  private async read(worker: number, index: number): Promise<StepOutcome> {
    const found = await this.client(worker).get(this.key(index), { r: this.options.r });
    if (!found) return { notFound: true, siblings: 0 };
    this.contexts.set(index, found.context);
    return { siblings: found.values.length };
  }

  private async write(worker: number, index: number, rng: Rng, context: Uint8Array | undefined): Promise<StepOutcome> {
    const { context: next } = await this.client(worker).put(this.key(index), this.values.next(rng), { w: this.options.w, context });
    this.contexts.set(index, next);
    return {};
  }

  private async readModifyWrite(worker: number, index: number, rng: Rng): Promise<StepOutcome> {
    const client = this.client(worker);
    const key = this.key(index);
    const found = await client.get(key, { r: this.options.r });
    // The write replaces exactly what was read (a blind write when nothing was there).
    const { context } = await client.put(key, this.values.next(rng), { w: this.options.w, context: found?.context });
    this.contexts.set(index, context);
    return { requests: 2, notFound: found === null, siblings: found?.values.length ?? 0 };
  }
}

async function clusterInfo(options: BenchOptions, clients: readonly DynamoClient[]): Promise<ClusterInfo> {
  const statuses = await Promise.all(
    clients.map(async (client, i) => {
      try {
        return await client.status({ timeoutMs: options.timeoutMs });
      } catch (err) {
        throw new BenchSetupError(`node ${options.nodes[i]} does not answer its status call: ${(err as Error).message}`, { cause: err });
      }
    }),
  );
  const first = statuses[0]!;
  return {
    nodes: options.nodes,
    n: first.n,
    r: first.r,
    w: first.w,
    version: first.version,
    members: first.members.map((m) => ({ nodeId: m.nodeId, address: m.address, state: m.state })),
  };
}

async function clusterCounters(clients: readonly DynamoClient[]): Promise<Map<string, bigint> | undefined> {
  try {
    const totals = new Map<string, bigint>();
    for (const status of await Promise.all(clients.map((c) => c.status({ timeoutMs: 2_000 })))) {
      for (const [name, value] of Object.entries(status.counters)) totals.set(name, (totals.get(name) ?? 0n) + value);
    }
    return totals;
  } catch {
    // Counters are a diagnostic: a node too busy to answer does not fail the run.
    return undefined;
  }
}

export interface CpuSnapshot {
  /** The nodes' process_cpu_microseconds counters, summed; undefined when one did not answer. */
  readonly nodeMicroseconds: bigint | undefined;
  readonly client: NodeJS.CpuUsage;
  /** All the nodes' counters, summed (undefined when one did not answer). */
  readonly counters?: Map<string, bigint> | undefined;
}

/** This process's CPU time now, and the nodes' (their status counters, asked at once). */
async function cpuSnapshot(clients: readonly DynamoClient[]): Promise<CpuSnapshot> {
  const client = process.cpuUsage();
  const counters = await clusterCounters(clients);
  return { nodeMicroseconds: counters?.get("process_cpu_microseconds"), client, counters };
}

export function cpuPerOperation(start: CpuSnapshot, end: CpuSnapshot, operations: number): CpuPerOperation | undefined {
  if (operations <= 0) return undefined;
  const clientMicroseconds = end.client.user - start.client.user + (end.client.system - start.client.system);
  const node = start.nodeMicroseconds !== undefined && end.nodeMicroseconds !== undefined ? Number(end.nodeMicroseconds - start.nodeMicroseconds) : undefined;
  return {
    ...(node !== undefined && node >= 0 ? { nodeMsPerOperation: node / 1000 / operations } : {}),
    clientMsPerOperation: clientMicroseconds / 1000 / operations,
  };
}

function counterDelta(before: Map<string, bigint>, after: Map<string, bigint>): Record<string, number> {
  const delta: Record<string, number> = {};
  for (const [name, value] of [...after].sort(([a], [b]) => a.localeCompare(b))) {
    const change = value - (before.get(name) ?? 0n);
    if (change !== 0n) delta[name] = Number(change);
  }
  return delta;
}

/** Storage cost of one operation of each kind, in raw gets and puts. */
const STORAGE_COST: Record<OperationKind, { gets: number; puts: number }> = {
  read: { gets: 1, puts: 0 },
  update: { gets: 0, puts: 1 },
  insert: { gets: 0, puts: 1 },
  readModifyWrite: { gets: 1, puts: 1 },
};

export function ratios(result: PhaseResult, transport: PhaseResult | undefined, storage: StorageCeiling | undefined): Ratios {
  const out: { -readonly [K in keyof Ratios]: Ratios[K] } = {};
  if (transport && transport.throughput > 0) {
    out.throughputToTransport = result.throughput / transport.throughput;
    out.requestsToTransport = result.requestsPerSecond / transport.throughput;
  }
  if (storage && storage.get.throughput > 0 && storage.put.throughput > 0) {
    // Seconds of raw storage time one operation of this mix would take, averaged over the
    // operations measured; its inverse is the rate storage alone could sustain.
    let count = 0;
    let seconds = 0;
    for (const [kind, latency] of Object.entries(result.latency)) {
      const cost = STORAGE_COST[kind as OperationKind];
      if (!cost) continue;
      count += latency.count;
      seconds += latency.count * (cost.gets / storage.get.throughput + cost.puts / storage.put.throughput);
    }
    if (count > 0 && seconds > 0) out.throughputToStorage = result.throughput / (count / seconds);
  }
  return out;
}

function validate(options: BenchOptions): void {
  const positive = (name: string, value: number | undefined, allowZero = false) => {
    if (value === undefined) return;
    if (!Number.isInteger(value) || value < (allowZero ? 0 : 1))
      throw new BenchSetupError(`${name} must be a ${allowZero ? "non-negative" : "positive"} integer, got ${value}`);
  };
  if (options.nodes.length === 0) throw new BenchSetupError("give at least one node");
  positive("records", options.records);
  positive("operations", options.operations);
  positive("concurrency", options.concurrency);
  positive("value size", options.valueSize, true);
  positive("storage batch size", options.storageBatchSize);
  positive("r", options.r);
  positive("w", options.w);
  for (const [name, ms] of [
    ["duration", options.durationMs],
    ["warm-up", options.warmupMs],
    ["ceiling duration", options.ceilingDurationMs],
  ] as const) {
    if (ms !== undefined && !(Number.isFinite(ms) && ms >= 0)) throw new BenchSetupError(`${name} must be a non-negative number of ms, got ${ms}`);
  }
  if (!(Number.isFinite(options.timeoutMs) && options.timeoutMs > 0))
    throw new BenchSetupError(`timeout must be a positive number of ms, got ${options.timeoutMs}`);
  if (options.workloads.length === 0) throw new BenchSetupError("give at least one workload");
  if (options.protocol === "grpc" && options.httpVersion === "1.1") throw new BenchSetupError("the gRPC protocol needs HTTP/2");
}
