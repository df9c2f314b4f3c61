#!/usr/bin/env node
// The peers benchmark: dynamo-ts beside a 3-node etcd (Debian's etcd-server) on the same machine,
// driven one after the other, in one run, by the same load generator with the same settings:
// one `wrk` process per node at once (1 thread, 11 connections each), 100-byte values, random
// keys out of 100,000; puts, then gets of the keys the puts wrote. dynamo-ts is called over
// Connect JSON on HTTP/1.1 (POST /dynamo.v1.KVService/Put and /Get), etcd over its v3 JSON
// gateway (POST /v3/kv/put and /v3/kv/range). Prints requests/s, latency, the servers' CPU time
// per request (user + system of the server processes, from /proc, over each load) and the ratios;
// then each system's no-op ceiling under the same load (GET /livez on a dynamo-ts node, GET
// /version on etcd): what its HTTP serving alone allows on this machine.
//
//   npm run bench:peers -- [--duration 10] [--runs 1] [--connections 11] [--systems dynamo,etcd]
//
// Everything listens on 127.0.0.1 and is stopped (and its data deleted) at the end.
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const HELP = `Usage: npm run bench:peers -- [options]

  --duration S        seconds per load (default 10)
  --warmup S          on each fresh cluster first, S seconds of puts and then S seconds of gets,
                      not measured (default 0: the figures then include the JIT warm-up of a
                      just-started node, and the first gets V8's compiling for gets)
  --runs K            rounds of (puts, gets) per system (default 1)
  --connections C     connections per wrk process (default 11); one wrk process per node
  --keys K            key space (default 100000)
  --value-size B      value bytes (default 100)
  --systems LIST      dynamo,etcd (default both)
  --dynamo-base-port P  first dynamo-ts port (default 7301)
  --etcd-base-port P    first etcd client port (default 23791; peers use P+10..)
  --node-args "..."   extra flags for every dynamo-ts node (e.g. "--sync")
  --no-ceiling        skip the no-op ceiling load (GET /livez, GET /version) after the runs
  --json              print the result as JSON on stdout
Needs wrk and etcd (Debian packages wrk, etcd-server) and a built workspace (npm run build).
`;

const { values: opt } = parseArgs({
  options: {
    duration: { type: "string", default: "10" },
    warmup: { type: "string", default: "0" },
    runs: { type: "string", default: "1" },
    connections: { type: "string", default: "11" },
    keys: { type: "string", default: "100000" },
    "value-size": { type: "string", default: "100" },
    systems: { type: "string", default: "dynamo,etcd" },
    "dynamo-base-port": { type: "string", default: "7301" },
    "etcd-base-port": { type: "string", default: "23791" },
    "node-args": { type: "string", default: "" },
    "no-ceiling": { type: "boolean", default: false },
    json: { type: "boolean", default: false },
    help: { type: "boolean", short: "h", default: false },
  },
});
if (opt.help) {
  console.log(HELP);
  process.exit(0);
}
const int = (name) => {
  const v = Number(opt[name]);
  if (!Number.isInteger(v) || v <= 0) {
    console.error(`bench-peers: --${name} must be a positive integer, got '${opt[name]}'`);
    process.exit(2);
  }
  return v;
};
const DURATION = int("duration");
const WARMUP = Number(opt.warmup);
if (!Number.isInteger(WARMUP) || WARMUP < 0) {
  console.error(`bench-peers: --warmup must be a whole number of seconds, got '${opt.warmup}'`);
  process.exit(2);
}
const RUNS = int("runs");
const CONNECTIONS = int("connections");
const KEYS = int("keys");
const VALUE_SIZE = int("value-size");
const SYSTEMS = opt.systems.split(",").map((s) => s.trim());
for (const s of SYSTEMS) {
  if (s !== "dynamo" && s !== "etcd") {
    console.error(`bench-peers: unknown system '${s}' (dynamo, etcd)`);
    process.exit(2);
  }
}
for (const tool of ["wrk", ...(SYSTEMS.includes("etcd") ? ["etcd"] : [])]) {
  if (spawnSync("sh", ["-c", `command -v ${tool}`]).status !== 0) {
    console.error(`bench-peers: '${tool}' is not installed (apt-get install ${tool === "etcd" ? "etcd-server" : tool})`);
    process.exit(2);
  }
}

const log = (line) => process.stderr.write(`bench-peers: ${line}\n`);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const work = mkdtempSync(join(tmpdir(), "dynamo-bench-peers-"));
const children = [];
function start(command, args, env = {}) {
  const child = spawn(command, args, { stdio: ["ignore", "ignore", "pipe"], env: { ...process.env, ...env } });
  let tail = "";
  child.stderr.on("data", (d) => (tail = (tail + d).slice(-4000)));
  child.tailOfStderr = () => tail;
  children.push(child);
  return child;
}
function stopAll() {
  for (const c of children) if (c.exitCode === null) c.kill("SIGTERM");
}
process.on("exit", () => {
  for (const c of children) if (c.exitCode === null) c.kill("SIGKILL");
  rmSync(work, { recursive: true, force: true });
});
for (const sig of ["SIGINT", "SIGTERM"]) process.on(sig, () => process.exit(130));

/** user + system CPU seconds of a process and all its threads, from /proc/<pid>/stat. */
function cpuSeconds(pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) / 100; // utime, stime in clock ticks (USER_HZ = 100)
}
const totalCpu = (pids) => pids.reduce((sum, pid) => sum + cpuSeconds(pid), 0);

async function waitFor(url, init, what) {
  for (let i = 0; i < 300; i++) {
    const ok = await fetch(url, init).then(
      (r) => r.ok,
      () => false,
    );
    if (ok) return;
    await sleep(100);
  }
  throw new Error(`${what} did not answer ${url} within 30 s`);
}

const valueBytes = Buffer.alloc(VALUE_SIZE, "v");
/** Each system's no-op endpoint: its ceiling is the same load on it. */
const CEILING_PATHS = { "dynamo-ts": "/livez", etcd: "/version" };
const b64 = (s) => Buffer.from(s).toString("base64");

/**
 * A wrk Lua script: random keys out of KEYS, one JSON body per request (POST; a bodyless GET when
 * bodyLua is undefined), a JSON summary at the end.
 */
function wrkScript(path, bodyLua, okStatuses = [200]) {
  return `
local keys = ${KEYS}
local value = "${valueBytes.toString("base64")}"
local b64chars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
local function base64(data)
  return ((data:gsub('.', function(x)
    local r, b = '', x:byte()
    for i = 8, 1, -1 do r = r .. (b % 2 ^ i - b % 2 ^ (i - 1) > 0 and '1' or '0') end
    return r
  end) .. '0000'):gsub('%d%d%d?%d?%d?%d?', function(x)
    if (#x < 6) then return '' end
    local c = 0
    for i = 1, 6 do c = c + (x:sub(i, i) == '1' and 2 ^ (6 - i) or 0) end
    return b64chars:sub(c + 1, c + 1)
  end) .. ({ '', '==', '=' })[#data % 3 + 1])
end
local headers = { ["Content-Type"] = "application/json" }
bad = 0
local threads = {}
function setup(thread)
  thread:set("id", math.random(1, 1000000))
  table.insert(threads, thread)
end
function init(args) math.randomseed(os.time() * 1000 + id) end
function request()
  local key = "bench-" .. math.random(1, keys)
  return ${bodyLua === undefined ? `wrk.format("GET", "${path}")` : `wrk.format("POST", "${path}", headers, ${bodyLua})`}
end
function response(status, headers, body)
  if ${okStatuses.map((c) => `status ~= ${c}`).join(" and ")} then bad = bad + 1 end
end
function done(summary, latency, requests)
  local bad = 0
  for _, t in ipairs(threads) do bad = bad + t:get("bad") end
  io.write(string.format('WRK-JSON {"requests":%d,"seconds":%f,"non2xx":%d,"socketErrors":%d,"p50us":%d,"p99us":%d}\\n',
    summary.requests, summary.duration / 1e6, bad,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    latency:percentile(50), latency:percentile(99)))
end
`;
}

/** Runs one wrk per endpoint at once; returns their summed figures. */
async function load(endpoints, scriptPath, seconds = DURATION) {
  const runs = endpoints.map(
    (endpoint) =>
      new Promise((resolve, reject) => {
        const child = spawn("wrk", ["-t1", `-c${CONNECTIONS}`, `-d${seconds}s`, "--timeout", "5s", "-s", scriptPath, endpoint], {
          stdio: ["ignore", "pipe", "pipe"],
        });
        let out = "";
        child.stdout.on("data", (d) => (out += d));
        child.stderr.on("data", (d) => (out += d));
        // "close", not "exit": the process can exit before its output has all been read.
        child.on("close", (code) => {
          const line = out.split("\n").find((l) => l.startsWith("WRK-JSON "));
          if (code !== 0 || !line) reject(new Error(`wrk against ${endpoint} failed (exit ${code}):\n${out}`));
          else resolve(JSON.parse(line.slice("WRK-JSON ".length)));
        });
      }),
  );
  const results = await Promise.all(runs);
  return {
    requests: results.reduce((s, r) => s + r.requests, 0),
    perSecond: results.reduce((s, r) => s + r.requests / r.seconds, 0),
    failed: results.reduce((s, r) => s + r.non2xx + r.socketErrors, 0),
    p50ms: Math.max(...results.map((r) => r.p50us)) / 1000,
    p99ms: Math.max(...results.map((r) => r.p99us)) / 1000,
  };
}

async function measure(system, pids, endpoints, scripts) {
  const rows = [];
  if (WARMUP > 0) {
    // Both operations: a node compiles its get path only when gets arrive, and otherwise does
    // so during the first measured gets (about 7% of their CPU in a profile).
    for (const op of ["put", "get"]) {
      log(`${system}: ${WARMUP} s of ${op}s, not measured (warm-up)`);
      await load(endpoints, scripts[op], WARMUP);
    }
  }
  for (let run = 1; run <= RUNS; run++) {
    for (const op of ["put", "get"]) {
      log(`${system}: ${op}s, run ${run}/${RUNS} (${endpoints.length} × wrk -t1 -c${CONNECTIONS} -d${DURATION}s)`);
      const cpu0 = totalCpu(pids);
      const result = await load(endpoints, scripts[op]);
      const cpu = totalCpu(pids) - cpu0;
      rows.push({ system, op, run, ...result, cpuMsPerRequest: (cpu * 1000) / Math.max(1, result.requests) });
    }
  }
  if (!opt["no-ceiling"]) {
    log(`${system}: no-op ceiling (GET ${CEILING_PATHS[system]}, ${endpoints.length} × wrk -t1 -c${CONNECTIONS} -d${DURATION}s)`);
    const cpu0 = totalCpu(pids);
    const result = await load(endpoints, scripts.ceiling);
    const cpu = totalCpu(pids) - cpu0;
    rows.push({ system, op: "ceiling", run: 1, ...result, cpuMsPerRequest: (cpu * 1000) / Math.max(1, result.requests) });
  }
  return rows;
}

async function benchDynamo() {
  const base = int("dynamo-base-port");
  const extra = opt["node-args"].split(/\s+/).filter(Boolean);
  const cluster = start(
    process.execPath,
    [join(root, "scripts/local-cluster.mjs"), "--nodes", "3", "--base-port", String(base), "--data-dir", join(work, "dynamo"), "--quiet", ...extra],
    {
      DYNAMO_EXIT_WITH_PARENT: "1",
    },
  );
  const endpoints = [0, 1, 2].map((i) => `http://127.0.0.1:${base + i}`);
  try {
    for (const e of endpoints) await waitFor(`${e}/readyz`, undefined, "dynamo-ts");
  } catch (err) {
    throw new Error(`${err.message}\n${cluster.tailOfStderr()}`);
  }
  const pids = spawnSync("pgrep", ["-f", join(work, "dynamo", "node")], { encoding: "utf8" })
    .stdout.trim()
    .split("\n")
    .filter(Boolean)
    .map(Number);
  if (pids.length !== 3) throw new Error(`expected 3 dynamo-ts node processes, found ${pids.length}`);
  const scripts = {
    put: join(work, "dynamo-put.lua"),
    get: join(work, "dynamo-get.lua"),
    ceiling: join(work, "dynamo-ceiling.lua"),
  };
  writeFileSync(scripts.ceiling, wrkScript(CEILING_PATHS["dynamo-ts"], undefined));
  writeFileSync(scripts.put, wrkScript("/dynamo.v1.KVService/Put", `'{"key":"' .. key .. '","value":"' .. value .. '"}'`));
  writeFileSync(scripts.get, wrkScript("/dynamo.v1.KVService/Get", `'{"key":"' .. key .. '"}'`, [200, 404]));
  try {
    return await measure("dynamo-ts", pids, endpoints, scripts);
  } finally {
    cluster.kill("SIGINT");
    await new Promise((r) => (cluster.exitCode !== null ? r() : cluster.once("exit", r)));
  }
}

async function benchEtcd() {
  const base = int("etcd-base-port");
  const names = ["e1", "e2", "e3"];
  const client = (i) => `http://127.0.0.1:${base + i}`;
  const peer = (i) => `http://127.0.0.1:${base + 10 + i}`;
  const initialCluster = names.map((n, i) => `${n}=${peer(i)}`).join(",");
  const procs = names.map((name, i) =>
    start("etcd", [
      "--name",
      name,
      "--data-dir",
      join(work, "etcd", name),
      "--listen-client-urls",
      client(i),
      "--advertise-client-urls",
      client(i),
      "--listen-peer-urls",
      peer(i),
      "--initial-advertise-peer-urls",
      peer(i),
      "--initial-cluster",
      initialCluster,
      "--initial-cluster-state",
      "new",
      "--initial-cluster-token",
      "bench-peers",
      "--log-level",
      "error",
      "--logger",
      "zap",
    ]),
  );
  const endpoints = names.map((_, i) => client(i));
  try {
    for (const e of endpoints) await waitFor(`${e}/v3/kv/range`, { method: "POST", body: JSON.stringify({ key: b64("probe") }) }, "etcd");
  } catch (err) {
    throw new Error(`${err.message}\n${procs.map((p) => p.tailOfStderr()).join("\n")}`);
  }
  const scripts = { put: join(work, "etcd-put.lua"), get: join(work, "etcd-get.lua"), ceiling: join(work, "etcd-ceiling.lua") };
  writeFileSync(scripts.ceiling, wrkScript(CEILING_PATHS.etcd, undefined));
  writeFileSync(scripts.put, wrkScript("/v3/kv/put", `'{"key":"' .. base64(key) .. '","value":"' .. value .. '"}'`));
  writeFileSync(scripts.get, wrkScript("/v3/kv/range", `'{"key":"' .. base64(key) .. '"}'`));
  try {
    return await measure(
      "etcd",
      procs.map((p) => p.pid),
      endpoints,
      scripts,
    );
  } finally {
    for (const p of procs) p.kill("SIGTERM");
    await Promise.all(procs.map((p) => new Promise((r) => (p.exitCode !== null ? r() : p.once("exit", r)))));
  }
}

const rows = [];
try {
  for (const system of SYSTEMS) rows.push(...(system === "dynamo" ? await benchDynamo() : await benchEtcd()));
} catch (err) {
  log(`FAILED: ${err.message}`);
  stopAll();
  process.exit(1);
}

const mean = (xs) => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);
const summary = {};
for (const r of rows) {
  const s = (summary[`${r.system} ${r.op}`] ??= { system: r.system, op: r.op, perSecond: [], cpuMsPerRequest: [], p99ms: [], failed: 0 });
  s.perSecond.push(r.perSecond);
  s.cpuMsPerRequest.push(r.cpuMsPerRequest);
  s.p99ms.push(r.p99ms);
  s.failed += r.failed;
}
const ratios = {};
for (const op of ["put", "get"]) {
  const d = summary[`dynamo-ts ${op}`];
  const e = summary[`etcd ${op}`];
  if (d && e) ratios[op] = { throughput: mean(d.perSecond) / mean(e.perSecond), cpuPerRequest: mean(d.cpuMsPerRequest) / mean(e.cpuMsPerRequest) };
}
// Each system's operations as a share of its own no-op ceiling (the same load on a trivial endpoint).
const ceilings = {};
for (const [system, path] of Object.entries(CEILING_PATHS)) {
  const c = summary[`${system} ceiling`];
  const put = summary[`${system} put`];
  const get = summary[`${system} get`];
  if (c && put && get)
    ceilings[system] = {
      path: `GET ${path}`,
      put: mean(put.perSecond) / mean(c.perSecond),
      get: mean(get.perSecond) / mean(c.perSecond),
    };
}
if (opt.json) {
  console.log(
    JSON.stringify(
      { settings: { duration: DURATION, warmup: WARMUP, runs: RUNS, connections: CONNECTIONS, keys: KEYS, valueSize: VALUE_SIZE }, rows, ratios, ceilings },
      null,
      2,
    ),
  );
} else {
  const fmt = (n, d = 0) => n.toLocaleString("en-US", { minimumFractionDigits: d, maximumFractionDigits: d });
  console.log(
    `3 wrk processes at once, one per node (1 thread, ${CONNECTIONS} connections, ${DURATION} s${WARMUP > 0 ? `, after ${WARMUP} s each of unmeasured puts and gets` : ""}); ${VALUE_SIZE}-byte values; keys out of ${fmt(KEYS)}`,
  );
  console.log("| system | op | requests/s | p99 ms | server CPU ms/request | failed |");
  console.log("|---|---|---|---|---|---|");
  for (const s of Object.values(summary)) {
    console.log(
      `| ${s.system} | ${s.op} | ${s.perSecond.map((x) => fmt(x)).join(" / ")} | ${s.p99ms.map((x) => fmt(x, 1)).join(" / ")} | ${s.cpuMsPerRequest.map((x) => fmt(x, 3)).join(" / ")} | ${s.failed} |`,
    );
  }
  for (const [op, r] of Object.entries(ratios))
    console.log(`${op}: dynamo-ts / etcd = ${fmt(r.throughput, 2)}× requests/s, ${fmt(r.cpuPerRequest, 2)}× CPU per request`);
  for (const [system, c] of Object.entries(ceilings))
    console.log(`${system}: puts at ${fmt(c.put, 2)} and gets at ${fmt(c.get, 2)} of its no-op ceiling's requests/s (${c.path})`);
}
