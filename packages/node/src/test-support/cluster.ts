// Integration-test harness: a cluster of real `dynamo-node` processes on 127.0.0.1, each
// with its own data directory, that tests can kill -9, stop and restart. Everything it
// creates (processes, directories, connections) is removed by stop().
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { DynamoClient } from "@dynamo-ts/client";
import { ReplicaService } from "@dynamo-ts/proto";
import { decodeSiblingSet, encodeSiblingSet, type SiblingSet } from "@dynamo-ts/vclock";
import { CLUSTER_SECRET_HEADER } from "@dynamo-ts/proto";

const MAIN = resolve(fileURLToPath(new URL(".", import.meta.url)), "../../dist/main.js");
export const TEST_SECRET = "integration-test-secret-0123456789";
const CLI = fileURLToPath(new URL("../../../client/dist/bin.js", import.meta.url));

/** Runs the `dynamo` CLI with `args`; resolves with its exit code and output, whatever the code. */
export async function dynamo(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await promisify(execFile)(process.execPath, [CLI, ...args]);
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

export async function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolvePort(port));
    });
  });
}

export class TestNode {
  private child: ChildProcess | undefined;
  private exited: Promise<void> = Promise.resolve();
  readonly output: string[] = [];

  constructor(
    readonly id: string,
    readonly port: number,
    readonly dataDir: string,
    private readonly args: () => string[],
  ) {}

  get address(): string {
    return `127.0.0.1:${this.port}`;
  }

  get running(): boolean {
    return this.child !== undefined;
  }

  /** Starts the process and waits until it reports healthy. */
  async start(timeoutMs = 15_000): Promise<void> {
    if (this.child) throw new Error(`${this.id} is already running`);
    // DYNAMO_EXIT_WITH_PARENT: the node stops if this test process is killed without cleaning up.
    const child = spawn(process.execPath, [MAIN, ...this.args()], { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, DYNAMO_EXIT_WITH_PARENT: "1" } });
    this.child = child;
    this.exited = new Promise((done) =>
      child.once("exit", () => {
        if (this.child === child) this.child = undefined;
        done();
      }),
    );
    const keep = (chunk: Buffer) => {
      this.output.push(chunk.toString());
      if (this.output.length > 2000) this.output.splice(0, 1000);
    };
    child.stdout!.on("data", keep);
    child.stderr!.on("data", keep);
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (!this.child) throw new Error(`${this.id} exited during start-up:\n${this.output.join("")}`);
      try {
        const res = await fetch(`http://${this.address}/healthz`);
        if (res.ok) return;
      } catch {
        // not listening yet
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(`${this.id} did not become healthy within ${timeoutMs} ms:\n${this.output.join("")}`);
  }

  /** kill -9 (or another signal) and wait for the process to be gone. */
  async kill(signal: NodeJS.Signals = "SIGKILL"): Promise<void> {
    const child = this.child;
    if (!child) return;
    child.kill(signal);
    await this.exited;
  }

  /** Freezes the process (SIGSTOP): it keeps its connections but answers nothing until resume(). */
  pause(): void {
    this.child?.kill("SIGSTOP");
  }

  /** Lets a paused process go on (SIGCONT). */
  resume(): void {
    this.child?.kill("SIGCONT");
  }

  /** Graceful stop (SIGTERM); resolves with the exit code. */
  async stop(): Promise<number | null> {
    const child = this.child;
    if (!child) return null;
    const code = new Promise<number | null>((done) => child.once("exit", (c) => done(c)));
    child.kill("SIGTERM");
    return code;
  }

  async restart(): Promise<void> {
    await this.kill();
    await this.start();
  }
}

export interface TestClusterOptions {
  readonly nodes: number;
  readonly n?: number;
  readonly r?: number;
  readonly w?: number;
  /** Extra flags for every node. */
  readonly args?: readonly string[];
  /** Form the cluster through gossip from the first node's address alone (--seeds), not --peers. */
  readonly seedOnly?: boolean;
}

export class TestCluster {
  private readonly clients: DynamoClient[] = [];

  private constructor(
    readonly nodes: TestNode[],
    private readonly root: string,
    /** The cluster's secret: TEST_SECRET unless the options' args give another --cluster-secret. */
    readonly secret: string,
    private readonly argsFor: (id: string, port: number, membership: readonly string[]) => string[],
  ) {}

  /**
   * Starts one more node that joins the running cluster through the first node's address
   * (--seeds): it starts `joining`, copies its ranges, then becomes normal.
   */
  async addNode(id: string, extraArgs: readonly string[] = []): Promise<TestNode> {
    let port = await freePort();
    while (this.nodes.some((node) => node.port === port)) port = await freePort();
    const node = new TestNode(id, port, join(this.root, id), () => [...this.argsFor(id, port, ["--seeds", this.nodes[0]!.address]), ...extraArgs]);
    this.nodes.push(node);
    await node.start();
    return node;
  }

  static async start(options: TestClusterOptions): Promise<TestCluster> {
    const root = mkdtempSync(join(tmpdir(), "dynamo-it-"));
    const ports: number[] = [];
    while (ports.length < options.nodes) {
      const port = await freePort();
      if (!ports.includes(port)) ports.push(port);
    }
    const ids = ports.map((_, i) => `n${i + 1}`);
    const peers = ids.map((id, i) => `${id}@127.0.0.1:${ports[i]}`).join(",");
    const n = options.n ?? Math.min(3, options.nodes);
    const argsFor = (id: string, port: number, membership: readonly string[]) => [
      "--node-id",
      id,
      "--listen",
      `127.0.0.1:${port}`,
      ...membership,
      "--data-dir",
      join(root, id),
      "--cluster-secret",
      TEST_SECRET,
      "--n",
      String(n),
      "--r",
      String(options.r ?? Math.min(2, n)),
      "--w",
      String(options.w ?? Math.min(2, n)),
      "--request-timeout-ms",
      "3000",
      "--shutdown-grace-ms",
      "1000",
      ...(options.args ?? []),
    ];
    const nodes = ids.map(
      (id, i) =>
        new TestNode(id, ports[i]!, join(root, id), () =>
          argsFor(id, ports[i]!, options.seedOnly ? (i === 0 ? [] : ["--seeds", `127.0.0.1:${ports[0]}`]) : ["--peers", peers]),
        ),
    );
    const args = options.args ?? [];
    const secretAt = args.lastIndexOf("--cluster-secret");
    const cluster = new TestCluster(nodes, root, secretAt >= 0 && args[secretAt + 1] ? args[secretAt + 1]! : TEST_SECRET, argsFor);
    try {
      if (options.seedOnly) await nodes[0]!.start(); // the seed first: the others join through it
      await Promise.all(nodes.filter((node) => !node.running).map((node) => node.start()));
      // New data directories: each node first exchanges its (empty) ranges with its co-replicas.
      await cluster.waitRebuilt();
      // Nodes started with --seeds start joining, copy their (empty) ranges, then become normal.
      if (options.seedOnly) await cluster.waitAllNormal();
    } catch (err) {
      await cluster.stop();
      throw err;
    }
    return cluster;
  }

  node(id: string): TestNode {
    const node = this.nodes.find((x) => x.id === id);
    if (!node) throw new Error(`no node ${id}`);
    return node;
  }

  /** A client of node `id`; closed by stop(). */
  client(id: string, options: { protocol?: "connect" | "grpc" | "grpc-web"; httpVersion?: "1.1" | "2"; timeoutMs?: number } = {}): DynamoClient {
    const client = new DynamoClient({ node: this.node(id).address, clusterSecret: this.secret, ...options });
    this.clients.push(client);
    return client;
  }

  /** What one replica holds for a key, read directly (no quorum, no repair). */
  async readReplica(id: string, key: string): Promise<SiblingSet | undefined> {
    const transport = createConnectTransport({ baseUrl: `http://${this.node(id).address}`, httpVersion: "1.1" });
    const replica = createClient(ReplicaService, transport);
    const res = await replica.read({ key }, { headers: { [CLUSTER_SECRET_HEADER]: this.secret } });
    return res.record.byteLength === 0 ? undefined : decodeSiblingSet(res.record);
  }

  /** Merges `set` into one replica directly, as another node would (cluster secret). */
  async writeReplica(id: string, key: string, set: SiblingSet): Promise<void> {
    const transport = createConnectTransport({ baseUrl: `http://${this.node(id).address}`, httpVersion: "1.1" });
    await createClient(ReplicaService, transport).write({ key, record: encodeSiblingSet(set) }, { headers: { [CLUSTER_SECRET_HEADER]: this.secret } });
  }

  /** Waits until every running node sees every member alive (faults healed, as far as the nodes know). */
  async waitAllAlive(timeoutMs = 15_000): Promise<void> {
    await eventually(async () => {
      for (const node of this.nodes) {
        const status = await this.status(node.id);
        const notAlive = status.members.filter((m) => m.state !== "alive").map((m) => m.nodeId);
        if (notAlive.length > 0) throw new Error(`${node.id} sees ${notAlive.join(", ")} as not alive`);
      }
    }, timeoutMs);
  }

  /** Waits until every running node sees every member with ring status normal (joins complete). */
  async waitAllNormal(timeoutMs = 60_000): Promise<void> {
    await eventually(async () => {
      for (const node of this.nodes.filter((x) => x.running)) {
        const status = await this.status(node.id);
        const notNormal = status.members.filter((m) => m.ringStatus !== "normal").map((m) => `${m.nodeId} ${m.ringStatus}`);
        if (notNormal.length > 0 || status.members.length < this.nodes.length) throw new Error(`${node.id} sees ${notNormal.join(", ") || "too few members"}`);
      }
    }, timeoutMs);
  }

  /** Waits until no running node is rebuilding its replica (after a start without data). */
  async waitRebuilt(timeoutMs = 20_000): Promise<void> {
    await eventually(async () => {
      for (const node of this.nodes.filter((x) => x.running)) {
        const status = await this.status(node.id);
        if (status.rebuilding) throw new Error(`${node.id} is still rebuilding ${status.rangesToRebuild} ranges`);
      }
    }, timeoutMs);
  }

  /** Node `id`'s view of the cluster (members, states, ownership). */
  status(id: string) {
    return this.withClient(id, (client) => client.status());
  }

  /** Runs `call` with a short-lived HTTP/1.1 client of node `id`. */
  private async withClient<T>(id: string, call: (client: DynamoClient) => Promise<T>): Promise<T> {
    const client = new DynamoClient({ node: this.node(id).address, httpVersion: "1.1", clusterSecret: this.secret });
    try {
      return await call(client);
    } finally {
      client.close();
    }
  }

  /** Pending hints node `id` holds, per target. */
  async hints(id: string): Promise<Map<string, number>> {
    const res = await this.withClient(id, (client) => client.hints());
    return new Map(res.targets.map((t) => [t.nodeId, Number(t.count)]));
  }

  async stop(): Promise<void> {
    for (const client of this.clients) client.close();
    await Promise.all(this.nodes.map((node) => node.kill()));
    rmSync(this.root, { recursive: true, force: true });
  }
}

/** Retries `check` until it stops throwing or `timeoutMs` passes (then rethrows its last error). */
export async function eventually<T>(check: () => Promise<T> | T, timeoutMs = 15_000, everyMs = 100): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await check();
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, everyMs));
    }
  }
}
