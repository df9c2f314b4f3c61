// For the client's tests: a real cluster started with the repository's scripts/local-cluster.mjs
// (node processes from packages/node/dist) on free ports, temporary data; nodes are killed and
// restarted through the script's own commands (`kill node2`, `start node2`).
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { DynamoClient } from "../client.js";

const ROOT = fileURLToPath(new URL("../../../../", import.meta.url));
const LOCAL_CLUSTER = join(ROOT, "scripts/local-cluster.mjs");
const NODE_MAIN = join(ROOT, "packages/node/dist/main.js");
/** The built `dynamo` CLI. */
export const CLI = fileURLToPath(new URL("../../dist/bin.js", import.meta.url));

function listen(port: number): Promise<Server | undefined> {
  return new Promise((done) => {
    const server = createServer();
    server.once("error", () => done(undefined));
    server.listen(port, "127.0.0.1", () => done(server));
  });
}

async function release(servers: readonly (Server | undefined)[]): Promise<void> {
  await Promise.all(servers.map((s) => s && new Promise((done) => s.close(done))));
}

/** A port nothing listens on (for a moment). */
export async function freePort(): Promise<number> {
  const server = (await listen(0))!;
  const { port } = server.address() as { port: number };
  await release([server]);
  return port;
}

/** The first of `count` consecutive ports that were all free when held together. */
async function freePortRun(count: number): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const base = await freePort();
    if (base + count > 65535) continue;
    const held = await Promise.all(Array.from({ length: count }, (_, i) => listen(base + i)));
    await release(held);
    if (held.every((s) => s !== undefined)) return base;
  }
  throw new Error(`found no ${count} consecutive free ports`);
}

export class LocalCluster {
  private output = "";
  /** Nodes kill() stopped and restart() has not started again. */
  private readonly down = new Set<string>();

  private constructor(
    private readonly child: ChildProcess,
    private readonly dataDir: string,
    /** host:port of node1, node2, ... */
    readonly addresses: readonly string[],
  ) {
    const keep = (chunk: Buffer) => (this.output += chunk.toString());
    child.stdout!.on("data", keep);
    child.stderr!.on("data", keep);
  }

  /** Starts `nodes` nodes (N=3 R=2 W=2 for three) and waits for "cluster ready". */
  static async start(nodes = 3, args: readonly string[] = []): Promise<LocalCluster> {
    if (!existsSync(NODE_MAIN)) throw new Error(`${NODE_MAIN} is missing: build @dynamo-ts/node first (npx nx run @dynamo-ts/node:build)`);
    const dataDir = mkdtempSync(join(tmpdir(), "dynamo-client-test-"));
    const base = await freePortRun(nodes);
    const child = spawn(process.execPath, [LOCAL_CLUSTER, "--nodes", String(nodes), "--base-port", String(base), "--data-dir", dataDir, "--quiet", ...args], {
      stdio: ["pipe", "pipe", "pipe"],
      // The cluster stops by itself if this test process is killed without cleaning up.
      env: { ...process.env, DYNAMO_EXIT_WITH_PARENT: "1" },
    });
    const cluster = new LocalCluster(
      child,
      dataDir,
      Array.from({ length: nodes }, (_, i) => `127.0.0.1:${base + i}`),
    );
    try {
      await cluster.waitFor("cluster ready", 30_000);
      await cluster.waitSettled();
    } catch (err) {
      await cluster.stop();
      throw err;
    }
    return cluster;
  }

  /** The cluster secret the script made for this cluster. */
  get secret(): string {
    return readFileSync(join(this.dataDir, "cluster-secret"), "utf8").trim();
  }

  /** `nodeN` at its address. */
  address(id: string): string {
    return this.addresses[Number(id.replace(/^node/, "")) - 1]!;
  }

  private async waitFor(text: string, timeoutMs: number, from = 0): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!this.output.includes(text, from)) {
      if (this.child.exitCode !== null) throw new Error(`local-cluster exited (${this.child.exitCode}) waiting for '${text}':\n${this.output}`);
      if (Date.now() > deadline) throw new Error(`no '${text}' from local-cluster within ${timeoutMs} ms:\n${this.output}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** Until no node is rebuilding its replica any more (a fresh node refuses replica reads until then). */
  async waitSettled(timeoutMs = 30_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (const address of this.addresses) {
      const client = new DynamoClient({ node: address, clusterSecret: this.secret });
      try {
        for (;;) {
          const status = await client.status().catch(() => undefined);
          if (status && !status.rebuilding && status.rangesToRebuild === 0 && status.members.every((m) => m.state === "alive")) break;
          if (Date.now() > deadline) throw new Error(`${address} still rebuilding after ${timeoutMs} ms:\n${this.output}`);
          await new Promise((r) => setTimeout(r, 100));
        }
      } finally {
        client.close();
      }
    }
  }

  /** `kill -9` a node (`node2`) and wait until the script saw it exit. */
  async kill(id: string): Promise<void> {
    const from = this.output.length;
    this.child.stdin!.write(`kill ${id}\n`);
    await this.waitFor(`[${id}] exited`, 10_000, from);
    this.down.add(id);
  }

  /** Starts a stopped node again and waits until it is healthy. */
  async restart(id: string): Promise<void> {
    const from = this.output.length;
    this.child.stdin!.write(`start ${id}\n`);
    await this.waitFor(`${id} is back`, 30_000, from);
    this.down.delete(id);
  }

  /** Restarts every node kill() stopped, then waits until every node sees every member alive. */
  async healAll(): Promise<void> {
    for (const id of [...this.down]) await this.restart(id);
    await this.waitSettled();
  }

  /** Stops every node (SIGINT to the script) and removes the data. */
  async stop(): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) {
      const exited = new Promise((done) => this.child.once("exit", done));
      this.child.kill("SIGINT");
      await exited;
    }
    rmSync(this.dataDir, { recursive: true, force: true });
  }
}

export interface Ran {
  readonly code: number;
  readonly stdout: Buffer;
  readonly stderr: string;
}

/** Runs a command to completion; resolves with its exit code and output, whatever the code. */
export function runProcess(
  command: string,
  args: readonly string[],
  options: { input?: Uint8Array; cwd?: string; env?: NodeJS.ProcessEnv } = {},
): Promise<Ran> {
  return new Promise((done) => {
    const child = execFile(
      command,
      args,
      { encoding: "buffer", maxBuffer: 64 * 1024 * 1024, cwd: options.cwd, env: options.env ?? process.env },
      (err, stdout, stderr) => {
        const code = err ? (typeof (err as { code?: unknown }).code === "number" ? (err as { code: number }).code : -1) : 0;
        done({ code, stdout, stderr: stderr.toString() });
      },
    );
    child.stdin!.end(options.input ?? new Uint8Array());
  });
}

/** Runs the built `dynamo` CLI. */
export function dynamo(args: readonly string[], input?: Uint8Array): Promise<Ran> {
  return runProcess(process.execPath, [CLI, ...args], { input });
}
