// Liveness and readiness on real processes: /livez answers while the process works; /readyz and
// the gRPC health service for "" and KVService flip to not ready when a node is the only one of
// three left (the default R=W=2 cannot be met) and back when the others return, while the
// replica service (what peers probe) stays serving; a node started alone with N=3 says loudly
// that it is not ready.
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { Health, HealthCheckResponse_ServingStatus as Status, KVService, ReplicaService } from "@dynamo-ts/proto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TestCluster } from "../test-support/cluster.js";

interface ReadyBody {
  ready: boolean;
  reason: string;
  checks: Array<{ name: string; ok: boolean; detail: string }>;
}

async function readyz(address: string): Promise<{ status: number; body: ReadyBody }> {
  const res = await fetch(`http://${address}/readyz`);
  return { status: res.status, body: (await res.json()) as ReadyBody };
}

/** Polls until `check` holds (an upper bound against hangs, not a timing assertion). */
async function eventually<T>(what: string, attempt: () => Promise<T>, check: (value: T) => boolean, tries = 150): Promise<T> {
  let last: T | undefined;
  for (let i = 0; i < tries; i++) {
    last = await attempt();
    if (check(last)) return last;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`${what}: last seen ${JSON.stringify(last)}`);
}

describe("liveness and readiness", () => {
  let cluster: TestCluster;
  beforeAll(async () => {
    cluster = await TestCluster.start({ nodes: 3, args: ["--gossip-interval-ms", "200", "--gossip-suspicion-ms", "1000"] });
  }, 60_000);
  afterAll(async () => cluster?.stop());

  it("flips readiness, not liveness, when a node is the only one of three left, and back", async () => {
    const [n1, n2, n3] = cluster.nodes as [(typeof cluster.nodes)[0], (typeof cluster.nodes)[0], (typeof cluster.nodes)[0]];
    const health = createClient(Health, createGrpcTransport({ baseUrl: `http://${n1.address}` }));
    const status = async (service: string) => (await health.check({ service })).status;

    const ready = await readyz(n1.address);
    expect(ready.status).toBe(200);
    expect(ready.body.ready).toBe(true);
    expect(ready.body.checks.map((c) => c.name)).toEqual(["started", "storage", "membership", "ring", "quorum"]);
    expect(await status("")).toBe(Status.SERVING);

    await n2.kill();
    // One of three down: R=W=2 still met.
    expect((await readyz(n1.address)).status).toBe(200);
    await n3.kill();
    const alone = await eventually(
      "n1 not ready once gossip holds n2 and n3 dead",
      () => readyz(n1.address),
      (r) => r.status === 503,
    );
    expect(alone.body.reason).toContain("only 1 of 3 members up, but the default R=2 and W=2 need 2");
    expect(alone.body.checks.find((c) => c.name === "quorum")?.ok).toBe(false);
    expect((await fetch(`http://${n1.address}/livez`)).status).toBe(200);
    expect(await status("")).toBe(Status.NOT_SERVING);
    expect(await status(KVService.typeName)).toBe(Status.NOT_SERVING);
    // Peers probe the replica service: a node left alone must still look reachable to them.
    expect(await status(ReplicaService.typeName)).toBe(Status.SERVING);

    await Promise.all([n2.start(), n3.start()]);
    await eventually(
      "n1 ready again",
      () => readyz(n1.address),
      (r) => r.status === 200,
    );
    expect(await status("")).toBe(Status.SERVING);
  }, 90_000);
});

describe("a node started alone with N=3", () => {
  let lone: TestCluster;
  beforeAll(async () => {
    lone = await TestCluster.start({ nodes: 1, n: 3, r: 2, w: 2 });
  }, 60_000);
  afterAll(async () => lone?.stop());

  it("warns at start-up and is not ready, saying why", async () => {
    const node = lone.nodes[0]!;
    const r = await readyz(node.address);
    expect(r.status).toBe(503);
    expect(r.body.reason).toContain("start more nodes with --seeds");
    expect((await fetch(`http://${node.address}/livez`)).status).toBe(200);
    const log = await eventually(
      "the start-up warning",
      async () => node.output.join(""),
      (out) => out.includes("NOT READY"),
    );
    expect(log).toContain("this node was started alone (no --seeds or --peers) with N=3 R=2 W=2");
  });
});
