// The node's log on real processes: --log-level (and DYNAMO_LOG_LEVEL) decides which lines are
// written; at debug each request gets a line with its id, echoed to the client that sent
// x-request-id; the cluster secret and bearer tokens that requests carry never appear.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TEST_SECRET, TestCluster } from "../test-support/cluster.js";

const entries = (cluster: TestCluster) =>
  cluster.nodes[0]!.output.join("")
    .split("\n")
    .filter((l) => l.startsWith("{"))
    .map((l) => JSON.parse(l) as Record<string, unknown>);

describe("--log-level warn", () => {
  let cluster: TestCluster;
  beforeAll(async () => {
    cluster = await TestCluster.start({ nodes: 1, n: 1, args: ["--log-level", "warn"] });
  }, 60_000);
  afterAll(async () => cluster?.stop());

  it("writes no info or debug lines", async () => {
    const node = cluster.nodes[0]!;
    await fetch(`http://${node.address}/kv/a`, { method: "PUT", body: "v" });
    await fetch(`http://${node.address}/kv/a`);
    await cluster.stop();
    const levels = new Set(entries(cluster).map((e) => e.level));
    expect(levels.has("info")).toBe(false);
    expect(levels.has("debug")).toBe(false);
  });
});

describe("--log-level debug", () => {
  let cluster: TestCluster;
  beforeAll(async () => {
    cluster = await TestCluster.start({ nodes: 1, n: 1, args: ["--log-level", "debug"] });
  }, 60_000);
  afterAll(async () => cluster?.stop());

  it("writes a line per request with its id, echoes the client's id, and never the secret or a token", async () => {
    const node = cluster.nodes[0]!;
    const token = "tok-0123456789abcdef";
    const put = await fetch(`http://${node.address}/kv/b`, {
      method: "PUT",
      body: "v",
      headers: { "x-request-id": "client-req-7", authorization: `Bearer ${token}` },
    });
    expect(put.headers.get("x-request-id")).toBe("client-req-7");
    // A forged id is not echoed (nor written as is).
    const forged = await fetch(`http://${node.address}/kv/b`, { headers: { "x-request-id": 'x","level":"error' } });
    expect(forged.headers.get("x-request-id")).toBeNull();
    // Internal calls with the secret, and one with a wrong secret (refused and logged or not).
    await fetch(`http://${node.address}/dynamo.v1.AdminService/Status`, {
      method: "POST",
      headers: { "content-type": "application/json", "x-dynamo-cluster-secret": TEST_SECRET },
      body: "{}",
    });
    await fetch(`http://${node.address}/dynamo.v1.ReplicaService/Read`, {
      method: "POST",
      headers: { "content-type": "application/json", "x-dynamo-cluster-secret": `${TEST_SECRET}-wrong` },
      body: '{"key":"b"}',
    });
    let lines: Record<string, unknown>[] = [];
    for (let i = 0; i < 50 && !lines.some((e) => e.requestId === "client-req-7"); i++) {
      await new Promise((r) => setTimeout(r, 100));
      lines = entries(cluster);
    }
    const line = lines.find((e) => e.requestId === "client-req-7");
    expect(line).toMatchObject({ level: "debug", msg: "request", method: "PUT", path: "/kv/b", status: 204 });
    expect(lines.filter((e) => e.msg === "request" && e.path === "/kv/b" && e.method === "GET")).toHaveLength(1);
    const all = node.output.join("");
    expect(all).not.toContain(TEST_SECRET);
    expect(all).not.toContain(token);
  });
});
