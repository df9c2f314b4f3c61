// Smoke test: a real three-node cluster (scripts/local-cluster.mjs on free ports, temporary
// data), the built dynamo-bench run against it for about two seconds with --json, and a check
// that the result is well formed. Figures are printed by the tool, never asserted on.
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { BenchResult } from "./bench.js";
import type { LatencySummary } from "./latency.js";
import { formatReport } from "./report.js";
import type { PhaseResult } from "./runner.js";
import { WORKLOADS } from "./workloads.js";
import { freePortRun, run } from "./test-support/processes.js";

const here = fileURLToPath(new URL(".", import.meta.url));
const BIN = resolve(here, "../dist/bin.js");
const LOCAL_CLUSTER = resolve(here, "../../../scripts/local-cluster.mjs");

function expectFinite(value: unknown, what: string): void {
  expect(typeof value === "number" && Number.isFinite(value), `${what} = ${String(value)}`).toBe(true);
}

function expectLatency(l: LatencySummary, what: string): void {
  for (const [field, value] of Object.entries(l)) expectFinite(value, `${what}.${field}`);
  expect(l.count, what).toBeGreaterThan(0);
  expect(l.p50Ms).toBeLessThanOrEqual(l.p95Ms);
  expect(l.p95Ms).toBeLessThanOrEqual(l.p99Ms);
  expect(l.p99Ms).toBeLessThanOrEqual(l.p999Ms);
  expect(l.p999Ms).toBeLessThanOrEqual(l.maxMs);
}

function expectCleanPhase(p: PhaseResult, what: string): void {
  for (const field of ["operations", "requests", "durationMs", "throughput", "requestsPerSecond", "notFound", "siblingReads"] as const)
    expectFinite(p[field], `${what}.${field}`);
  expect(p.operations, what).toBeGreaterThan(0);
  expect(p.throughput, what).toBeGreaterThan(0);
  expect(p.errors, what).toEqual({ total: 0, byCode: {}, samples: {} });
  expect(p.interrupted, what).toBe(false);
  for (const [kind, l] of Object.entries(p.latency)) expectLatency(l, `${what}.latency.${kind}`);
}

describe("dynamo-bench against a real three-node cluster", () => {
  let dataDir: string;
  let cluster: ChildProcess | undefined;
  let clusterOutput = "";
  let basePort: number;

  beforeAll(async () => {
    if (!existsSync(BIN)) throw new Error(`${BIN} is missing: run \`npm run build\` in packages/bench first`);
    dataDir = mkdtempSync(join(tmpdir(), "dynamo-bench-smoke-"));
    basePort = await freePortRun(3);
    const child = spawn(process.execPath, [LOCAL_CLUSTER, "--nodes", "3", "--base-port", String(basePort), "--data-dir", join(dataDir, "cluster"), "--quiet"], {
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, DYNAMO_EXIT_WITH_PARENT: "1" }, // the cluster stops if this test process dies
    });
    cluster = child;
    await new Promise<void>((ready, fail) => {
      const watch = (chunk: Buffer) => {
        clusterOutput += chunk.toString();
        if (clusterOutput.includes("cluster ready")) ready();
      };
      child.stdout!.on("data", watch);
      child.stderr!.on("data", watch);
      child.once("exit", (code) => fail(new Error(`local-cluster exited (${code}) before it was ready:\n${clusterOutput}`)));
    });
  });

  afterAll(async () => {
    if (cluster && cluster.exitCode === null) {
      const exited = new Promise((done) => cluster!.once("exit", done));
      cluster.kill("SIGINT");
      await exited;
    }
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  });

  it("runs the load, the ceilings and workloads A, B, C, D and F, and prints a well-formed --json result", async () => {
    const nodes = [0, 1, 2].map((i) => `127.0.0.1:${basePort + i}`);
    const { code, stdout, stderr } = await run(BIN, [
      "--nodes",
      nodes.join(","),
      "--records",
      "300",
      "--concurrency",
      "8",
      "--duration",
      "400ms",
      "--warmup",
      "100ms",
      "--ceiling-duration",
      "300ms",
      "--storage-dir",
      dataDir,
      "--workloads",
      "a,b,c,d,f",
      "--seed",
      "7",
      "--json",
      // The run reads each node's status, an admin call: the local cluster's secret file.
      "--secret-file",
      join(dataDir, "cluster", "cluster-secret"),
    ]);
    expect(code, stderr).toBe(0);
    expect(stderr).toContain("dynamo-bench: workload F");
    const result = JSON.parse(stdout) as BenchResult;

    expect(result.tool).toBe("dynamo-bench");
    expect(result.formatVersion).toBe(1);
    expect(result.interrupted).toBe(false);
    expect(Number.isNaN(Date.parse(result.startedAt))).toBe(false);
    expect(result.cluster).toMatchObject({ nodes, n: 3, r: 2, w: 2 });
    expect(result.cluster.members.map((m) => m.state)).toEqual(["alive", "alive", "alive"]);
    expect(result.options).toMatchObject({ records: 300, concurrency: 8, seed: 7, valueSize: 100 });
    // Results get shared: the secret the run used is reported as given, never written out.
    expect(result.options.credentials).toEqual({ clusterSecret: true, token: false, ca: false });
    const secret = readFileSync(join(dataDir, "cluster", "cluster-secret"), "utf8").trim();
    expect(stdout).not.toContain(secret);

    const { transport, storage } = result.ceilings;
    expect(transport?.method).toBe("grpc.health.v1.Health/Check");
    expect(transport?.node).toBe(nodes[0]);
    expectCleanPhase(transport!, "transport ceiling");
    for (const name of ["put", "get", "syncPut", "syncBatchPut"] as const) expectCleanPhase(storage![name], `storage.${name}`);
    expect(storage!.get.notFound).toBe(0);

    expectCleanPhase(result.load, "load");
    expect(result.load.operations).toBe(300);

    expect(result.workloads.map((w) => w.workload)).toEqual(["A", "B", "C", "D", "F"]);
    for (const w of result.workloads) {
      expectCleanPhase(w, `workload ${w.workload}`);
      // R + W > N on a healthy cluster: every read finds the loaded (or acknowledged) key.
      expect(w.notFound, `workload ${w.workload} notFound`).toBe(0);
      const allowed = Object.keys(WORKLOADS[w.workload].mix);
      for (const kind of Object.keys(w.latency)) expect(allowed).toContain(kind);
      expect(Object.keys(w.latency)).toContain("read");
      expectFinite(w.ratios.throughputToTransport, `workload ${w.workload} ratio to transport`);
      expectFinite(w.ratios.requestsToTransport, `workload ${w.workload} rpc ratio to transport`);
      expectFinite(w.ratios.throughputToStorage, `workload ${w.workload} ratio to storage`);
      // The nodes report their CPU time in Status: the run divides it by the measured operations.
      expect(w.cpu?.nodeMsPerOperation, `workload ${w.workload} node CPU per operation`).toBeGreaterThan(0);
      expect(w.cpu?.clientMsPerOperation, `workload ${w.workload} client CPU per operation`).toBeGreaterThan(0);
    }
    const f = result.workloads.find((w) => w.workload === "F")!;
    expect(f.latency.readModifyWrite!.count).toBeGreaterThan(0);
    // Each read-modify-write is two RPCs.
    expect(f.requests).toBe(f.latency.read!.count + 2 * f.latency.readModifyWrite!.count);

    // The storage ceiling's temporary database is gone; only the cluster's data is left.
    const { readdirSync } = await import("node:fs");
    expect(readdirSync(dataDir)).toEqual(["cluster"]);

    const report = formatReport(result);
    expect(report).toContain("Workload F");
    expect(report).toMatch(/CPU per operation: nodes \d+\.\d{3} ms, this client \d+\.\d{3} ms/);
    expect(report).not.toMatch(/NaN|undefined|Infinity/);
  });
});
