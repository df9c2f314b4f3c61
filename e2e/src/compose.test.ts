// Smoke test of the repository's docker-compose.yml as a user runs it: `up -d` under a unique
// project name (on free loopback ports), every node healthy, Put/Get/Delete over Connect JSON
// (the curl of the README) and the typed client, the `dynamo` CLI inside the image, a graceful
// `stop`, then `down -v`, also when a step fails.
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { DynamoClient } from "@dynamo-ts/client";
import { afterAll, beforeAll, expect, it } from "vitest";
import { decodeValue, freeLoopbackPorts, retryUntil } from "./cluster.js";
import { describeWithDocker, firstLine, isProcessAlive } from "./environment.js";

const run = promisify(execFile);
const COMPOSE_FILE = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../docker-compose.yml");
const SERVICES = ["node1", "node2", "node3"] as const;
const PROJECT_PREFIX = "dynamo-e2e-compose-";

/** `docker compose` (v2) when the plugin is there, else the standalone `docker-compose`. */
async function findCompose(): Promise<string[] | undefined> {
  for (const command of [["docker", "compose"], ["docker-compose"]]) {
    try {
      await run(command[0]!, [...command.slice(1), "version"], { timeout: 20_000 });
      return command;
    } catch {
      // try the next one
    }
  }
  return undefined;
}

const compose = await findCompose();

await describeWithDocker(
  "docker-compose cluster",
  () => composeSuite(compose ?? []),
  compose ? undefined : "neither `docker compose` nor `docker-compose` works",
);

function composeSuite(command: readonly string[]): void {
  const project = `${PROJECT_PREFIX}${process.pid}-${randomBytes(3).toString("hex")}`;
  let ports: Record<(typeof SERVICES)[number], number>;
  let env: NodeJS.ProcessEnv = { ...process.env };

  const composeRun = async (...args: string[]): Promise<string> => {
    const { stdout } = await run(command[0]!, [...command.slice(1), "-f", COMPOSE_FILE, "-p", project, ...args], {
      env,
      timeout: 180_000,
      maxBuffer: 16 * 1024 * 1024,
    });
    return stdout;
  };
  const containerId = async (service: string): Promise<string> => (await composeRun("ps", "-q", service)).trim();
  const inspect = async (id: string, format: string): Promise<string> => (await run("docker", ["inspect", "--format", format, id])).stdout.trim();

  beforeAll(async () => {
    await removeProjectsOfDeadRuns(command);
    const [port1, port2, port3] = await freeLoopbackPorts(3);
    ports = { node1: port1!, node2: port2!, node3: port3! };
    env = {
      ...process.env,
      DYNAMO_NODE1_PORT: String(port1),
      DYNAMO_NODE2_PORT: String(port2),
      DYNAMO_NODE3_PORT: String(port3),
    };
    // The image is built beforehand (docker/build-image.sh): never build or pull here.
    await composeRun("up", "-d", "--no-build");
  });

  afterAll(async () => {
    await composeRun("down", "-v", "--remove-orphans", "-t", "5").catch((error: unknown) => {
      console.error(`[e2e] compose down failed: ${firstLine(error)}`);
    });
  });

  it("serves Put, Get and Delete on every published port", async () => {
    const startedAt = Date.now();
    for (const service of SERVICES) {
      await retryUntil(60_000, `${service} /healthz`, async () => {
        const response = await fetch(`http://127.0.0.1:${ports[service]}/healthz`, { signal: AbortSignal.timeout(2000) });
        if (response.status !== 200) throw new Error(`status ${response.status}`);
      });
    }
    // The compose healthcheck (node /app/healthcheck.mjs inside the container) agrees.
    for (const service of SERVICES) {
      const id = await containerId(service);
      await retryUntil(60_000, `${service} healthcheck`, async () => {
        const status = await inspect(id, "{{.State.Health.Status}}");
        if (status !== "healthy") throw new Error(`health ${status}`);
      });
    }

    // The README's curl: Connect JSON over HTTP/1.1, bytes as base64.
    const put = await connectJson(ports.node1, "Put", { key: "smoke", value: Buffer.from("hi").toString("base64") });
    expect(put.status).toBe(200);
    const got = await connectJson(ports.node2, "Get", { key: "smoke" });
    expect(got.status).toBe(200);
    expect((got.body.siblings as { value: string }[]).map((s) => Buffer.from(s.value, "base64").toString())).toEqual(["hi"]);

    // The CLI shipped in the image, against its own node.
    const cli = await run("docker", ["exec", await containerId("node3"), "dynamo", "get", "smoke", "--node", "127.0.0.1:7001"]);
    expect(cli.stdout).toContain("hi");

    // The secret was made on this first `up` (no published default), the same on every node,
    // and admin calls need it.
    const secrets = await Promise.all(
      // node reads it: the image has no shell tools
      SERVICES.map(async (s) =>
        (
          await run("docker", ["exec", await containerId(s), "node", "-e", "process.stdout.write(require('fs').readFileSync('/secret/cluster-secret'))"])
        ).stdout.trim(),
      ),
    );
    expect(secrets[0]).toMatch(/^[0-9a-f]{64}$/);
    expect(new Set(secrets).size).toBe(1);
    const status = await run("docker", [
      "exec",
      await containerId("node1"),
      "dynamo",
      "status",
      "--node",
      "127.0.0.1:7001",
      "--secret-file",
      "/secret/cluster-secret",
    ]);
    expect(status.stdout).toContain("node1");
    // Inside the containers the CLI finds the secret through DYNAMO_CLUSTER_SECRET_FILE; without it, refused.
    await expect(
      run("docker", ["exec", "-e", "DYNAMO_CLUSTER_SECRET_FILE=", await containerId("node1"), "dynamo", "status", "--node", "127.0.0.1:7001"]),
    ).rejects.toThrow(/needs credentials/);

    // The typed client: a read-modify-write then a delete with its context.
    const client = new DynamoClient({ node: `127.0.0.1:${ports.node3}`, timeoutMs: 5000 });
    try {
      const read = await client.get("smoke");
      expect(read?.values.map(decodeValue)).toEqual(["hi"]);
      await client.put("smoke", "hello", { context: read!.context });
      const updated = await client.get("smoke", { r: 3 });
      expect(updated?.values.map(decodeValue)).toEqual(["hello"]);
      await client.delete("smoke", { context: updated!.context });
    } finally {
      client.close();
    }
    const gone = await connectJson(ports.node1, "Get", { key: "smoke" });
    expect(gone.status).toBe(404);
    expect(gone.body.code).toBe("not_found");
    console.log(`[e2e] compose smoke (${command.join(" ")}): 3 nodes healthy, put/get/delete ok, ${((Date.now() - startedAt) / 1000).toFixed(1)} s`);
  });

  it("stops a node gracefully on SIGTERM", async () => {
    const id = await containerId("node3");
    await composeRun("stop", "-t", "20", "node3");
    expect(await inspect(id, "{{.State.ExitCode}}")).toBe("0");
  });
}

async function connectJson(port: number, method: string, body: unknown): Promise<{ status: number; body: Record<string, unknown> }> {
  const response = await fetch(`http://127.0.0.1:${port}/dynamo.v1.KVService/${method}`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(10_000),
  });
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}

/** Projects this suite started from a process that is gone (its pid is in the project name). */
async function removeProjectsOfDeadRuns(command: readonly string[]): Promise<void> {
  const { stdout } = await run("docker", ["ps", "-a", "--filter", "label=com.docker.compose.project", "--format", '{{.Label "com.docker.compose.project"}}']);
  const projects = new Set(stdout.split("\n").filter((name) => name.startsWith(PROJECT_PREFIX)));
  for (const project of projects) {
    const pid = Number(project.slice(PROJECT_PREFIX.length).split("-")[0]);
    if (isProcessAlive(pid)) continue;
    const down = [...command.slice(1), "-f", COMPOSE_FILE, "-p", project, "down", "-v", "--remove-orphans", "-t", "0"];
    await run(command[0]!, down).catch(() => undefined);
  }
}
