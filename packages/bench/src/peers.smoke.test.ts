// Smoke test of the peers benchmark (scripts/bench-peers.mjs): a real 3-node dynamo-ts cluster
// and a real 3-node etcd (Debian's etcd-server) on free local ports, one-second wrk loads, and a
// check that the JSON result is well formed: every load ran and answered without failures, the
// ratios and each system's no-op ceiling are there. Figures are printed, never asserted on.
// Without wrk or etcd the suite skips with the reason; with CI=true it fails instead, so CI
// cannot pass by skipping (.ci/run installs both).
import { spawnSync } from "node:child_process";
import { resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { freePortRun, run } from "./test-support/processes.js";

const here = fileURLToPath(new URL(".", import.meta.url));
const BENCH_PEERS = resolve(here, "../../../scripts/bench-peers.mjs");
const SUITE = "bench-peers against etcd";

const missingTools = ["wrk", "etcd"].filter((tool) => spawnSync("sh", ["-c", `command -v ${tool}`]).status !== 0);
const missing = missingTools.length > 0 ? `${missingTools.join(" and ")} not found; install Debian's wrk and etcd-server` : undefined;
if (missing) {
  if (process.env.CI === "true") throw new Error(`suite "${SUITE}" cannot run on CI: ${missing}`);
  console.warn(`[smoke] skipping "${SUITE}": ${missing}`);
}

interface Row {
  system: string;
  op: string;
  requests: number;
  perSecond: number;
  failed: number;
  cpuMsPerRequest: number;
}

describe.skipIf(missing !== undefined)(SUITE, () => {
  it("measures puts, gets and the no-op ceiling of both systems and prints the ratios", { timeout: 120_000 }, async () => {
    const dynamoPort = await freePortRun(3);
    // etcd: client ports P..P+2, peer ports P+10..P+12.
    const etcdPort = await freePortRun(13);
    const { code, stdout, stderr } = await run(BENCH_PEERS, [
      "--duration",
      "1",
      "--keys",
      "1000",
      "--dynamo-base-port",
      String(dynamoPort),
      "--etcd-base-port",
      String(etcdPort),
      "--json",
    ]);
    expect(code, stderr).toBe(0);
    const result = JSON.parse(stdout) as {
      rows: Row[];
      ratios: Record<string, { throughput: number; cpuPerRequest: number }>;
      ceilings: Record<string, { put: number; get: number }>;
    };
    for (const system of ["dynamo-ts", "etcd"]) {
      for (const op of ["put", "get", "ceiling"]) {
        const row = result.rows.find((r) => r.system === system && r.op === op);
        expect(row, `${system} ${op}`).toBeDefined();
        expect(row!.requests, `${system} ${op}`).toBeGreaterThan(0);
        expect(row!.failed, `${system} ${op}`).toBe(0);
        expect(Number.isFinite(row!.cpuMsPerRequest) && row!.cpuMsPerRequest > 0, `${system} ${op} CPU`).toBe(true);
      }
      expect(result.ceilings[system]!.get).toBeGreaterThan(0);
    }
    for (const op of ["put", "get"]) expect(result.ratios[op]!.throughput).toBeGreaterThan(0);
  });
});
