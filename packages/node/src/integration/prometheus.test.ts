// GET /metrics scraped by a real Prometheus (Debian's `prometheus`, started here on a free
// loopback port with its own temporary storage): three nodes under a small load, then the
// request rate and the 99th percentile of request latency queried through Prometheus's HTTP API
// for each node. Prometheus 2.x asks for OpenMetrics first, so its parser reads that format; the
// Prometheus text format of every node passes `promtool check metrics`.
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { freePort, TestCluster } from "../test-support/cluster.js";

const INSTALL = "apt-get install -y prometheus";

function run(command: string, args: string[], input?: string): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const child = spawn(command, args, { stdio: ["pipe", "pipe", "pipe"] });
    let out = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    child.stderr.on("data", (d: Buffer) => (out += d.toString()));
    child.once("error", () => resolve({ code: null, out }));
    child.once("close", (code) => resolve({ code, out }));
    child.stdin.end(input ?? "");
  });
}

const SUITE = "Prometheus scraping a 3-node cluster";
const missing =
  (await run("prometheus", ["--version"])).code === 0 && (await run("promtool", ["--version"])).code === 0
    ? undefined
    : `prometheus or promtool not found; install them: ${INSTALL}`;
if (missing) {
  if (process.env.CI === "true") throw new Error(`integration suite "${SUITE}" cannot run on CI: ${missing}`);
  console.warn(`[integration] skipping "${SUITE}": ${missing}`);
}

interface VectorSample {
  metric: Record<string, string>;
  value: [number, string];
}

describe.skipIf(missing !== undefined)(SUITE, () => {
  let cluster: TestCluster;
  let prometheus: ChildProcess | undefined;
  let dir: string;
  let api: string;
  let loading = true;
  let load: Promise<void>;

  const query = async (promql: string): Promise<VectorSample[]> => {
    const res = await fetch(`${api}/api/v1/query?query=${encodeURIComponent(promql)}`);
    const body = (await res.json()) as { status: string; data: { resultType: string; result: VectorSample[] } };
    expect(body.status).toBe("success");
    return body.data.result;
  };

  /** Polls until `check` passes (an upper bound against hangs, not a timing assertion). */
  const eventually = async <T>(what: string, attempt: () => Promise<T>, check: (value: T) => boolean): Promise<T> => {
    let last: T | undefined;
    for (let i = 0; i < 120; i++) {
      try {
        last = await attempt();
        if (check(last)) return last;
      } catch {
        // Prometheus not up yet
      }
      await new Promise((r) => setTimeout(r, 500));
    }
    throw new Error(`${what}: last seen ${JSON.stringify(last)}`);
  };

  beforeAll(async () => {
    cluster = await TestCluster.start({ nodes: 3 });
    dir = mkdtempSync(join(tmpdir(), "dynamo-prometheus-"));
    const port = await freePort();
    api = `http://127.0.0.1:${port}`;
    const targets = cluster.nodes.map((n) => JSON.stringify(n.address)).join(", ");
    writeFileSync(
      join(dir, "prometheus.yml"),
      `global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: dynamo\n    static_configs:\n      - targets: [${targets}]\n`,
    );
    prometheus = spawn(
      "prometheus",
      [
        `--config.file=${join(dir, "prometheus.yml")}`,
        `--storage.tsdb.path=${join(dir, "data")}`,
        `--web.listen-address=127.0.0.1:${port}`,
        "--log.level=warn",
      ],
      { stdio: ["ignore", "ignore", "pipe"] },
    );
    // A steady trickle of requests through every node: the Connect API and the /kv API.
    load = (async () => {
      for (let i = 0; loading; i++) {
        const node = cluster.nodes[i % 3]!;
        await fetch(`http://${node.address}/kv/load-${i % 50}`, { method: "PUT", body: `v${i}` }).catch(() => undefined);
        await fetch(`http://${node.address}/kv/load-${(i + 7) % 50}`).catch(() => undefined);
        await new Promise((r) => setTimeout(r, 20));
      }
    })();
  }, 60_000);

  afterAll(async () => {
    loading = false;
    await load;
    prometheus?.kill("SIGKILL");
    await cluster?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("scrapes every node", async () => {
    const up = await eventually(
      "all three targets up",
      () => query("up"),
      (r) => r.length === 3 && r.every((s) => s.value[1] === "1"),
    );
    expect(up.map((s) => s.metric.instance).sort()).toEqual(cluster.nodes.map((n) => n.address).sort());
  }, 90_000);

  it("has a request rate and a p99 latency for each node", async () => {
    const rates = await eventually(
      "a request rate per node",
      () => query("sum by (instance) (rate(dynamo_requests_total[10s]))"),
      (r) => r.length === 3 && r.every((s) => Number(s.value[1]) > 0),
    );
    expect(rates).toHaveLength(3);
    const p99 = await eventually(
      "a p99 latency per node",
      () => query("histogram_quantile(0.99, sum by (instance, le) (rate(dynamo_request_duration_seconds_bucket[10s])))"),
      (r) => r.length === 3 && r.every((s) => Number.isFinite(Number(s.value[1])) && Number(s.value[1]) > 0),
    );
    // Within the histogram's buckets (0.5 ms to 10 s).
    for (const s of p99) expect(Number(s.value[1])).toBeLessThanOrEqual(10);
    const methods = await query('sum by (method) (dynamo_requests_total{code="ok"})');
    expect(methods.map((s) => s.metric.method).sort()).toEqual(expect.arrayContaining(["http_GET", "http_PUT"]));
    const members = await query('dynamo_members{state="alive"}');
    expect(members.map((s) => s.value[1])).toEqual(["3", "3", "3"]);
  }, 90_000);

  it("serves metrics that promtool accepts, in both formats' content types", async () => {
    for (const node of cluster.nodes) {
      const text = await fetch(`http://${node.address}/metrics`);
      expect(text.headers.get("content-type")).toMatch(/^text\/plain; version=0\.0\.4/);
      const body = await text.text();
      const checked = await run("promtool", ["check", "metrics"], body);
      expect(checked.out).toBe("");
      expect(checked.code).toBe(0);
      const open = await fetch(`http://${node.address}/metrics`, { headers: { accept: "application/openmetrics-text;version=1.0.0" } });
      expect(open.headers.get("content-type")).toMatch(/^application\/openmetrics-text; version=1\.0\.0/);
      const openBody = await open.text();
      expect(openBody.endsWith("# EOF\n")).toBe(true);
      expect(openBody).toContain("# TYPE dynamo_requests counter");
    }
  });
});
