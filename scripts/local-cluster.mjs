#!/usr/bin/env node
// Starts a local dynamo-ts cluster of real node processes on 127.0.0.1 (ports from 7001 up),
// data under ./data/, and stops it cleanly on Ctrl-C. `npm start -- --help` for options.
import { spawn } from "node:child_process";
import * as http from "node:http";
import * as https from "node:https";
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { createInterface } from "node:readline";
import { parseArgs } from "node:util";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const nodeMain = join(root, "packages/node/dist/main.js");

const HELP = `Usage: npm start -- [options]

  --nodes K          number of nodes (default 3); ports go up from --base-port
  --n N              replicas per key (default min(3, K))
  --r R              default read quorum (default min(2, N))
  --w W              default write quorum (default min(2, N))
  --base-port P      first port (default 7001)
  --data-dir DIR     data root (default ./data); node i keeps its data in DIR/node<i>
  --sync             fsync before acknowledging writes
  --quiet            do not echo the nodes' log lines
  --log-format F     how the nodes' log lines are echoed: pretty (default on a terminal) or json (as written)
  Any other --flag value pair is passed to every node (see: node packages/node/dist/main.js --help).
`;

let options;
try {
  options = parseArgs({
    strict: false,
    tokens: true,
    options: {
      nodes: { type: "string", default: "3" },
      n: { type: "string" },
      r: { type: "string" },
      w: { type: "string" },
      "base-port": { type: "string", default: "7001" },
      "data-dir": { type: "string", default: "data" },
      sync: { type: "boolean", default: false },
      quiet: { type: "boolean", default: false },
      "log-format": { type: "string", default: process.stdout.isTTY ? "pretty" : "json" },
      help: { type: "boolean", short: "h", default: false },
    },
  });
} catch (err) {
  console.error(`local-cluster: ${err.message}\n\n${HELP}`);
  process.exit(2);
}
const { values, tokens } = options;
if (values.help) {
  console.log(HELP);
  process.exit(0);
}
const int = (name, text, min, max) => {
  const value = Number(text);
  if (!/^\d+$/.test(String(text)) || value < min || value > max) {
    console.error(`local-cluster: --${name} must be an integer between ${min} and ${max}, got '${text}'`);
    process.exit(2);
  }
  return value;
};
const count = int("nodes", values.nodes, 1, 32);
const n = int("n", values.n ?? Math.min(3, count), 1, count);
const r = int("r", values.r ?? Math.min(2, n), 1, n);
const w = int("w", values.w ?? Math.min(2, n), 1, n);
const basePort = int("base-port", values["base-port"], 1024, 65535 - count);
const dataRoot = resolve(values["data-dir"]);

// Flags this script does not know go to every node unchanged.
const known = new Set(["nodes", "n", "r", "w", "base-port", "data-dir", "sync", "quiet", "log-format", "help"]);
if (!["pretty", "json"].includes(values["log-format"])) {
  console.error(`local-cluster: --log-format must be pretty or json, got '${values["log-format"]}'`);
  process.exit(2);
}
// parseArgs cannot know their types, so `--flag value` arrives as an option followed by a
// positional: the positional is the flag's value (`--flag=value` carries it inline).
const passThrough = [];
const allTokens = tokens ?? [];
for (let i = 0; i < allTokens.length; i++) {
  const t = allTokens[i];
  if (t.kind === "positional") {
    console.error(`local-cluster: unexpected argument '${t.value}' (options are --flag value)\n\n${HELP}`);
    process.exit(2);
  }
  if (t.kind !== "option" || known.has(t.name)) continue;
  passThrough.push(t.rawName);
  if (t.value !== undefined) passThrough.push(t.value);
  else if (allTokens[i + 1]?.kind === "positional") passThrough.push(allTokens[++i].value);
}

// With --tls-ca-file passed through, the nodes serve TLS: probe and print https URLs trusting that CA.
const caIndex = passThrough.findIndex((a) => a === "--tls-ca-file" || a.startsWith("--tls-ca-file="));
const tlsCa = caIndex < 0 ? undefined : readFileSync(passThrough[caIndex].includes("=") ? passThrough[caIndex].split("=", 2)[1] : passThrough[caIndex + 1]);
const scheme = tlsCa ? "https" : "http";
const caFlag = tlsCa ? ` --ca-file ${passThrough[caIndex].includes("=") ? passThrough[caIndex].split("=", 2)[1] : passThrough[caIndex + 1]}` : "";

if (!existsSync(nodeMain)) {
  console.error("local-cluster: packages/node/dist/main.js is missing; run `npm run build` first (npm start does).");
  process.exit(1);
}

// One secret per data directory, reused across restarts so nodes keep talking to each other.
mkdirSync(dataRoot, { recursive: true });
const secretFile = join(dataRoot, "cluster-secret");
if (!existsSync(secretFile)) writeFileSync(secretFile, randomBytes(24).toString("base64url") + "\n", { mode: 0o600 });
const secret = readFileSync(secretFile, "utf8").trim();

const nodes = Array.from({ length: count }, (_, i) => ({ id: `node${i + 1}`, address: `127.0.0.1:${basePort + i}` }));
const peers = nodes.map((p) => `${p.id}@${p.address}`).join(",");
const children = new Map();
let stopping = false;

function startNode(node) {
  const args = [
    nodeMain,
    "--node-id",
    node.id,
    "--listen",
    node.address,
    "--peers",
    peers,
    "--data-dir",
    join(dataRoot, node.id),
    "--n",
    String(n),
    "--r",
    String(r),
    "--w",
    String(w),
    ...(values.sync ? ["--sync"] : []),
    ...passThrough,
  ];
  const child = spawn(process.execPath, args, {
    // DYNAMO_EXIT_WITH_PARENT: a node stops by itself if this script is killed with SIGKILL.
    env: { ...process.env, DYNAMO_CLUSTER_SECRET: secret, DYNAMO_EXIT_WITH_PARENT: "1" },
    stdio: ["ignore", "pipe", "pipe"],
    // Own process group: a terminal Ctrl-C reaches only this script, which then stops each
    // node once with SIGTERM (a node treats a second signal as "exit now").
    detached: true,
  });
  children.set(node.id, child);
  const prefix = `[${node.id}]`;
  const echo = (stream, chunk) => {
    if (values.quiet) return;
    for (const line of chunk.toString().split("\n")) if (line) stream.write(`${prefix} ${values["log-format"] === "pretty" ? pretty(line) : line}\n`);
  };
  child.stdout.on("data", (c) => echo(process.stdout, c));
  child.stderr.on("data", (c) => echo(process.stderr, c));
  child.on("exit", (code, signal) => {
    if (children.get(node.id) === child) children.delete(node.id);
    if (!stopping) console.error(`${prefix} exited (${signal ?? `code ${code}`}); the others keep running. 'start ${node.id}' restarts it, Ctrl-C stops all.`);
    if (stopping && children.size === 0) process.exit(0);
  });
}

const LEVEL_COLORS = { debug: "\x1b[90m", info: "\x1b[36m", warn: "\x1b[33m", error: "\x1b[31m" };

/** A node's JSON log line as `12:00:01.234 WARN message key=value …` (other lines as they are). */
function pretty(line) {
  let entry;
  try {
    entry = JSON.parse(line);
  } catch {
    return line;
  }
  if (typeof entry !== "object" || entry === null || typeof entry.msg !== "string") return line;
  const { time, level, node: _node, msg, ...fields } = entry;
  const color = process.stdout.isTTY ? (LEVEL_COLORS[level] ?? "") : "";
  const reset = color ? "\x1b[0m" : "";
  const rest = Object.entries(fields)
    .map(([k, v]) => `${k}=${typeof v === "string" ? v : JSON.stringify(v)}`)
    .join(" ");
  return `${String(time ?? "").slice(11, 23)} ${color}${String(level ?? "")
    .toUpperCase()
    .padEnd(5)}${reset} ${msg}${rest ? ` ${rest}` : ""}`;
}

/** GET /healthz's status code (over TLS trusting the cluster CA when the nodes serve TLS). */
function probe(address) {
  const [host, port] = address.split(":");
  const get = tlsCa ? https.get : http.get;
  return new Promise((done, fail) => {
    const req = get({ host, port: Number(port), path: "/healthz", agent: false, timeout: 2000, ...(tlsCa ? { ca: tlsCa } : {}) }, (res) => {
      res.resume();
      done(res.statusCode);
    });
    req.on("error", fail);
    req.on("timeout", () => req.destroy(new Error("timeout")));
  });
}

async function waitHealthy(node, deadline) {
  while (Date.now() < deadline) {
    try {
      if ((await probe(node.address)) === 200) return true;
    } catch {
      // not listening yet
    }
    if (!children.has(node.id)) return false;
    await new Promise((r) => setTimeout(r, 100));
  }
  return false;
}

function stopAll(signal) {
  if (stopping) {
    for (const child of children.values()) child.kill("SIGKILL");
    return;
  }
  stopping = true;
  console.log(`\nstopping ${children.size} node(s) (${signal}); press Ctrl-C again to kill them`);
  if (children.size === 0) process.exit(0);
  for (const child of children.values()) child.kill("SIGTERM");
}
process.on("SIGINT", () => stopAll("SIGINT"));
// If this script dies for any other reason, don't leave detached nodes behind.
process.on("exit", () => {
  for (const child of children.values()) child.kill("SIGKILL");
});
process.on("SIGTERM", () => stopAll("SIGTERM"));
// Started by a test (or another script) with DYNAMO_EXIT_WITH_PARENT=1: stop the cluster when
// that process dies, even by SIGKILL (Linux gives an orphan a new parent).
if (process.env.DYNAMO_EXIT_WITH_PARENT === "1") {
  const parent = process.ppid;
  const watch = setInterval(() => {
    if (process.ppid === parent) return;
    clearInterval(watch);
    stopAll("parent exited");
  }, 1000);
  watch.unref();
}

for (const node of nodes) startNode(node);
const ready = await Promise.all(nodes.map((node) => waitHealthy(node, Date.now() + 15_000)));
if (ready.includes(false)) {
  console.error(
    `local-cluster: ${nodes
      .filter((_, i) => !ready[i])
      .map((p) => p.id)
      .join(", ")} did not become healthy; stopping.`,
  );
  stopAll("start-up failure");
} else {
  console.log(
    [
      "",
      `dynamo-ts cluster ready: ${count} nodes, N=${n} R=${r} W=${w}, data in ${dataRoot}`,
      ...nodes.map((p) => `  ${p.id}  ${scheme}://${p.address}`),
      "",
      "Try:",
      `  npm run dynamo -- put hello world --node ${nodes[0].address}${caFlag}`,
      `  npm run dynamo -- get hello --node ${nodes[count - 1].address}${caFlag}`,
      `  curl -s -H 'content-type: application/json' -d '{"key":"hello"}' ${tlsCa ? `--cacert ${passThrough[caIndex + 1] ?? "ca.pem"} ` : ""}${scheme}://${nodes[0].address}/dynamo.v1.KVService/Get`,
      "",
      "Type 'kill node2' (kill -9), 'stop node2' (SIGTERM), 'start node2' or 'list' here; Ctrl-C stops the cluster.",
      "",
    ].join("\n"),
  );
}

// Commands typed into this terminal, for fault demos: kill / stop / start a node, list them.
const commands = createInterface({ input: process.stdin, terminal: false });
commands.on("line", async (line) => {
  const [verb, id] = line.trim().split(/\s+/);
  if (!verb || stopping) return;
  const node = nodes.find((x) => x.id === id);
  if (verb === "list") {
    for (const x of nodes) console.log(`  ${x.id}  ${x.address}  ${children.has(x.id) ? `running (pid ${children.get(x.id).pid})` : "stopped"}`);
  } else if (!node) {
    console.log(`commands: kill NODE | stop NODE | start NODE | list   (nodes: ${nodes.map((x) => x.id).join(", ")})`);
  } else if (verb === "kill" || verb === "stop") {
    const child = children.get(node.id);
    if (!child) return console.log(`${node.id} is not running`);
    child.kill(verb === "kill" ? "SIGKILL" : "SIGTERM");
    console.log(`${verb === "kill" ? "killed (SIGKILL)" : "stopping (SIGTERM)"} ${node.id}`);
  } else if (verb === "start") {
    if (children.has(node.id)) return console.log(`${node.id} is already running`);
    startNode(node);
    console.log((await waitHealthy(node, Date.now() + 15_000)) ? `${node.id} is back at ${node.address}` : `${node.id} did not become healthy`);
  } else {
    console.log(`unknown command '${verb}': kill NODE | stop NODE | start NODE | list`);
  }
});
