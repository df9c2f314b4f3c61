// What every fault suite shares: one cluster per file (removed afterwards, also when a test
// fails, with the nodes' logs printed first), the final R=N check and its report line.
import { afterAll, beforeAll, expect, onTestFailed } from "vitest";
import { type CheckReport, History } from "./checker.js";
import { Cluster, type ClusterOptions } from "./cluster.js";
import { keyNames, Workload, type WorkloadStats } from "./workload.js";

/** Starts a cluster before the file's tests and removes it after them; returns an accessor. */
export function useCluster(options: ClusterOptions): () => Cluster {
  let cluster: Cluster | undefined;
  beforeAll(async () => {
    cluster = await Cluster.start(options);
  });
  afterAll(async () => {
    await cluster?.close();
  });
  return () => {
    if (!cluster) throw new Error(`cluster ${options.name} did not start`);
    return cluster;
  };
}

/** Call at the top of a test: prints every node's last log lines if the test fails. */
export function printLogsOnFailure(cluster: () => Cluster): void {
  onTestFailed(async () => {
    console.error(`[e2e] node logs:\n${await cluster().allLogs()}`);
  });
}

/**
 * Reads every written key through every running node at R=N (merging all replicas: valid for
 * invariants 1-3 before hinted handoff and anti-entropy exist), checks the history against it,
 * prints the report and asserts it is clean.
 */
export async function verifyNothingLost(
  suite: string,
  cluster: Cluster,
  history: History,
  stats: WorkloadStats | undefined,
  startedAt: number,
): Promise<CheckReport> {
  const reads = await cluster.readAll(history.keys());
  const report = history.check(reads);
  const seconds = ((Date.now() - startedAt) / 1000).toFixed(1);
  console.log(
    `[e2e] ${suite}: ${report.summary} — ${report.acknowledged} acknowledged ` +
      `(${report.acknowledgedPuts} puts, ${report.acknowledgedDeletes} deletes), ` +
      `${report.operations - report.acknowledged} failed, ${stats?.failedReads ?? 0} failed reads, ` +
      `${report.keys} keys × ${cluster.runningIndexes().length} coordinators read at R=${cluster.n}, ${seconds} s`,
  );
  if (stats && stats.sampleErrors.length > 0) {
    console.log(`[e2e] ${suite}: sample errors: ${stats.sampleErrors.slice(0, 5).join(" | ")}`);
  }
  for (const violation of report.violations.slice(0, 20)) console.error(`[e2e] ${suite}: ${violation.kind}: ${violation.detail}`);
  expect(report.lost, report.summary).toBe(0);
  expect(report.violations, report.summary).toEqual([]);
  return report;
}

/**
 * Writers keep writing while node2 is killed with kill -9 and restarted on its data; the two
 * survivors must keep acknowledging (W=2 of N=3) and nothing acknowledged may be lost.
 */
export async function killOneAndRestartUnderLoad(c: Cluster, suite: string, prefix: string, seed: number, whileDown = 400): Promise<void> {
  const history = new History();
  const startedAt = Date.now();
  const workload = new Workload({ cluster: c, history, keys: keyNames(prefix, 24), writers: 3, seed, valuePrefix: prefix }).start();
  let stats: WorkloadStats;
  let killedAt: number;
  let restartedAt: number;
  try {
    await workload.waitForAcknowledged(200, "before the kill");
    killedAt = Date.now();
    await c.kill(1);
    await workload.waitForAcknowledged(whileDown, "while node2 is down");
    restartedAt = Date.now();
    await c.start(1);
    await workload.waitForAcknowledged(200, "after node2 restarted");
  } finally {
    stats = await workload.stop();
  }
  expect(history.acknowledgedBetween(killedAt, restartedAt)).toBeGreaterThan(0);
  await verifyNothingLost(suite, c, history, stats, startedAt);
}
