// Human-readable output: the report on stdout and the live progress line on stderr. Pure.
import { type BenchResult, httpVersionOf, type WorkloadResult } from "./bench.js";
import type { LatencySummary } from "./latency.js";
import type { ErrorCounts, PhaseResult, Progress } from "./runner.js";

const integer = new Intl.NumberFormat("en-US", { maximumFractionDigits: 0 });

export function formatRate(perSecond: number): string {
  return integer.format(Math.round(perSecond));
}

export function formatMs(ms: number): string {
  if (ms >= 100) return ms.toFixed(0);
  if (ms >= 10) return ms.toFixed(1);
  return ms.toFixed(2);
}

export function formatRatio(ratio: number | undefined): string {
  if (ratio === undefined) return "-";
  if (ratio >= 0.1) return ratio.toFixed(2);
  return ratio.toPrecision(2);
}

function pad(text: string, width: number, align: "left" | "right" = "right"): string {
  return align === "left" ? text.padEnd(width) : text.padStart(width);
}

function table(header: readonly string[], rows: readonly (readonly string[])[], leftColumns = 1): string[] {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: readonly string[]) =>
    "  " +
    cells
      .map((c, i) => pad(c, widths[i]!, i < leftColumns ? "left" : "right"))
      .join("  ")
      .trimEnd();
  return [line(header), ...rows.map(line)];
}

export function formatErrors(errors: ErrorCounts): string {
  if (errors.total === 0) return "none";
  return Object.entries(errors.byCode)
    .sort(([, a], [, b]) => b - a)
    .map(([code, count]) => `${code} ${integer.format(count)} (${JSON.stringify(errors.samples[code] ?? "")})`)
    .join(", ");
}

function latencyRows(latency: Readonly<Record<string, LatencySummary>>): string[][] {
  return Object.entries(latency).map(([kind, l]) => [
    kind,
    integer.format(l.count),
    formatMs(l.meanMs),
    formatMs(l.p50Ms),
    formatMs(l.p95Ms),
    formatMs(l.p99Ms),
    formatMs(l.p999Ms),
    formatMs(l.maxMs),
  ]);
}

const LATENCY_HEADER = ["operation", "count", "mean", "p50", "p95", "p99", "p99.9", "max ms"];

function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(1)} s`;
}

/** The worst p99 over a workload's operation kinds. */
export function worstP99(result: PhaseResult): number {
  return Math.max(0, ...Object.values(result.latency).map((l) => l.p99Ms));
}

function ceilingRow(label: string, result: PhaseResult, unit: string): string[] {
  const p99 = worstP99(result);
  return [
    label,
    `${formatRate(result.throughput)} ${unit}`,
    formatMs(Object.values(result.latency)[0]?.p50Ms ?? 0),
    formatMs(p99),
    formatErrors(result.errors),
  ];
}

export function formatReport(result: BenchResult): string {
  const o = result.options;
  const c = result.cluster;
  const out: string[] = [];
  out.push(`dynamo-bench: ${c.nodes.join(",")} (N=${c.n} R=${c.r} W=${c.w}, node ${c.version || "version unknown"})`);
  out.push(
    `  ${o.concurrency} concurrent clients${o.rate === undefined ? "" : ` at a target of ${formatRate(o.rate)} ops/s (open loop)`}, ${integer.format(o.records)} records, ${o.valueSize}-byte values, ` +
      `r=${o.r ?? "node default"} w=${o.w ?? "node default"}, ${o.protocol} protocol over HTTP/${httpVersionOf(o)}, seed ${o.seed}, warm-up ${seconds(o.warmupMs)} per phase`,
  );
  if (result.interrupted) out.push("  INTERRUPTED: the figures below cover only the part that ran.");
  out.push("");

  const { transport, storage } = result.ceilings;
  if (transport || storage) {
    out.push("Ceilings, measured in this run (p50/p99 in ms)");
    const rows: string[][] = [];
    if (transport)
      rows.push(
        ceilingRow(
          `transport: ${transport.method.replace("grpc.health.v1.", "")} on ${transport.node}, ${transport.concurrency} in flight`,
          transport,
          "calls/s",
        ),
      );
    if (storage) {
      rows.push(ceilingRow(`storage: classic-level put, ${storage.put.concurrency} in flight`, storage.put, "puts/s"));
      rows.push(ceilingRow(`storage: classic-level get, ${storage.get.concurrency} in flight`, storage.get, "gets/s"));
      rows.push(ceilingRow(`storage: put sync, ${storage.syncPut.concurrency} in flight`, storage.syncPut, "puts/s"));
      rows.push(ceilingRow(`storage: put sync in batches of ${storage.batchSize}, 1 batch in flight`, storage.syncBatchPut, "puts/s"));
    }
    out.push(...table(["ceiling", "throughput", "p50", "p99", "errors"], rows));
    out.push("");
  }

  const load = result.load;
  out.push(
    `Load: ${integer.format(load.operations)} inserts in ${seconds(load.durationMs)}, ${formatRate(load.throughput)} ops/s, p99 ${formatMs(worstP99(load))} ms, errors: ${formatErrors(load.errors)}`,
  );
  out.push("");

  if (result.workloads.length > 0) {
    out.push("Summary (× ceiling = workload throughput / ceiling throughput)");
    out.push(
      ...table(
        ["workload", "ops/s", "rpc/s", "× transport", "× storage", "worst p99 ms", "node CPU ms/op", "client CPU ms/op", "errors"],
        result.workloads.map((w) => [
          `${w.workload} ${w.distribution}`,
          formatRate(w.throughput),
          formatRate(w.requestsPerSecond),
          formatRatio(w.ratios.throughputToTransport),
          formatRatio(w.ratios.throughputToStorage),
          formatMs(worstP99(w)),
          formatCpu(w.cpu?.nodeMsPerOperation),
          formatCpu(w.cpu?.clientMsPerOperation),
          integer.format(w.errors.total),
        ]),
      ),
    );
    out.push("");
    for (const w of result.workloads) out.push(...formatWorkload(w), "");
  }
  return out.join("\n");
}

function formatCpu(ms: number | undefined): string {
  return ms === undefined ? "-" : ms.toFixed(3);
}

function formatWorkload(w: WorkloadResult): string[] {
  const lines = [`Workload ${w.workload}: ${w.description} (${w.distribution})${w.interrupted ? " [interrupted]" : ""}`];
  lines.push(
    `  ${formatRate(w.throughput)} ops/s (${formatRate(w.requestsPerSecond)} rpc/s) over ${seconds(w.durationMs)}; ` +
      `${formatRatio(w.ratios.throughputToTransport)} × transport ceiling, ${formatRatio(w.ratios.throughputToStorage)} × storage ceiling; ` +
      `reads with siblings ${integer.format(w.siblingReads)}, not found ${integer.format(w.notFound)}`,
  );
  lines.push(...table(LATENCY_HEADER, latencyRows(w.latency)));
  lines.push(`  errors: ${formatErrors(w.errors)}`);
  if (w.cpu) {
    lines.push(
      `  CPU per operation: nodes ${w.cpu.nodeMsPerOperation === undefined ? "not reported" : `${formatCpu(w.cpu.nodeMsPerOperation)} ms`}, this client ${formatCpu(w.cpu.clientMsPerOperation)} ms`,
    );
  }
  if (w.clusterCounters && Object.keys(w.clusterCounters).length > 0) {
    lines.push(
      `  node counters (+, all nodes): ${Object.entries(w.clusterCounters)
        .map(([k, v]) => `${k} ${integer.format(v)}`)
        .join(", ")}`,
    );
  }
  return lines;
}

export function formatProgress(p: Progress): string {
  const when = p.warmingUp ? "warm-up" : seconds(p.elapsedMs);
  return `${p.phase}  ${when}  ${formatRate(p.currentThroughput)} ops/s  ${integer.format(p.operations)} ops  errors ${integer.format(p.errors)}`;
}
