#!/usr/bin/env node
// Failure-handling demo on the local cluster: kill a node while a writer keeps writing,
// watch the fallbacks hold hints for it, restart it, and check that every acknowledged write
// ends up on all of its key's replicas. Run: npm run demo:failover (after npm run build).
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const load = (pkg) => import(pathToFileURL(join(root, "packages", pkg, "dist/index.js")).href);
const { DynamoClient } = await load("client");
const { Ring } = await load("ring");
const { CLUSTER_SECRET_HEADER, ReplicaService } = await load("proto");
const { isDeleted } = await load("vclock");
const { decodeSiblingSet } = await load("vclock");
const { createClient } = await import(pathToFileURL(join(root, "node_modules/@connectrpc/connect/dist/esm/index.js")).href);
const { createConnectTransport } = await import(pathToFileURL(join(root, "node_modules/@connectrpc/connect-node/dist/esm/index.js")).href);

const BASE_PORT = 7101;
const NODES = 4;
const dataDir = mkdtempSync(join(tmpdir(), "dynamo-demo-"));
const addr = (i) => `127.0.0.1:${BASE_PORT + i - 1}`;
const say = (line) => console.log(`\n== ${line}`);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const cluster = spawn(
  process.execPath,
  [
    join(root, "scripts/local-cluster.mjs"),
    "--nodes",
    String(NODES),
    "--n",
    "3",
    "--base-port",
    String(BASE_PORT),
    "--data-dir",
    dataDir,
    "--quiet",
    "--hint-interval-ms",
    "500",
  ],
  {
    stdio: ["pipe", "pipe", "inherit"],
    env: { ...process.env, DYNAMO_EXIT_WITH_PARENT: "1" }, // the cluster stops if this demo dies
  },
);
let clusterOut = "";
cluster.stdout.on("data", (d) => (clusterOut += d));
const command = async (line) => {
  const before = clusterOut.length;
  cluster.stdin.write(line + "\n");
  while (!/(back at|killed|stopping|not running|already running|did not)/.test(clusterOut.slice(before))) await sleep(50);
  console.log(`   [cluster] ${clusterOut.slice(before).trim()}`);
};

try {
  while (!clusterOut.includes("cluster ready")) {
    if (cluster.exitCode !== null) throw new Error("the local cluster did not start");
    await sleep(100);
  }
  say(`4-node local cluster up on ${addr(1)}..${addr(NODES)}, N=3 R=2 W=2`);
  // The status calls below are admin calls: the clients carry the local cluster's secret.
  const clusterSecret = readFileSync(join(dataDir, "cluster-secret"), "utf8").trim();
  const clients = Array.from({ length: NODES }, (_, i) => new DynamoClient({ node: addr(i + 1), timeoutMs: 3000, clusterSecret }));
  const acked = new Map();
  let written = 0;
  let failed = 0;
  let writing = true;
  const writer = (async () => {
    for (let i = 0; writing; i++) {
      const key = `demo-${i}`;
      const via = clients[i % NODES === 1 ? 0 : i % NODES]; // never through node2, which goes down
      try {
        await via.put(key, `value-${i}`, { w: 2 });
        acked.set(key, `value-${i}`);
        written++;
      } catch {
        failed++;
      }
      await sleep(5);
    }
  })();

  await sleep(1500);
  say(`writer running: ${written} writes acknowledged so far; now kill -9 node2`);
  await command("kill node2");
  await sleep(3000);
  say(`still writing with node2 down: ${written} acknowledged, ${failed} failed`);
  for (let i = 1; i <= NODES; i++) {
    if (i === 2) continue;
    const h = await clients[i - 1].hints();
    const forNode2 = h.targets.find((t) => t.nodeId === "node2");
    console.log(`   node${i} holds ${forNode2 ? forNode2.count : 0n} hints for node2 (stored ${h.stored}, delivered ${h.delivered})`);
  }
  say("restart node2");
  await command("start node2");
  await sleep(2000);
  writing = false;
  await writer;
  say(`writer stopped: ${written} writes acknowledged, ${failed} failed`);

  const secret = readFileSync(join(dataDir, "cluster-secret"), "utf8").trim();
  const replicaOf = (i) => createClient(ReplicaService, createConnectTransport({ baseUrl: `http://${addr(i)}`, httpVersion: "1.1" }));
  const replicas = Array.from({ length: NODES }, (_, i) => replicaOf(i + 1));
  const ring = new Ring(
    Array.from({ length: NODES }, (_, i) => `node${i + 1}`),
    { vnodes: 256 },
  );
  const started = Date.now();
  for (;;) {
    let missing = 0;
    let pendingHints = 0;
    for (const [key, value] of acked) {
      for (const node of ring.preferenceList(key, 3)) {
        const res = await replicas[Number(node.slice(4)) - 1].read({ key }, { headers: { [CLUSTER_SECRET_HEADER]: secret } });
        const set = res.record.byteLength ? decodeSiblingSet(res.record) : undefined;
        const has = set && !isDeleted(set) && set.siblings.some((s) => s.value && Buffer.from(s.value).toString() === value);
        if (!has) missing++;
      }
    }
    for (const c of clients) pendingHints += (await c.hints()).targets.reduce((n, t) => n + Number(t.count), 0);
    console.log(
      `   after ${((Date.now() - started) / 1000).toFixed(1)} s: ${missing} replica copies missing of ${acked.size * 3}, ${pendingHints} hints pending`,
    );
    if (missing === 0 && pendingHints === 0) break;
    if (Date.now() - started > 30_000) throw new Error("did not converge within 30 s");
    await sleep(1000);
  }
  say(`converged: all ${acked.size} acknowledged writes are on all 3 of their replicas; no hints left`);
  const status = await clients[0].status();
  for (const m of status.members) console.log(`   ${m.nodeId.padEnd(6)} ${m.address.padEnd(16)} ${m.state.padEnd(6)} incarnation ${m.incarnation}`);
  for (const c of clients) c.close();
} finally {
  cluster.kill("SIGINT");
  await new Promise((r) => cluster.once("exit", r));
  rmSync(dataDir, { recursive: true, force: true });
}
