// The node's metrics, in one prom-client registry: what GET /metrics exposes (Prometheus text,
// or OpenMetrics when asked) and what AdminService Status reports as counters.
//
// - `count(name)` keeps the node's simple event counters (a name → count map read by Status)
//   and mirrors each as the Prometheus counter `dynamo_<name>_total` (a `_ms` name becomes
//   `_seconds`, in seconds), created the first time it counts.
// - Typed metrics for what needs labels or distributions: requests by method and code, their
//   latency, replica calls by peer, sibling-set sizes.
// - Gauges read at scrape time from whoever owns the state (membership, hints, storage), so a
//   scrape costs nothing between scrapes; `gauge()` registers them.
// Labels are bounded: method names, result codes, node ids and states. Never keys or client
// addresses.
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from "prom-client";

/** Latency buckets, seconds: 0.5 ms to 10 s. */
export const LATENCY_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/** What the node's event counters mean, for the metrics' HELP lines. */
const HELP: Record<string, string> = {
  gets: "Get requests this node coordinated",
  puts: "Put requests this node coordinated",
  deletes: "Delete requests this node coordinated",
  forwarded_writes: "Client writes this node handed to a replica of the key to coordinate (it holds no replica of the key)",
  forwarded_writes_coordinated: "Client writes other nodes forwarded to this node that it coordinated (counted in puts and deletes too)",
  read_repairs: "Stale replicas repaired after a read",
  hints_stored: "Hints stored for replicas that could not be reached",
  hints_delivered: "Hints delivered to their target",
  hints_expired: "Hints dropped because they outlived --hint-ttl-ms",
  anti_entropy_rounds: "Anti-entropy rounds run",
  anti_entropy_keys_repaired: "Keys anti-entropy repaired on either side",
  tombstones_purged: "Tombstones purged after their grace period",
  stray_keys_removed: "Keys removed that this node no longer owns (left behind by a join), once the ring stayed unchanged for --cleanup-delay-ms",
  gossip_messages_sent: "Gossip messages sent",
  gossip_messages_received: "Gossip messages received",
};

const NON_COUNTERS_NAMED_TOTAL = ["nodejs_active_handles_total", "nodejs_active_requests_total", "nodejs_active_resources_total"];

export interface MetricsOptions {
  /** Also collect process and event-loop metrics (prom-client's defaults). Once per process. */
  readonly process?: boolean;
}

export class Metrics {
  readonly registry = new Registry();
  private readonly values = new Map<string, number>();
  private readonly mirrors = new Map<string, { counter: Counter; scale: number }>();

  /** Public requests this node answered, by method ("Get", "http_PUT", …) and Connect code ("ok", "not_found", …). */
  readonly requests = new Counter({
    name: "dynamo_requests_total",
    help: "Client requests this node answered, by method and result code",
    labelNames: ["method", "code"] as const,
    registers: [this.registry],
  });
  readonly requestSeconds = new Histogram({
    name: "dynamo_request_duration_seconds",
    help: "Time from a client request's arrival to its answer, by method",
    labelNames: ["method"] as const,
    buckets: LATENCY_BUCKETS,
    registers: [this.registry],
  });
  /** Calls to other replicas, by peer node id and operation ("write", "read", …) and outcome. */
  readonly replicaCalls = new Counter({
    name: "dynamo_replica_calls_total",
    help: "Replica operations this node sent to peers, by peer, operation and outcome (ok or failed)",
    labelNames: ["peer", "op", "outcome"] as const,
    registers: [this.registry],
  });
  readonly replicaSeconds = new Histogram({
    name: "dynamo_replica_call_duration_seconds",
    help: "Latency of replica operations sent to peers, by peer and operation",
    labelNames: ["peer", "op"] as const,
    buckets: LATENCY_BUCKETS,
    registers: [this.registry],
  });
  readonly siblings = new Histogram({
    name: "dynamo_read_siblings",
    help: "Values (siblings) a read returned",
    buckets: [1, 2, 3, 5, 10, 25, 50, 100],
    registers: [this.registry],
  });
  readonly writeBatchSize = new Histogram({
    name: "dynamo_storage_write_batch_size",
    help: "Records per storage write batch (group commit)",
    buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256],
    registers: [this.registry],
  });
  readonly syncSeconds = new Histogram({
    name: "dynamo_storage_sync_duration_seconds",
    help: "Time to write and fsync one write batch (--sync mode)",
    buckets: LATENCY_BUCKETS,
    registers: [this.registry],
  });

  constructor(options: MetricsOptions = {}) {
    if (options.process) {
      collectDefaultMetrics({ register: this.registry, eventLoopMonitoringPrecision: 20 });
      // Gauges named like counters, which `promtool check metrics` rejects; the same totals are
      // the sums of nodejs_active_handles / _requests / _resources by type.
      for (const name of NON_COUNTERS_NAMED_TOTAL) this.registry.removeSingleMetric(name);
    }
    // The well-known counters exist from the start (at 0), so that rates and alerts over them
    // have a series before the first event.
    for (const name of Object.keys(HELP)) this.mirror(name);
  }

  /** Counts an event (see the header). */
  count(name: string, by = 1): void {
    this.values.set(name, (this.values.get(name) ?? 0) + by);
    const mirror = this.mirror(name);
    mirror.counter.inc(by * mirror.scale);
  }

  private mirror(name: string): { counter: Counter; scale: number } {
    let mirror = this.mirrors.get(name);
    if (!mirror) {
      const inSeconds = name.endsWith("_ms");
      const base = inSeconds ? `${name.slice(0, -3)}_seconds` : name;
      const counter = new Counter({ name: `dynamo_${base}_total`, help: HELP[name] ?? `Count of ${name.replaceAll("_", " ")}`, registers: [this.registry] });
      mirror = { counter, scale: inSeconds ? 1 / 1000 : 1 };
      this.mirrors.set(name, mirror);
    }
    return mirror;
  }

  get(name: string): number {
    return this.values.get(name) ?? 0;
  }

  /** Every event counter by name, sorted: what AdminService Status reports. */
  snapshot(): Record<string, number> {
    return Object.fromEntries([...this.values].sort(([a], [b]) => a.localeCompare(b)));
  }

  /** Records one answered request. */
  observeRequest(method: string, code: string, seconds: number): void {
    this.requests.inc({ method, code });
    this.requestSeconds.observe({ method }, seconds);
  }

  /** A gauge whose values are read at scrape time: `read` returns one value per label set. */
  gauge<L extends string>(name: string, help: string, labelNames: readonly L[], read: () => Iterable<[Partial<Record<L, string>>, number]>): void {
    new Gauge<L>({
      name,
      help,
      labelNames,
      registers: [this.registry],
      collect() {
        this.reset();
        for (const [labels, value] of read()) this.set(labels, value);
      },
    });
  }

  /** The exposition: Prometheus text 0.0.4, or OpenMetrics 1.0.0 when `openMetrics`. */
  async exposition(openMetrics: boolean): Promise<{ contentType: string; body: string }> {
    const text = await this.registry.metrics();
    if (!openMetrics) return { contentType: Registry.PROMETHEUS_CONTENT_TYPE, body: text };
    return { contentType: Registry.OPENMETRICS_CONTENT_TYPE, body: toOpenMetrics(text) };
  }
}

/**
 * Prometheus text → OpenMetrics text. The differences for what this registry holds: a
 * counter's family name has no `_total` (its samples do), and the exposition ends with `# EOF`.
 * (prom-client can emit OpenMetrics itself, but only from a registry fixed to that format, and
 * it renames the shared metric objects as it goes.)
 */
export function toOpenMetrics(text: string): string {
  const lines = text.split("\n").filter((line) => line !== "");
  const counters = new Set<string>();
  for (const line of lines) {
    const m = /^# TYPE (\S+) counter$/.exec(line);
    if (m) counters.add(m[1]!);
  }
  const family = (name: string) => (counters.has(name) ? name.replace(/_total$/, "") : name);
  const out = lines.map((line) => {
    const meta = /^# (HELP|TYPE) (\S+)(.*)$/.exec(line);
    if (meta) return `# ${meta[1]} ${family(meta[2]!)}${meta[3]}`;
    const sample = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(.*)$/.exec(line);
    if (sample && counters.has(sample[1]!) && !sample[1]!.endsWith("_total")) return `${sample[1]}_total${sample[2]}`;
    return line;
  });
  return `${out.join("\n")}\n# EOF\n`;
}

/** Whether an Accept header asks for OpenMetrics (as Prometheus does when it may). */
export function wantsOpenMetrics(accept: string | undefined): boolean {
  return accept !== undefined && /application\/openmetrics-text/i.test(accept);
}
