#!/usr/bin/env node
// Bootstrap bench: a 3-node cluster (--peers, N=3 W=2) gets KEYS keys (default 100,000, 100-byte
// values, written at W=3), then a 4th node joins with --seeds; prints how long it took from its
// start until it was normal, what it copied and the copy rate. Nodes on 127.0.0.1, data in a
// temporary directory removed at the end. Usage: node scripts/bench-bootstrap.mjs [KEYS]
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { DynamoClient } from "../packages/client/dist/index.js";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const MAIN = join(root, "packages/node/dist/main.js");
const KEYS = Number(process.argv[2] ?? 100_000);
const SECRET = "bench-bootstrap-secret-0123456789";
const dir = mkdtempSync(join(tmpdir(), "dynamo-bench-bootstrap-"));
const children = [];

const freePort = () =>
  new Promise((done) => {
    const server = createServer().listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => done(port));
    });
  });

function start(id, port, membership, onLine) {
  const args = [MAIN, "--node-id", id, "--listen", `127.0.0.1:${port}`, ...membership, "--data-dir", join(dir, id), "--cluster-secret", SECRET];
  args.push("--n", "3", "--r", "2", "--w", "2", "--gossip-interval-ms", "200", "--request-timeout-ms", "3000");
  const child = spawn(process.execPath, args, { stdio: ["ignore", "pipe", "inherit"], env: { ...process.env, DYNAMO_EXIT_WITH_PARENT: "1" } });
  children.push(child);
  let buffer = "";
  child.stdout.on("data", (chunk) => {
    buffer += chunk;
    for (let i = buffer.indexOf("\n"); i >= 0; i = buffer.indexOf("\n")) {
      onLine?.(buffer.slice(0, i));
      buffer = buffer.slice(i + 1);
    }
  });
}

async function healthy(port) {
  for (;;) {
    try {
      if ((await fetch(`http://127.0.0.1:${port}/healthz`)).ok) return;
    } catch {}
    await new Promise((r) => setTimeout(r, 100));
  }
}

try {
  const ports = [await freePort(), await freePort(), await freePort(), await freePort()];
  const peers = [
    "--peers",
    ports
      .slice(0, 3)
      .map((p, i) => `b${i + 1}@127.0.0.1:${p}`)
      .join(","),
  ];
  for (let i = 0; i < 3; i++) start(`b${i + 1}`, ports[i], peers);
  await Promise.all(ports.slice(0, 3).map(healthy));
  const clients = ports.slice(0, 3).map((p) => new DynamoClient({ node: `127.0.0.1:${p}` }));
  const value = "x".repeat(100);
  const writeStart = Date.now();
  let next = 0;
  await Promise.all(
    Array.from({ length: 64 }, async (_, worker) => {
      for (let i = next++; i < KEYS; i = next++) await clients[(worker + i) % 3].put(`bench-${i}`, value, { w: 3 });
    }),
  );
  console.log(`wrote ${KEYS} keys at W=3 in ${((Date.now() - writeStart) / 1000).toFixed(1)} s`);
  for (const c of clients) c.close();

  const joinStart = Date.now();
  const done = new Promise((resolveDone) =>
    start("b4", ports[3], ["--seeds", `127.0.0.1:${ports[0]}`], (line) => {
      if (line.includes("bootstrap complete")) resolveDone(JSON.parse(line));
    }),
  );
  const result = await done;
  const seconds = (Date.now() - joinStart) / 1000;
  const announceWait = (10 * 200 + 3000) / 1000;
  console.log(
    `b4 normal ${seconds.toFixed(1)} s after its start (of which ${announceWait} s waiting for gossip and in-flight writes): ` +
      `${result.keys} records, ${(result.bytes / 1e6).toFixed(2)} MB copied over ${result.ranges} (range, source) copies, ` +
      `${(result.bytes / 1e6 / (seconds - announceWait)).toFixed(2)} MB/s; ${(result.keys / KEYS / 2).toFixed(3)} of the keys per source (ideal 3/4 = 0.75)`,
  );
} finally {
  for (const child of children) child.kill("SIGKILL");
  rmSync(dir, { recursive: true, force: true });
}
