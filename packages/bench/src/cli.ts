// The dynamo-bench command line. Exit codes: 0 the run completed, 1 it could not run (cluster
// unreachable, …), 2 usage error, 130 interrupted.
import { parseArgs } from "node:util";
import { type Protocol, type ResolvedCredentials, resolveCredentials } from "@dynamo-ts/client";
import { type BenchOptions, BenchSetupError, type Ceiling, CEILINGS, DEFAULT_DURATION_MS, DEFAULT_OPTIONS, freshKeyPrefix, runBench } from "./bench.js";
import { formatErrors, formatProgress, formatRate, formatReport } from "./report.js";
import type { Distribution, WorkloadName } from "./workloads.js";
import { isWorkloadName, WORKLOAD_NAMES } from "./workloads.js";
import { VERSION } from "./version.js";

export const EXIT = { ok: 0, failed: 1, usage: 2, interrupted: 130 } as const;

export const HELP = `Usage: dynamo-bench [options]

YCSB-style load against a running dynamo-ts cluster: a load phase, then the chosen workloads,
with the machine's transport and storage ceilings measured in the same run.

Workloads: A 50% read / 50% update, B 95/5, C read only, D read latest (5% inserts),
F read-modify-write (get, then put with the context read). Updates write back with the
newest context this run has seen for the key.

Options:
  --nodes HOST:PORT,...     Nodes; clients are spread over them (default ${DEFAULT_OPTIONS.nodes.join(",")})
  --records N               Records loaded before the workloads (default ${DEFAULT_OPTIONS.records})
  --operations N            Operations per workload
  --duration D              Length of each workload (default ${DEFAULT_DURATION_MS / 1000}s unless --operations): 30, 30s, 500ms, 2m
  --warmup D                Unmeasured start of each workload and ceiling (default ${DEFAULT_OPTIONS.warmupMs / 1000}s)
  --concurrency N           Operations in flight (closed loop) (default ${DEFAULT_OPTIONS.concurrency})
  --rate OPS                Start workload operations at this rate (per second, all clients together)
                            instead of back to back, at most --concurrency at once; latency counts
                            from when each was due, so falling behind shows (default: closed loop)
  --value-size BYTES        Size of each value written (default ${DEFAULT_OPTIONS.valueSize})
  --distribution D          zipfian, uniform or latest for every workload (default: each workload's own)
  --r N, --w N              Read / write quorum per request (default: the node's)
  --seed N                  Seed of the operation and key sequences (default ${DEFAULT_OPTIONS.seed})
  --workloads LIST          Comma-separated, run in this order (default ${DEFAULT_OPTIONS.workloads.join(",").toLowerCase()})
  --protocol P              connect (default), grpc or grpc-web
  --http-version V          1.1 or 2 (default 1.1, or 2 with --protocol grpc, which needs it): Node's
                            HTTP/2 client makes long young-generation GC pauses in the load generator
  --lean-client BOOL        Connect unary calls through the client's lean calling side (default true);
                            false sends them through connect-node, for comparison
  --timeout-ms MS           Deadline of each request (default ${DEFAULT_OPTIONS.timeoutMs})
  --key-prefix P            Key prefix (default: a fresh one per run, so runs never collide)
  --ceilings LIST           Ceilings to measure: transport, storage, both (default) or none
  --no-ceilings             Same as --ceilings none
  --ceiling-duration D      Length of each ceiling measurement (default ${DEFAULT_OPTIONS.ceilingDurationMs / 1000}s)
  --ceiling-node HOST:PORT  Node for the transport ceiling (default: the first of --nodes)
  --storage-batch N         Puts per batch in the durable storage ceiling (default ${DEFAULT_OPTIONS.storageBatchSize})
  --storage-dir DIR         Where the storage ceiling's temporary database goes (default: the OS temp dir)
  --secret-file FILE        Cluster secret (the run reads each node's status); also env DYNAMO_CLUSTER_SECRET_FILE,
                            DYNAMO_CLUSTER_SECRET, or ./data/cluster-secret (the local cluster's)
  --token-file FILE         A bearer token instead (admin role; or read,write plus the secret); env DYNAMO_TOKEN_FILE, DYNAMO_TOKEN
  --ca-file FILE            PEM of the CA that signed the nodes' certificates (TLS on): nodes are reached over https; env DYNAMO_CA_FILE
  --json                    Print the result as JSON on stdout (progress stays on stderr)
  --quiet                   No progress on stderr
  --version                 Print the version
  -h, --help                Show this help

Exit codes: 0 completed (errors, if any, are in the report), 1 could not run, 2 usage error, 130 interrupted.
`;

export class BenchUsageError extends Error {
  override name = "BenchUsageError";
}

export interface CliCommand {
  readonly help: boolean;
  readonly version: boolean;
  readonly json: boolean;
  readonly quiet: boolean;
  readonly options: BenchOptions;
}

/** `30`, `30s`, `500ms`, `1.5m` → milliseconds (a bare number is seconds). */
export function parseDuration(text: string, flag: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(text.trim());
  if (!m) throw new BenchUsageError(`--${flag} must be a duration like 30, 30s, 500ms or 2m, got '${text}'`);
  const value = Number(m[1]);
  const unit = m[2] ?? "s";
  return unit === "ms" ? value : unit === "s" ? value * 1000 : value * 60_000;
}

function parseInteger(text: string | undefined, flag: string, min: number): number | undefined {
  if (text === undefined) return undefined;
  if (!/^\d+$/.test(text) || Number(text) < min || !Number.isSafeInteger(Number(text))) {
    throw new BenchUsageError(`--${flag} must be an integer of at least ${min}, got '${text}'`);
  }
  return Number(text);
}

function parseNode(text: string, flag: string): string {
  const address = text.trim();
  if (!/^(https?:\/\/)?[^\s/:]+:\d{1,5}$/.test(address)) throw new BenchUsageError(`--${flag}: '${text}' is not host:port`);
  return address;
}

const DISTRIBUTIONS: readonly Distribution[] = ["zipfian", "uniform", "latest"];
const PROTOCOLS: readonly Protocol[] = ["connect", "grpc", "grpc-web"];

export function parseCommand(argv: readonly string[], env: Readonly<Record<string, string | undefined>> = process.env): CliCommand {
  let values: Record<string, string | boolean | undefined>;
  let positionals: string[];
  try {
    ({ values, positionals } = parseArgs({
      args: [...argv],
      allowPositionals: true,
      strict: true,
      options: {
        nodes: { type: "string" },
        records: { type: "string" },
        operations: { type: "string" },
        duration: { type: "string" },
        warmup: { type: "string" },
        concurrency: { type: "string" },
        rate: { type: "string" },
        "value-size": { type: "string" },
        distribution: { type: "string" },
        r: { type: "string" },
        w: { type: "string" },
        seed: { type: "string" },
        workloads: { type: "string" },
        protocol: { type: "string" },
        "http-version": { type: "string" },
        "lean-client": { type: "string" },
        "timeout-ms": { type: "string" },
        "key-prefix": { type: "string" },
        ceilings: { type: "string" },
        "no-ceilings": { type: "boolean" },
        "ceiling-duration": { type: "string" },
        "ceiling-node": { type: "string" },
        "storage-batch": { type: "string" },
        "storage-dir": { type: "string" },
        "secret-file": { type: "string" },
        "token-file": { type: "string" },
        "ca-file": { type: "string" },
        json: { type: "boolean" },
        quiet: { type: "boolean" },
        help: { type: "boolean", short: "h" },
        version: { type: "boolean" },
      },
    }));
  } catch (err) {
    throw new BenchUsageError((err as Error).message);
  }
  if (positionals.length > 0) throw new BenchUsageError(`unexpected argument '${positionals[0]}'`);
  const str = (name: string) => values[name] as string | undefined;

  const nodes = (str("nodes") ?? DEFAULT_OPTIONS.nodes.join(","))
    .split(",")
    .filter((s) => s.trim() !== "")
    .map((s) => parseNode(s, "nodes"));
  if (nodes.length === 0) throw new BenchUsageError("--nodes needs at least one host:port");

  const distribution = str("distribution");
  if (distribution !== undefined && !DISTRIBUTIONS.includes(distribution as Distribution)) {
    throw new BenchUsageError(`--distribution must be one of ${DISTRIBUTIONS.join(", ")}, got '${distribution}'`);
  }
  const protocol = str("protocol") ?? DEFAULT_OPTIONS.protocol;
  if (!PROTOCOLS.includes(protocol as Protocol)) throw new BenchUsageError(`--protocol must be one of ${PROTOCOLS.join(", ")}, got '${protocol}'`);

  const httpVersion = str("http-version");
  if (httpVersion !== undefined && httpVersion !== "1.1" && httpVersion !== "2")
    throw new BenchUsageError(`--http-version must be 1.1 or 2, got '${httpVersion}'`);
  if (httpVersion === "1.1" && protocol === "grpc") throw new BenchUsageError("--protocol grpc needs --http-version 2");
  const leanClient = str("lean-client") ?? "true";
  if (leanClient !== "true" && leanClient !== "false") throw new BenchUsageError(`--lean-client must be true or false, got '${leanClient}'`);

  const workloads: WorkloadName[] = [];
  for (const item of (str("workloads") ?? DEFAULT_OPTIONS.workloads.join(",")).split(",")) {
    const name = item.trim().toUpperCase();
    if (name === "") continue;
    if (!isWorkloadName(name))
      throw new BenchUsageError(
        `unknown workload '${item.trim()}' (known: ${WORKLOAD_NAMES.join(", ").toLowerCase()}; E needs scans, which dynamo-ts does not have)`,
      );
    workloads.push(name);
  }
  if (workloads.length === 0) throw new BenchUsageError("--workloads needs at least one workload");

  const ceilings: Ceiling[] = [];
  const ceilingList = values["no-ceilings"] === true ? "none" : (str("ceilings") ?? CEILINGS.join(","));
  if (values["no-ceilings"] === true && str("ceilings") !== undefined) throw new BenchUsageError("give --ceilings or --no-ceilings, not both");
  for (const item of ceilingList
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s !== "")) {
    if (item === "none") continue;
    if (!CEILINGS.includes(item as Ceiling)) throw new BenchUsageError(`--ceilings takes ${CEILINGS.join(", ")} or none, got '${item}'`);
    if (!ceilings.includes(item as Ceiling)) ceilings.push(item as Ceiling);
  }

  const rateText = str("rate");
  if (rateText !== undefined && !(/^\d+(\.\d+)?$/.test(rateText) && Number(rateText) > 0 && Number.isFinite(Number(rateText)))) {
    throw new BenchUsageError(`--rate must be a positive number of operations per second, got '${rateText}'`);
  }
  const duration = str("duration");
  const keyPrefix = str("key-prefix");
  if (keyPrefix !== undefined && keyPrefix === "") throw new BenchUsageError("--key-prefix must not be empty");
  const options: BenchOptions = {
    nodes,
    records: parseInteger(str("records"), "records", 1) ?? DEFAULT_OPTIONS.records,
    operations: parseInteger(str("operations"), "operations", 1),
    durationMs: duration === undefined ? undefined : parseDuration(duration, "duration"),
    warmupMs: str("warmup") === undefined ? DEFAULT_OPTIONS.warmupMs : parseDuration(str("warmup")!, "warmup"),
    concurrency: parseInteger(str("concurrency"), "concurrency", 1) ?? DEFAULT_OPTIONS.concurrency,
    ...(rateText === undefined ? {} : { rate: Number(rateText) }),
    valueSize: parseInteger(str("value-size"), "value-size", 0) ?? DEFAULT_OPTIONS.valueSize,
    distribution: distribution as Distribution | undefined,
    r: parseInteger(str("r"), "r", 1),
    w: parseInteger(str("w"), "w", 1),
    seed: parseInteger(str("seed"), "seed", 0) ?? DEFAULT_OPTIONS.seed,
    workloads,
    protocol: protocol as Protocol,
    ...(httpVersion === undefined ? {} : { httpVersion }),
    leanClient: leanClient === "true",
    timeoutMs: parseInteger(str("timeout-ms"), "timeout-ms", 1) ?? DEFAULT_OPTIONS.timeoutMs,
    keyPrefix: keyPrefix ?? freshKeyPrefix(),
    ceilings,
    ceilingDurationMs: str("ceiling-duration") === undefined ? DEFAULT_OPTIONS.ceilingDurationMs : parseDuration(str("ceiling-duration")!, "ceiling-duration"),
    ceilingNode: str("ceiling-node") === undefined ? undefined : parseNode(str("ceiling-node")!, "ceiling-node"),
    storageBatchSize: parseInteger(str("storage-batch"), "storage-batch", 1) ?? DEFAULT_OPTIONS.storageBatchSize,
    storageDir: str("storage-dir"),
    credentials: benchCredentials(values, env),
  };
  if (options.seed > 0xffffffff) throw new BenchUsageError(`--seed must be at most ${0xffffffff}, got ${options.seed}`);
  return { help: values.help === true, version: values.version === true, json: values.json === true, quiet: values.quiet === true, options };
}

/** The run reads node status (members, counters): it needs the cluster secret or an admin token. */
function benchCredentials(values: Record<string, string | boolean | undefined>, env: Readonly<Record<string, string | undefined>>): ResolvedCredentials {
  const flags = new Map<string, string>();
  for (const name of ["secret-file", "token-file", "ca-file"]) if (typeof values[name] === "string") flags.set(name, values[name]);
  try {
    return resolveCredentials(flags, env);
  } catch (err) {
    throw new BenchUsageError((err as Error).message);
  }
}

export interface Io {
  out(text: string): void;
  err(text: string): void;
  /** stderr is a terminal: the progress line rewrites itself instead of scrolling. */
  readonly errIsTty: boolean;
  /** Aborted on Ctrl-C: the current phase stops and the partial result is printed. */
  readonly signal?: AbortSignal;
}

export async function run(argv: readonly string[], io: Io): Promise<number> {
  let command: CliCommand;
  try {
    command = parseCommand(argv);
  } catch (err) {
    if (!(err instanceof BenchUsageError)) throw err;
    io.err(`dynamo-bench: ${err.message}\n\n${HELP}`);
    return EXIT.usage;
  }
  if (command.help) {
    io.out(HELP);
    return EXIT.ok;
  }
  if (command.version) {
    io.out(`dynamo-bench ${VERSION}\n`);
    return EXIT.ok;
  }
  const log = (text: string) => {
    if (!command.quiet) io.err(text);
  };
  let progressShown = false;
  try {
    const result = await runBench(command.options, {
      signal: io.signal,
      onPhase: (name, detail) => log(`dynamo-bench: ${name}: ${detail}\n`),
      onProgress: (p) => {
        if (command.quiet) return;
        progressShown = io.errIsTty;
        io.err(io.errIsTty ? `\r\x1b[K  ${formatProgress(p)}` : `  ${formatProgress(p)}\n`);
      },
      onPhaseEnd: (r) => {
        if (progressShown) io.err("\r\x1b[K");
        progressShown = false;
        log(`  ${r.name}: ${formatRate(r.throughput)} ops/s over ${(r.durationMs / 1000).toFixed(1)} s, errors: ${formatErrors(r.errors)}\n`);
      },
    });
    io.out(command.json ? `${JSON.stringify(result, null, 2)}\n` : `${formatReport(result)}\n`);
    return result.interrupted ? EXIT.interrupted : EXIT.ok;
  } catch (err) {
    if (progressShown) io.err("\n");
    if (err instanceof BenchSetupError) {
      io.err(`dynamo-bench: ${err.message}\n`);
      return EXIT.failed;
    }
    io.err(`dynamo-bench: ${(err as Error).stack ?? String(err)}\n`);
    return EXIT.failed;
  }
}
