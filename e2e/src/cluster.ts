// A dynamo-ts cluster of containers on a private Docker network, with the faults the suites
// inject: kill -9, graceful stop, start, network disconnect/reconnect and pause/unpause.
//
// Each node publishes its port on 127.0.0.1 at a host port chosen once, so the port (and the
// DynamoClient that uses it) stays the same across restarts and reconnects; Docker would pick a
// new ephemeral port every time otherwise. Data lives in the container's /data volume, which
// survives kill/stop/start because the container itself is never recreated. close() removes
// containers, their volumes and the network; containers a crashed earlier run left behind are
// swept at the next start (they carry the pid of the process that made them).
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import * as http from "node:http";
import * as https from "node:https";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import * as net from "node:net";
import * as os from "node:os";
import { DynamoClient } from "@dynamo-ts/client";
import { CLUSTER_SECRET_HEADER } from "@dynamo-ts/proto";
import { GenericContainer, Network, PullPolicy, Wait, type ContainerRuntimeClient, type StartedNetwork, type StartedTestContainer } from "testcontainers";
import type { FinalRead } from "./checker.js";
import { dockerClient, firstLine, isProcessAlive, NODE_IMAGE } from "./environment.js";

const MAKE_CERTS = resolve(fileURLToPath(new URL(".", import.meta.url)), "../../scripts/make-certs.sh");

/** The node's port inside its container. */
export const NODE_PORT = 7001;
const OWNER_PID_LABEL = "dynamo-ts.e2e.owner-pid";
const OWNER_HOST_LABEL = "dynamo-ts.e2e.owner-host";
const NETWORK_LABEL = "dynamo-ts.e2e.network";
const CLUSTER_LABEL = "dynamo-ts.e2e.cluster";

export interface ClusterOptions {
  /** Names the containers (dynamo-e2e-<name>-<run>-node1) and labels them. */
  readonly name: string;
  readonly size?: number;
  readonly n?: number;
  readonly r?: number;
  readonly w?: number;
  /** Default deadline of client calls, also the node's default request timeout. */
  readonly requestTimeoutMs?: number;
  /** Extra node settings (DYNAMO_* variables), applied to every node. */
  readonly env?: Readonly<Record<string, string>>;
  readonly startupTimeoutMs?: number;
  /**
   * TLS and client credentials on: certificates made by openssl (scripts/make-certs.sh) for every
   * node and a client, mutual TLS between nodes, and a bearer token required of every client.
   */
  readonly secure?: boolean;
}

/** What a secure cluster's clients need: the CA, a client certificate of the cluster (internal reads), a token. */
interface Security {
  readonly dir: string;
  readonly ca: Buffer;
  readonly clientCert: Buffer;
  readonly clientKey: Buffer;
  readonly token: string;
}

/** Nodes a secure cluster can add later (their certificates are made up front). */
const SPARE_CERTIFICATES = 4;

export class ClusterError extends Error {
  override name = "ClusterError";
}

export interface ClusterNode {
  /** Node id, also its host name on the cluster network. */
  readonly id: string;
  /** Host port on 127.0.0.1 that reaches the node. */
  readonly hostPort: number;
  readonly container: StartedTestContainer;
  /** A client that talks to this node (as coordinator). */
  readonly client: DynamoClient;
}

type NodeState = "running" | "killed" | "stopped" | "disconnected" | "paused";

/** GenericContainer publishing on loopback only, on exactly one network under one alias. */
class NodeContainer extends GenericContainer {
  private loopbackPorts: number[] = [];

  withLoopbackPort(containerPort: number, hostPort: number): this {
    this.loopbackPorts.push(containerPort);
    return this.withExposedPorts({ container: containerPort, host: hostPort });
  }

  /**
   * Joins only `network`, under `alias`. (withNetworkAliases would also attach the default
   * bridge, through which a "disconnected" node would still be reachable.)
   */
  withOnlyNetwork(network: StartedNetwork, alias: string): this {
    this.withNetwork(network);
    this.createOpts.NetworkingConfig = { EndpointsConfig: { [network.getName()]: { Aliases: [alias] } } };
    return this;
  }

  protected override async beforeContainerCreated(): Promise<void> {
    for (const port of this.loopbackPorts) {
      for (const binding of this.hostConfig.PortBindings?.[`${port}/tcp`] ?? []) binding.HostIp = "127.0.0.1";
    }
  }
}

export class Cluster {
  private readonly states: NodeState[];
  private closed = false;

  private readonly members: ClusterNode[];

  private constructor(
    readonly name: string,
    nodes: readonly ClusterNode[],
    readonly n: number,
    private readonly network: StartedNetwork,
    private readonly docker: ContainerRuntimeClient,
    private readonly startupTimeoutMs: number,
    private readonly secret: string,
    private readonly options: ClusterOptions,
    private readonly runId: string,
    private readonly security: Security | undefined,
  ) {
    this.members = [...nodes];
    this.states = nodes.map(() => "running");
  }

  /** Every node ever started, by index (nodes added later come last). */
  get nodes(): readonly ClusterNode[] {
    return this.members;
  }

  /**
   * Starts `count` new nodes at once, joining through the running nodes (DYNAMO_SEEDS, fresh data
   * dirs: they start joining and copy their ranges), and waits until each is ready (/readyz: its
   * bootstrap is done). Returns their indexes.
   */
  async addNodes(count: number): Promise<number[]> {
    const first = this.members.length;
    const ids = Array.from({ length: count }, (_, i) => `node${first + i + 1}`);
    const ports = await freeLoopbackPorts(count);
    const seeds = this.runningIndexes().map((i) => `${this.members[i]!.id}:${NODE_PORT}`);
    const settled = await Promise.allSettled(
      ids.map((id, i) =>
        nodeContainer(this.options, this.network, this.runId, id, ports[i]!, this.n, this.secret, { DYNAMO_SEEDS: seeds.join(",") }, this.security).start(),
      ),
    );
    const failed = settled.find((r) => r.status === "rejected");
    if (failed) {
      await Promise.allSettled(settled.flatMap((r) => (r.status === "fulfilled" ? [removeContainer(this.docker, r.value.getId())] : [])));
      await removeLabelled(this.docker, CLUSTER_LABEL, `${this.options.name}-${this.runId}`, new Set(this.members.map((m) => m.container.getId())));
      throw failed.reason;
    }
    settled.forEach((r, i) => {
      const container = (r as PromiseFulfilledResult<StartedTestContainer>).value;
      const client = nodeClient(ports[i]!, this.options.requestTimeoutMs ?? 3000, this.security);
      this.members.push({ id: ids[i]!, hostPort: ports[i]!, container, client });
      this.states.push("running");
    });
    await Promise.all(
      ids.map((id, i) =>
        retryUntil(this.startupTimeoutMs * 3, `${id} ready (bootstrap done)`, async () => {
          const res = await this.request(ports[i]!, "/readyz");
          if (res.status !== 200) throw new ClusterError(`${id} /readyz: ${res.status} ${res.body}`);
        }),
      ),
    );
    return ids.map((_, i) => first + i);
  }

  /** A client of node `index` with the cluster secret, for admin calls (Status); close it after use. */
  admin(index: number): DynamoClient & Disposable {
    const client = new DynamoClient({
      node: `127.0.0.1:${this.node(index).hostPort}`,
      clusterSecret: this.secret,
      httpVersion: "1.1",
      ...(this.security ? { ca: this.security.ca } : {}),
    });
    return Object.assign(client, { [Symbol.dispose]: () => client.close() });
  }

  /** The cluster CA's certificate (PEM) of a secure cluster. */
  caPem(): string {
    if (!this.security) throw new ClusterError(`cluster ${this.name} has no TLS`);
    return this.security.ca.toString("utf8");
  }

  /** Runs the `dynamo` CLI inside node `index`'s container (it finds the cluster secret there). */
  async dynamo(index: number, ...args: string[]): Promise<{ exitCode: number; output: string }> {
    const result = await this.node(index).container.exec(["dynamo", ...args]);
    return { exitCode: result.exitCode, output: result.output };
  }

  /** Waits until node `index` exits by itself (a decommissioned node stops), and notes it stopped. */
  async waitExited(index: number): Promise<number> {
    const code = await this.waitUntilExited(index);
    this.states[index] = "stopped";
    return code;
  }

  /**
   * The record node `index` stores for `key` (its canonical encoded sibling set, base64; ""
   * when it has none), read straight from its store over the internal ReplicaService with the
   * cluster secret: no quorum, no read repair. Equal records mean equal versions.
   */
  async replicaRecord(index: number, key: string): Promise<string> {
    const node = this.node(index);
    const res = await this.request(node.hostPort, "/dynamo.v1.ReplicaService/Read", {
      method: "POST",
      headers: { "content-type": "application/json", [CLUSTER_SECRET_HEADER]: this.secret },
      body: JSON.stringify({ key }),
    });
    if (res.status !== 200) throw new ClusterError(`replica read of ${JSON.stringify(key)} on ${node.id}: HTTP ${res.status} ${res.body}`);
    return (JSON.parse(res.body) as { record?: string }).record ?? "";
  }

  static async start(options: ClusterOptions): Promise<Cluster> {
    const docker = await dockerClient();
    await sweepOrphans(docker);
    const size = options.size ?? 3;
    const n = options.n ?? Math.min(3, size);
    const requestTimeoutMs = options.requestTimeoutMs ?? 3000;
    const startupTimeoutMs = options.startupTimeoutMs ?? 60_000;
    const runId = randomBytes(3).toString("hex");
    const ids = Array.from({ length: size }, (_, i) => `node${i + 1}`);
    const ports = await freeLoopbackPorts(size);
    const secret = randomBytes(24).toString("hex");
    const security = options.secure ? await makeSecurity(size) : undefined;
    const network = await new Network().start();

    const started: StartedTestContainer[] = [];
    try {
      const containers = await Promise.all(
        ids.map(async (id, i) => {
          const container = await nodeContainer(options, network, runId, id, ports[i]!, n, secret, membershipEnv(ids), security).start();
          started.push(container);
          return container;
        }),
      );
      const nodes = containers.map((container, i) => ({
        id: ids[i]!,
        hostPort: ports[i]!,
        container,
        client: nodeClient(ports[i]!, requestTimeoutMs, security),
      }));
      return new Cluster(options.name, nodes, n, network, docker, startupTimeoutMs, secret, options, runId, security);
    } catch (error) {
      await Promise.allSettled(started.map((c) => removeContainer(docker, c.getId())));
      // A container whose start failed half-way is not in `started`: find it by its network label.
      await removeLabelled(docker, NETWORK_LABEL, network.getName());
      await network.stop().catch(() => undefined);
      if (security) rmSync(security.dir, { recursive: true, force: true });
      throw error;
    }
  }

  node(index: number): ClusterNode {
    const node = this.nodes[index];
    if (!node) throw new ClusterError(`no node #${index} in a cluster of ${this.nodes.length}`);
    return node;
  }

  /** Indexes of the nodes currently serving (not killed, stopped, paused or cut off). */
  runningIndexes(): number[] {
    return this.states.flatMap((state, i) => (state === "running" ? [i] : []));
  }

  stateOf(index: number): NodeState {
    this.node(index);
    return this.states[index]!;
  }

  /** kill -9: the process gets no chance to flush or shut down. */
  async kill(index: number): Promise<void> {
    await this.containerOf(index).kill({ signal: "SIGKILL" });
    await this.waitUntilExited(index);
    this.states[index] = "killed";
  }

  /** Graceful stop: SIGTERM, then SIGKILL after `timeoutSeconds`. Returns the exit code. */
  async stop(index: number, timeoutSeconds = 20): Promise<number> {
    await this.containerOf(index).stop({ t: timeoutSeconds });
    const exitCode = await this.waitUntilExited(index);
    this.states[index] = "stopped";
    return exitCode;
  }

  /** Starts a killed or stopped node on its existing data and waits until it serves. */
  async start(index: number): Promise<void> {
    await this.containerOf(index).start();
    this.states[index] = "running";
    await this.waitHealthy(index);
  }

  /** Cuts the node off the cluster network: no traffic to or from it (its host port too). */
  async disconnect(index: number): Promise<void> {
    await this.docker.network.getById(this.network.getId()).disconnect({ Container: this.node(index).container.getId(), Force: true });
    this.states[index] = "disconnected";
  }

  /** Puts a disconnected node back on the network under its name, and waits until it serves. */
  async reconnect(index: number): Promise<void> {
    const node = this.node(index);
    await this.docker.network.getById(this.network.getId()).connect({ Container: node.container.getId(), EndpointConfig: { Aliases: [node.id] } });
    this.states[index] = "running";
    await this.waitHealthy(index);
  }

  /** Freezes the node's processes: connections to it hang instead of failing. */
  async pause(index: number): Promise<void> {
    await this.containerOf(index).pause();
    this.states[index] = "paused";
  }

  async unpause(index: number): Promise<void> {
    await this.containerOf(index).unpause();
    this.states[index] = "running";
    await this.waitHealthy(index);
  }

  /** Polls GET /healthz through the node's host port until it answers 200. */
  async waitHealthy(index: number, timeoutMs = this.startupTimeoutMs): Promise<void> {
    const node = this.node(index);
    const deadline = Date.now() + timeoutMs;
    let last = "no answer yet";
    while (Date.now() < deadline) {
      try {
        const response = await this.request(node.hostPort, "/healthz");
        if (response.status === 200) return;
        last = `status ${response.status}`;
      } catch (error) {
        last = firstLine(error);
      }
      const info = await this.containerOf(index).inspect();
      if (!info.State.Running) {
        throw new ClusterError(`${node.id} exited (code ${info.State.ExitCode}) while waiting for it to serve:\n${await this.logs(index, 30)}`);
      }
      await delay(200);
    }
    throw new ClusterError(`${node.id} did not serve /healthz within ${timeoutMs} ms (${last})`);
  }

  /**
   * Reads every key through every running node at R=N, so each read merges all replicas.
   * Retries while the cluster is still settling after a fault (Unavailable, deadline, refused).
   */
  async readAll(keys: readonly string[], timeoutMs = 60_000): Promise<FinalRead[]> {
    const reads: FinalRead[] = [];
    for (const index of this.runningIndexes()) {
      const node = this.node(index);
      for (const key of keys) {
        const result = await retryUntil(timeoutMs, `R=${this.n} read of ${key} through ${node.id}`, () => node.client.get(key, { r: this.n }));
        reads.push({ node: node.id, key, values: result === null ? null : result.values.map(decodeValue) });
      }
    }
    return reads;
  }

  /** The last lines the node logged (stdout and stderr). */
  async logs(index: number, tail = 50): Promise<string> {
    const raw = (await this.containerOf(index).logs({ stdout: true, stderr: true, tail, follow: false })) as unknown as Buffer;
    return demultiplexDockerLog(raw);
  }

  /** Every node's last log lines, for failure reports. */
  async allLogs(tail = 40): Promise<string> {
    const parts = await Promise.all(
      this.nodes.map(async (node, i) => {
        const text = await this.logs(i, tail).catch((error: unknown) => `(logs unavailable: ${firstLine(error)})`);
        return `----- ${node.id} (${this.states[i]}) -----\n${text}`;
      }),
    );
    return parts.join("\n");
  }

  /** Removes the containers with their volumes, and the network. Safe to call twice. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const node of this.nodes) node.client.close();
    await Promise.allSettled(this.nodes.map((node) => removeContainer(this.docker, node.container.getId())));
    await this.network.stop().catch(() => undefined);
    if (this.security) rmSync(this.security.dir, { recursive: true, force: true });
  }

  /** One HTTP request to a node's host port: https with the cluster CA and a client certificate when secure. */
  private request(
    port: number,
    path: string,
    init: { method?: string; headers?: Record<string, string>; body?: string } = {},
  ): Promise<{ status: number; body: string }> {
    const security = this.security;
    const get = security ? https.request : http.request;
    return new Promise((resolve, reject) => {
      const req = get(
        {
          host: "127.0.0.1",
          port,
          path,
          method: init.method ?? "GET",
          headers: init.headers,
          timeout: 5_000,
          agent: false,
          ...(security ? { ca: security.ca, cert: security.clientCert, key: security.clientKey } : {}),
        },
        (res) => {
          let body = "";
          res.setEncoding("utf8");
          res.on("data", (chunk: string) => (body += chunk));
          res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
        },
      );
      req.on("timeout", () => req.destroy(new Error(`no answer from 127.0.0.1:${port}${path} within 5 s`)));
      req.on("error", reject);
      req.end(init.body);
    });
  }

  private containerOf(index: number) {
    return this.docker.container.getById(this.node(index).container.getId());
  }

  private async waitUntilExited(index: number): Promise<number> {
    const result = (await this.containerOf(index).wait({ condition: "not-running" })) as { StatusCode: number };
    return result.StatusCode;
  }
}

/** A node's container, ready to start: on the cluster network only, its port on loopback. */
function nodeContainer(
  options: ClusterOptions,
  network: StartedNetwork,
  runId: string,
  id: string,
  hostPort: number,
  n: number,
  secret: string,
  membership: Record<string, string>,
  security?: Security,
): NodeContainer {
  const container = new NodeContainer(NODE_IMAGE)
    .withName(`dynamo-e2e-${options.name}-${runId}-${id}`)
    .withOnlyNetwork(network, id)
    .withLoopbackPort(NODE_PORT, hostPort)
    .withEnvironment({
      ...membership,
      DYNAMO_NODE_ID: id,
      DYNAMO_ADVERTISE: `${id}:${NODE_PORT}`,
      DYNAMO_CLUSTER_SECRET: secret,
      DYNAMO_N: String(n),
      DYNAMO_R: String(options.r ?? Math.floor(n / 2) + 1),
      DYNAMO_W: String(options.w ?? Math.floor(n / 2) + 1),
      DYNAMO_REQUEST_TIMEOUT_MS: String(options.requestTimeoutMs ?? 3000),
      ...(security
        ? {
            DYNAMO_TLS_CERT_FILE: `/certs/${id}.pem`,
            DYNAMO_TLS_KEY_FILE: `/certs/${id}.key`,
            DYNAMO_TLS_CA_FILE: "/certs/ca.pem",
            DYNAMO_CA_FILE: "/certs/ca.pem",
            DYNAMO_TOKENS_FILE: "/certs/tokens",
            DYNAMO_REQUIRE_CLIENT_AUTH: "true",
          }
        : {}),
      ...options.env,
    })
    .withLabels({
      [OWNER_PID_LABEL]: String(process.pid),
      [OWNER_HOST_LABEL]: os.hostname(),
      [NETWORK_LABEL]: network.getName(),
      [CLUSTER_LABEL]: `${options.name}-${runId}`,
    })
    .withPullPolicy(PullPolicy.neverPull())
    .withStartupTimeout(options.startupTimeoutMs ?? 60_000);
  if (!security) return container.withWaitStrategy(Wait.forHttp("/healthz", NODE_PORT).forStatusCode(200));
  // The node user must read its key: these are test certificates in a throwaway container.
  const file = (name: string) => ({ source: join(security.dir, name), target: `/certs/${name}`, mode: 0o644 });
  return container
    .withCopyFilesToContainer([file(`${id}.pem`), file(`${id}.key`), file("ca.pem"), file("tokens")])
    .withWaitStrategy(Wait.forHttp("/healthz", NODE_PORT).usingTls().allowInsecure().forStatusCode(200));
}

/** A client of one node: plain, or https trusting the cluster CA with the client token. */
function nodeClient(port: number, timeoutMs: number, security: Security | undefined): DynamoClient {
  return new DynamoClient({ node: `127.0.0.1:${port}`, timeoutMs, ...(security ? { ca: security.ca, token: security.token } : {}) });
}

/** Certificates for `size` nodes and some spares, a client certificate, and a tokens file, made with openssl. */
async function makeSecurity(size: number): Promise<Security> {
  const dir = mkdtempSync(join(os.tmpdir(), "dynamo-e2e-certs-"));
  const names = [...Array.from({ length: size + SPARE_CERTIFICATES }, (_, i) => `node${i + 1}`), "e2e-client"];
  await promisify(execFile)("bash", [MAKE_CERTS, dir, ...names]);
  const token = randomBytes(24).toString("hex");
  writeFileSync(join(dir, "tokens"), `${token} read,write,admin name=e2e\n`);
  const read = (name: string) => readFileSync(join(dir, name));
  return { dir, ca: read("ca.pem"), clientCert: read("e2e-client.pem"), clientKey: read("e2e-client.key"), token };
}

/**
 * Static membership of the initial nodes (DYNAMO_PEERS); the one place to change when nodes join through
 * seeds (DYNAMO_SEEDS) instead.
 */
function membershipEnv(ids: readonly string[]): Record<string, string> {
  return { DYNAMO_PEERS: ids.map((id) => `${id}@${id}:${NODE_PORT}`).join(",") };
}

export function decodeValue(bytes: Uint8Array): string {
  return new TextDecoder().decode(bytes);
}

/** Calls `attempt` until it succeeds or `timeoutMs` passes; rethrows the last error then. */
export async function retryUntil<T>(timeoutMs: number, what: string, attempt: () => Promise<T>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (let pause = 100; ; pause = Math.min(pause * 2, 2000)) {
    try {
      return await attempt();
    } catch (error) {
      if (Date.now() + pause > deadline) {
        throw new ClusterError(`${what} still failing after ${timeoutMs} ms: ${firstLine(error)}`);
      }
      await delay(pause);
    }
  }
}

export function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Ports the OS considers free on loopback, distinct; Docker binds them right after. */
export async function freeLoopbackPorts(count: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from(
      { length: count },
      () =>
        new Promise<net.Server>((resolve, reject) => {
          const server = net.createServer();
          server.once("error", reject);
          server.listen(0, "127.0.0.1", () => resolve(server));
        }),
    ),
  );
  const ports = servers.map((server) => (server.address() as net.AddressInfo).port);
  await Promise.all(servers.map((server) => new Promise((resolve) => server.close(resolve))));
  return ports;
}

async function removeContainer(docker: ContainerRuntimeClient, id: string): Promise<void> {
  await docker.container.getById(id).remove({ force: true, v: true });
}

async function removeLabelled(docker: ContainerRuntimeClient, label: string, value: string, keep: ReadonlySet<string> = new Set()): Promise<void> {
  const containers = await docker.container.dockerode.listContainers({ all: true, filters: { label: [`${label}=${value}`] } });
  await Promise.allSettled(containers.filter((c) => !keep.has(c.Id)).map((c) => removeContainer(docker, c.Id)));
}

/** Removes containers (and their networks) that an e2e process, now gone, left on this host. */
async function sweepOrphans(docker: ContainerRuntimeClient): Promise<void> {
  const containers = await docker.container.dockerode.listContainers({ all: true, filters: { label: [OWNER_PID_LABEL] } });
  const networks = new Set<string>();
  for (const container of containers) {
    const pid = Number(container.Labels[OWNER_PID_LABEL]);
    if (container.Labels[OWNER_HOST_LABEL] !== os.hostname() || isProcessAlive(pid)) continue;
    await removeContainer(docker, container.Id).catch(() => undefined);
    const network = container.Labels[NETWORK_LABEL];
    if (network) networks.add(network);
  }
  for (const network of networks) {
    await docker.network
      .getById(network)
      .remove()
      .catch(() => undefined);
  }
}

/** Docker multiplexes non-TTY logs into frames: 1 byte stream id, 3 zero bytes, 4 bytes length. */
function demultiplexDockerLog(raw: Buffer): string {
  const chunks: Buffer[] = [];
  let offset = 0;
  while (offset + 8 <= raw.length) {
    const length = raw.readUInt32BE(offset + 4);
    chunks.push(raw.subarray(offset + 8, offset + 8 + length));
    offset += 8 + length;
  }
  return Buffer.concat(chunks).toString("utf8").trimEnd();
}
