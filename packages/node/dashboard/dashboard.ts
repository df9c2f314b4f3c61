// The dashboard page's script (compiled by the node's build into dist/dashboard/dashboard.js).
// Every POLL_MS it reads this node's /ui/state.json (members, ring, hints, anti-entropy) and its
// /metrics (Prometheus text), and redraws. Throughput and latency come from the differences
// between two scrapes of dynamo_requests_total and dynamo_request_duration_seconds. Everything
// from the cluster reaches the DOM through textContent, never as markup.
export {};

const POLL_MS = 1500;
const HISTORY = 80; // samples kept per chart: two minutes at POLL_MS
const COLORS = ["#3b82f6", "#16a34a", "#d97706", "#db2777", "#7c3aed", "#0891b2", "#65a30d", "#dc2626"];

// ---- The state JSON (protobuf JSON of AdminService Status, ListHints, AntiEntropyStatus:
// 64-bit integers arrive as strings, fields at their default value are left out).
interface MemberJson {
  nodeId?: string;
  address?: string;
  state?: string;
  incarnation?: string;
  lastHeardMs?: string;
  ownership?: number;
}
interface StateJson {
  status: {
    nodeId?: string;
    n?: number;
    r?: number;
    w?: number;
    version?: string;
    uptimeMs?: string;
    members?: MemberJson[];
    rebuilding?: boolean;
    notReadyReason?: string;
  };
  hints: { targets?: Array<{ nodeId?: string; count?: string; bytes?: string; oldestAgeMs?: string; nextAttemptInMs?: string }>; bytes?: string };
  antiEntropy: {
    intervalMs?: string;
    ready?: boolean;
    ranges?: Array<{
      range?: { start?: number; end?: number };
      peers?: string[];
      keys?: string;
      lastExchangeAgeMs?: string;
      lastOutcome?: string;
      keysRepaired?: string;
    }>;
  };
}

// ---- Prometheus text: the two request metrics, by method.
interface Scrape {
  at: number;
  /** method → requests (all codes). */
  requests: Map<string, number>;
  /** method → upper bound → cumulative count. */
  buckets: Map<string, Map<number, number>>;
}

const SAMPLE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/;
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;

export function parseScrape(text: string, at: number): Scrape {
  const scrape: Scrape = { at, requests: new Map(), buckets: new Map() };
  for (const line of text.split("\n")) {
    if (line.startsWith("#")) continue;
    const m = SAMPLE.exec(line);
    if (!m) continue;
    const [, name, labelText = "", valueText] = m;
    if (name !== "dynamo_requests_total" && name !== "dynamo_request_duration_seconds_bucket") continue;
    const labels = new Map([...labelText.matchAll(LABEL)].map((l) => [l[1]!, l[2]!]));
    const method = labels.get("method");
    const value = Number(valueText);
    if (!method || !Number.isFinite(value)) continue;
    if (name === "dynamo_requests_total") {
      scrape.requests.set(method, (scrape.requests.get(method) ?? 0) + value);
    } else {
      const le = labels.get("le") === "+Inf" ? Infinity : Number(labels.get("le"));
      if (Number.isNaN(le)) continue;
      const perMethod = scrape.buckets.get(method) ?? new Map<number, number>();
      perMethod.set(le, (perMethod.get(le) ?? 0) + value);
      scrape.buckets.set(method, perMethod);
    }
  }
  return scrape;
}

/** The q-quantile (seconds) of the observations between two cumulative histograms, as Prometheus' histogram_quantile estimates it. */
export function quantileBetween(before: Map<number, number> | undefined, after: Map<number, number>, q: number): number | undefined {
  const bounds = [...after.keys()].sort((a, b) => a - b);
  const counts = bounds.map((le) => Math.max(0, (after.get(le) ?? 0) - (before?.get(le) ?? 0)));
  const total = counts[counts.length - 1] ?? 0;
  if (total === 0) return undefined;
  const rank = q * total;
  for (let i = 0; i < bounds.length; i++) {
    if (counts[i]! >= rank) {
      const upper = bounds[i]!;
      const lower = i === 0 ? 0 : bounds[i - 1]!;
      if (upper === Infinity) return lower;
      const below = i === 0 ? 0 : counts[i - 1]!;
      const inBucket = counts[i]! - below;
      return inBucket === 0 ? upper : lower + (upper - lower) * ((rank - below) / inBucket);
    }
  }
  return undefined;
}

// ---- Rendering helpers.
const byId = <T extends Element>(id: string): T => {
  const el = document.getElementById(id);
  if (!el) throw new Error(`the page has no #${id}`);
  return el as unknown as T;
};

function cell(row: HTMLTableRowElement, text: string, className?: string): HTMLTableCellElement {
  const td = row.insertCell();
  td.textContent = text;
  if (className) td.className = className;
  return td;
}

function fillTable(id: string, rows: string[][], empty: string, decorate?: (row: HTMLTableRowElement, i: number) => void): void {
  const body = byId<HTMLTableElement>(id).tBodies[0]!;
  body.replaceChildren();
  if (rows.length === 0) {
    const td = cell(body.insertRow(), empty, "empty");
    td.colSpan = 8;
    return;
  }
  rows.forEach((values, i) => {
    const row = body.insertRow();
    for (const v of values) cell(row, v);
    decorate?.(row, i);
  });
}

const num = (s: string | undefined) => Number(s ?? 0);

function duration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const s = ms / 1000;
  if (s < 90) return `${s.toFixed(s < 10 ? 1 : 0)} s`;
  const m = s / 60;
  if (m < 90) return `${Math.round(m)} min`;
  return `${(m / 60).toFixed(1)} h`;
}

function bytes(n: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return `${n.toFixed(i === 0 ? 0 : 1)} ${units[i]}`;
}

const colorOf = new Map<string, string>();
function color(series: string): string {
  let c = colorOf.get(series);
  if (!c) {
    c = COLORS[colorOf.size % COLORS.length]!;
    colorOf.set(series, c);
  }
  return c;
}

const SVG = "http://www.w3.org/2000/svg";

/** Redraws a line chart: one polyline per series, y from 0 to the largest value shown. */
function drawChart(svgId: string, legendId: string, series: Map<string, Array<number | undefined>>, format: (v: number) => string): void {
  const svg = byId<SVGSVGElement>(svgId);
  const [width, height] = [600, 160];
  let max = 0;
  for (const values of series.values()) for (const v of values) if (v !== undefined && v > max) max = v;
  const top = max > 0 ? max * 1.1 : 1;
  svg.replaceChildren();
  for (const f of [0.25, 0.5, 0.75]) {
    const y = height - f * height;
    const line = document.createElementNS(SVG, "line");
    line.setAttribute("class", "grid");
    line.setAttribute("x1", "0");
    line.setAttribute("x2", String(width));
    line.setAttribute("y1", String(y));
    line.setAttribute("y2", String(y));
    svg.append(line);
    const label = document.createElementNS(SVG, "text");
    label.setAttribute("x", "2");
    label.setAttribute("y", String(y - 2));
    label.textContent = format(top * f);
    svg.append(label);
  }
  const legend = byId<HTMLUListElement>(legendId);
  legend.replaceChildren();
  for (const [name, values] of series) {
    const points: string[] = [];
    values.forEach((v, i) => {
      if (v === undefined) return;
      const x = (i / (HISTORY - 1)) * width;
      points.push(`${x.toFixed(1)},${(height - (v / top) * height).toFixed(1)}`);
    });
    const line = document.createElementNS(SVG, "polyline");
    line.setAttribute("points", points.join(" "));
    line.setAttribute("stroke", color(name));
    line.dataset.series = name;
    svg.append(line);
    const item = document.createElement("li");
    item.style.setProperty("--swatch", color(name));
    const last = [...values].reverse().find((v) => v !== undefined);
    item.textContent = `${name} ${last === undefined ? "–" : format(last)}`;
    legend.append(item);
  }
}

// ---- The views.
function renderState(state: StateJson): void {
  const s = state.status;
  byId("node-id").textContent = s.nodeId ?? "";
  document.title = `dynamo-ts ${s.nodeId ?? ""}`;
  byId("summary").textContent = `version ${s.version ?? "?"} · up ${duration(num(s.uptimeMs))} · N=${s.n ?? "?"} R=${s.r ?? "?"} W=${s.w ?? "?"}`;
  const readiness = byId<HTMLElement>("readiness");
  readiness.textContent = s.notReadyReason ? `not serving: ${s.notReadyReason}` : s.rebuilding ? "serving, rebuilding its data" : "serving";
  readiness.className = `readiness ${s.notReadyReason ? "not-ready" : "ready"}`;

  const members = [...(s.members ?? [])].sort((a, b) => (a.nodeId ?? "").localeCompare(b.nodeId ?? ""));
  const alive = members.filter((m) => m.state === "alive").length;
  byId("members-count").textContent = `${alive} of ${members.length} alive`;
  fillTable(
    "members",
    members.map((m) => [
      m.nodeId ?? "",
      m.address ?? "",
      m.state ?? "unknown",
      m.incarnation ?? "0",
      m.nodeId === s.nodeId ? "this node" : m.lastHeardMs ? `${duration(num(m.lastHeardMs))} ago` : "never",
    ]),
    "no members",
    (row, i) => {
      const m = members[i]!;
      row.dataset.node = m.nodeId ?? "";
      row.dataset.state = m.state ?? "unknown";
      row.cells[2]!.className = `state state-${m.state ?? "unknown"}`;
    },
  );

  const ring = byId<HTMLDivElement>("ring");
  ring.replaceChildren();
  for (const m of members) {
    const bar = document.createElement("div");
    bar.className = "bar";
    bar.dataset.node = m.nodeId ?? "";
    const name = document.createElement("span");
    name.textContent = m.nodeId ?? "";
    const track = document.createElement("div");
    track.className = "track";
    const fill = document.createElement("div");
    fill.className = "fill";
    fill.style.width = `${((m.ownership ?? 0) * 100).toFixed(1)}%`;
    track.append(fill);
    const value = document.createElement("span");
    value.className = "value";
    value.textContent = `${((m.ownership ?? 0) * 100).toFixed(1)}%`;
    bar.append(name, track, value);
    ring.append(bar);
  }

  const targets = state.hints.targets ?? [];
  byId("hints-total").textContent = `${targets.reduce((sum, t) => sum + num(t.count), 0)} hints, ${bytes(num(state.hints.bytes))}`;
  fillTable(
    "hints",
    targets.map((t) => [
      t.nodeId ?? "",
      t.count ?? "0",
      bytes(num(t.bytes)),
      duration(num(t.oldestAgeMs)),
      t.nextAttemptInMs ? `in ${duration(num(t.nextAttemptInMs))}` : "now",
    ]),
    "none: every replica is up to date",
  );

  const ae = state.antiEntropy;
  const ranges = ae.ranges ?? [];
  const exchanged = ranges.filter((r) => r.lastOutcome).length;
  byId("anti-entropy-summary").textContent = ae.ready
    ? `${exchanged} of ${ranges.length} ranges exchanged${num(ae.intervalMs) > 0 ? `, every ${duration(num(ae.intervalMs))}` : ", periodic exchanges off"}`
    : "building Merkle trees";
  const shown = [...ranges].sort((a, b) => num(b.lastExchangeAgeMs) - num(a.lastExchangeAgeMs)).slice(0, 12);
  fillTable(
    "anti-entropy",
    shown.map((r) => [
      // As `dynamo repair --range START:END` takes it.
      `${r.range?.start ?? 0}:${r.range?.end ?? 0}`,
      (r.peers ?? []).join(", "),
      r.keys ?? "0",
      r.lastOutcome ? `${duration(num(r.lastExchangeAgeMs))} ago` : "never",
      r.lastOutcome ?? "",
      r.keysRepaired ?? "0",
    ]),
    "no ranges",
  );
}

const throughput = new Map<string, Array<number | undefined>>();
const latency = new Map<string, Array<number | undefined>>();
const latencyMethods = new Set<string>();
let previous: Scrape | undefined;

function push(history: Map<string, Array<number | undefined>>, name: string, value: number | undefined): void {
  const values = history.get(name) ?? Array.from({ length: HISTORY }, () => undefined);
  values.push(value);
  values.splice(0, values.length - HISTORY);
  history.set(name, values);
}

function renderMetrics(scrape: Scrape): void {
  const before = previous;
  previous = scrape;
  if (!before) return;
  const seconds = (scrape.at - before.at) / 1000;
  if (seconds <= 0) return;
  let total = 0;
  const methods = new Set([...scrape.requests.keys(), ...throughput.keys()]);
  for (const method of [...methods].sort()) {
    const rate = Math.max(0, (scrape.requests.get(method) ?? 0) - (before.requests.get(method) ?? 0)) / seconds;
    total += rate;
    push(throughput, method, rate);
  }
  for (const method of scrape.buckets.keys()) latencyMethods.add(method);
  for (const method of [...latencyMethods].sort()) {
    const after = scrape.buckets.get(method);
    const p50 = after && quantileBetween(before.buckets.get(method), after, 0.5);
    const p99 = after && quantileBetween(before.buckets.get(method), after, 0.99);
    push(latency, `p50 ${method}`, p50 === undefined ? undefined : p50 * 1000);
    push(latency, `p99 ${method}`, p99 === undefined ? undefined : p99 * 1000);
  }
  byId("throughput-total").textContent = total.toFixed(total < 10 ? 1 : 0);
  drawChart("throughput-chart", "throughput-legend", throughput, (v) => v.toFixed(v < 10 ? 1 : 0));
  drawChart("latency-chart", "latency-legend", latency, (v) => `${v.toFixed(v < 10 ? 2 : 0)} ms`);
}

/** The admin credential the user gave (kept for this tab only), sent as a bearer token. */
const CREDENTIAL_KEY = "dynamo-ts.credential";

function authHeaders(credential: string | null): Record<string, string> {
  return credential ? { authorization: `Bearer ${credential}` } : {};
}

function askForCredential(message: string): void {
  const form = byId<HTMLFormElement>("login");
  form.hidden = false;
  byId("login-error").textContent = message;
}

function setUpLogin(): void {
  const form = byId<HTMLFormElement>("login");
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const input = byId<HTMLInputElement>("credential");
    sessionStorage.setItem(CREDENTIAL_KEY, input.value.trim());
    input.value = "";
    form.hidden = true;
    void poll();
  });
}

async function poll(): Promise<void> {
  const connection = byId<HTMLElement>("connection");
  // The credential this poll uses: an answer to it says nothing about one entered since.
  const credential = sessionStorage.getItem(CREDENTIAL_KEY);
  try {
    const [stateResponse, metricsResponse] = await Promise.all([
      fetch("/ui/state.json", { cache: "no-store", headers: authHeaders(credential) }),
      fetch("/metrics", { cache: "no-store" }),
    ]);
    if (stateResponse.status === 401 || stateResponse.status === 403) {
      const { message } = (await stateResponse.json().catch(() => ({ message: "" }))) as { message?: string };
      if (sessionStorage.getItem(CREDENTIAL_KEY) !== credential) return; // a newer credential was entered meanwhile
      sessionStorage.removeItem(CREDENTIAL_KEY);
      askForCredential(message ?? "");
      if (metricsResponse.ok) renderMetrics(parseScrape(await metricsResponse.text(), Date.now()));
      connection.hidden = true;
      return;
    }
    if (!stateResponse.ok) throw new Error(`state: HTTP ${stateResponse.status}`);
    byId<HTMLFormElement>("login").hidden = true;
    byId("login-error").textContent = "";
    renderState((await stateResponse.json()) as StateJson);
    if (metricsResponse.ok) renderMetrics(parseScrape(await metricsResponse.text(), Date.now()));
    connection.hidden = true;
  } catch (err) {
    connection.hidden = false;
    connection.textContent = `cannot reach this node: ${err instanceof Error ? err.message : String(err)}`;
  }
}

if (typeof document !== "undefined") {
  setUpLogin();
  void poll();
  setInterval(() => void poll(), POLL_MS);
}
