// Integration tests: real node processes on 127.0.0.1, driven through the public API.
import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { Code, ConnectError, type DynamoClient } from "@dynamo-ts/client";
import { Health, HealthCheckResponse_ServingStatus as ServingStatus, ReplicaService } from "@dynamo-ts/proto";
import { hashKey, Ring } from "@dynamo-ts/ring";
import { liveValues } from "@dynamo-ts/vclock";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { dynamo, TEST_SECRET, TestCluster } from "../test-support/cluster.js";
import { CLUSTER_SECRET_HEADER } from "@dynamo-ts/proto";

const text = (values: Uint8Array[]) => values.map((v) => new TextDecoder().decode(v)).sort();

async function expectCode(promise: Promise<unknown>, code: Code): Promise<ConnectError> {
  try {
    await promise;
  } catch (err) {
    const ce = ConnectError.from(err);
    expect(Code[ce.code], ce.rawMessage).toBe(Code[code]);
    return ce;
  }
  throw new Error(`expected ${Code[code]}, the call succeeded`);
}

describe("a 3-node cluster, N=3 R=2 W=2", () => {
  let cluster: TestCluster;
  let c1: DynamoClient, c2: DynamoClient, c3: DynamoClient;

  beforeAll(async () => {
    cluster = await TestCluster.start({ nodes: 3 });
    [c1, c2, c3] = ["n1", "n2", "n3"].map((id) => cluster.client(id)) as [DynamoClient, DynamoClient, DynamoClient];
  }, 30_000);
  afterAll(async () => cluster?.stop());

  it("reads on one node what was put on another", async () => {
    await c1.put("greeting", "hello");
    const got = await c2.get("greeting");
    expect(got && text(got.values)).toEqual(["hello"]);
    expect(await c3.get("no-such-key")).toBeNull();
  });

  it("reads its writes with R+W>N for every key, through every node", async () => {
    const clients = [c1, c2, c3];
    for (let i = 0; i < 60; i++) {
      const key = `ryw-${i}`;
      await clients[i % 3]!.put(key, `v${i}`);
      const got = await clients[(i + 1) % 3]!.get(key);
      expect(got && text(got.values)).toEqual([`v${i}`]);
    }
  });

  it("keeps concurrent writes with the same context as siblings and resolves them on write-back", async () => {
    const first = await c1.put("doc", "base");
    // Two clients write with the same (stale) context through the same coordinator…
    await c1.put("doc", "from-alice", { context: first.context });
    await c1.put("doc", "from-bob", { context: first.context });
    // …and a third writes blind through another node.
    await c2.put("doc", "from-carol");
    const read = await c3.get("doc", { r: 3 });
    expect(read && text(read.values)).toEqual(["from-alice", "from-bob", "from-carol"]);
    // Writing back with the context that was read replaces exactly what was read.
    await c2.put("doc", "merged", { context: read!.context });
    const after = await c1.get("doc", { r: 3 });
    expect(after && text(after.values)).toEqual(["merged"]);
  });

  it("the context a put returns replaces that write only, not a concurrent one it never saw", async () => {
    const base = await c1.put("counter", "0");
    const mine = await c1.put("counter", "1-mine", { context: base.context });
    await c1.put("counter", "1-theirs", { context: base.context });
    await c1.put("counter", "2-mine", { context: mine.context });
    const read = await c2.get("counter", { r: 3 });
    expect(read && text(read.values)).toEqual(["1-theirs", "2-mine"]);
  });

  it("deletes, and a delete with the read context removes exactly what was read", async () => {
    await c1.put("gone", "x");
    await c2.delete("gone");
    expect(await c3.get("gone", { r: 3 })).toBeNull();

    const v = await c1.put("half", "a");
    await c1.put("half", "b"); // blind: concurrent with "a"
    await c2.delete("half", { context: v.context });
    const left = await c3.get("half", { r: 3 });
    expect(left && text(left.values)).toEqual(["b"]);
  });

  it("answers InvalidArgument for every bad input", async () => {
    await expectCode(c1.put("", "v"), Code.InvalidArgument);
    await expectCode(c1.get(""), Code.InvalidArgument);
    await expectCode(c1.put("k".repeat(257), "v"), Code.InvalidArgument);
    await expectCode(c1.put("big", new Uint8Array(1024 * 1024 + 1)), Code.InvalidArgument);
    await expectCode(c1.get("k", { r: 0 }), Code.InvalidArgument);
    await expectCode(c1.get("k", { r: 4 }), Code.InvalidArgument);
    await expectCode(c1.put("k", "v", { w: 0 }), Code.InvalidArgument);
    await expectCode(c1.put("k", "v", { w: 4 }), Code.InvalidArgument);
    await expectCode(c1.delete("k", { w: 9 }), Code.InvalidArgument);
    await expectCode(c1.put("k", "v", { context: new Uint8Array([0xff, 0x01, 0x02]) }), Code.InvalidArgument);
    await expectCode(c1.delete("k", { context: new Uint8Array([0xc1, 0x05]) }), Code.InvalidArgument);
    const ce = await expectCode(c1.put("k", "v", { context: new Uint8Array([0xc1]) }), Code.InvalidArgument);
    expect(ce.rawMessage).toMatch(/context/);
    // A value at the limit is fine.
    await c1.put("at-limit", new Uint8Array(1024 * 1024));
  });

  it("serves gRPC, gRPC-Web and Connect over HTTP/1.1 on the same port", async () => {
    await cluster.client("n1", { protocol: "grpc" }).put("proto", "grpc");
    const web = await cluster.client("n2", { protocol: "grpc-web", httpVersion: "1.1" }).get("proto");
    expect(web && text(web.values)).toEqual(["grpc"]);
    const h1 = await cluster.client("n3", { httpVersion: "1.1" }).get("proto");
    expect(h1 && text(h1.values)).toEqual(["grpc"]);
  });

  it("speaks Connect JSON to curl-style requests", async () => {
    const base = `http://${cluster.node("n1").address}/dynamo.v1.KVService`;
    const post = (method: string, body: unknown) =>
      fetch(`${base}/${method}`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
    const put = await post("Put", { key: "json", value: Buffer.from("hi").toString("base64") });
    expect(put.status).toBe(200);
    const got = (await (await post("Get", { key: "json" })).json()) as { siblings: { value: string }[]; context: string };
    expect(got.siblings.map((s) => Buffer.from(s.value, "base64").toString())).toEqual(["hi"]);
    expect(got.context.length).toBeGreaterThan(0);
    const missing = await post("Get", { key: "json-missing" });
    expect(missing.status).toBe(404);
    expect(((await missing.json()) as { code: string }).code).toBe("not_found");
    const bad = await post("Get", { key: "" });
    expect(((await bad.json()) as { code: string }).code).toBe("invalid_argument");
    const health = await fetch(`http://${cluster.node("n1").address}/healthz`);
    expect(health.status).toBe(200);
  });

  it("refuses internal calls without the cluster secret", async () => {
    const transport = createConnectTransport({ baseUrl: `http://${cluster.node("n1").address}`, httpVersion: "1.1" });
    const replica = createClient(ReplicaService, transport);
    await expectCode(replica.read({ key: "greeting" }), Code.PermissionDenied);
    await expectCode(replica.read({ key: "greeting" }, { headers: { [CLUSTER_SECRET_HEADER]: "wrong-secret-wrong-secret" } }), Code.PermissionDenied);
    const ok = await replica.read({ key: "greeting" }, { headers: { [CLUSTER_SECRET_HEADER]: TEST_SECRET } });
    expect(ok.record.byteLength).toBeGreaterThan(0);
  });

  it("keeps every acknowledged write across a kill -9 and restart of a node", async () => {
    const acknowledged: string[] = [];
    for (let i = 0; i < 100; i++) {
      await c1.put(`durable-${i}`, `value-${i}`);
      acknowledged.push(`durable-${i}`);
    }
    await cluster.node("n1").kill("SIGKILL");
    await cluster.node("n1").start();
    for (const key of acknowledged) {
      // Read n1's own replica: the data must be on its disk, not just elsewhere.
      const local = await cluster.readReplica("n1", key);
      expect(local && liveValues(local).map((v) => new TextDecoder().decode(v))).toEqual([`value-${key.slice(8)}`]);
    }
  });

  it("answers Unavailable when two of three nodes are down and W=2, and recovers after", async () => {
    await c1.put("before-outage", "x");
    await cluster.node("n2").kill();
    await cluster.node("n3").kill();
    try {
      const ce = await expectCode(c1.put("during-outage", "y", { w: 2 }), Code.Unavailable);
      expect(ce.rawMessage).toMatch(/1 of 3 replicas .*2 needed/);
      await expectCode(c1.get("before-outage", { r: 2 }), Code.Unavailable);
      // W=1 / R=1 still work on the one replica left.
      await c1.put("during-outage", "y", { w: 1 });
      const got = await c1.get("before-outage", { r: 1 });
      expect(got && text(got.values)).toEqual(["x"]);
    } finally {
      await cluster.node("n2").start();
      await cluster.node("n3").start();
    }
    await cluster.waitAllAlive();
    await c1.put("after-outage", "z", { w: 3 });
  });

  it("works from the dynamo CLI: put, get with siblings, resolve, delete, status", async () => {
    const n1 = cluster.node("n1").address;
    const n2 = cluster.node("n2").address;
    expect((await dynamo("put", "cli-key", "one", "--node", n1)).stdout).toMatch(/^ok\ncontext: \S+/);
    await dynamo("put", "cli-key", "two", "--node", n2);
    const siblings = await dynamo("get", "cli-key", "--node", n2, "--r", "3");
    expect(siblings.code).toBe(0);
    // Only the values on stdout, each followed by a newline; the note and the context on stderr.
    expect(siblings.stdout.split("\n").slice(0, -1).sort()).toEqual(["one", "two"]);
    expect(siblings.stderr).toMatch(/^dynamo: 2 siblings/);
    const context = /context: (\S+)/.exec(siblings.stderr)![1]!;
    expect((await dynamo("put", "cli-key", "resolved", "--context", context, "--node", n1)).code).toBe(0);
    const resolved = await dynamo("get", "cli-key", "--node", n1, "--json");
    expect(JSON.parse(resolved.stdout)).toMatchObject({ found: true, values: [Buffer.from("resolved").toString("base64")] });
    expect((await dynamo("delete", "cli-key", "--node", n2)).stdout).toBe("ok\n");
    const missing = await dynamo("get", "cli-key", "--node", n1);
    expect(missing.code).toBe(3);
    expect(missing.stderr).toContain("not found");
    expect((await dynamo("put", "k", "v", "--w", "7", "--node", n1)).code).toBe(2);
    const status = await dynamo("status", "--node", n1, "--secret", TEST_SECRET);
    expect(status.stdout).toMatch(/NODE\s+ADDRESS\s+STATE/);
    expect(status.stdout).toMatch(/n1 \*/);
  });

  it("stops gracefully on SIGTERM with exit code 0, ending its peers' replica streams rather than cutting them off", async () => {
    // Writes through every node leave each peer with a replica stream open to n3.
    for (const node of cluster.nodes) await cluster.client(node.id).put(`sigterm-${node.id}`, "v");
    const n3 = cluster.node("n3");
    // A health watch on n3 is told NOT_SERVING and then ends, rather than being cut off.
    const health = createClient(Health, createConnectTransport({ baseUrl: `http://${n3.address}`, httpVersion: "2" }));
    const seen: ServingStatus[] = [];
    const watchIterator = health.watch({})[Symbol.asyncIterator]();
    seen.push((await watchIterator.next()).value.status);
    const watched = (async () => {
      for (;;) {
        const next = await watchIterator.next();
        if (next.done) return;
        seen.push(next.value.status);
      }
    })();
    n3.output.length = 0;
    const code = await n3.stop();
    expect(code).toBe(0);
    await watched;
    expect(seen).toEqual([ServingStatus.SERVING, ServingStatus.NOT_SERVING]);
    const log = n3.output.join("");
    expect(log).toContain('"msg":"stopped"');
    expect(log).not.toContain("grace period over");
    await n3.start();
  });
});

describe("a 4-node cluster, N=3: a node outside a key's preference list", () => {
  let cluster: TestCluster;
  beforeAll(async () => {
    cluster = await TestCluster.start({ nodes: 4, n: 3 });
  }, 30_000);
  afterAll(async () => cluster?.stop());

  it("forwards the write to a replica and reads it back", async () => {
    const ring = new Ring(
      cluster.nodes.map((x) => x.id),
      { vnodes: 256 },
    );
    // Find keys whose preference list leaves out n4, then write them through n4.
    const keys: string[] = [];
    for (let i = 0; keys.length < 10; i++) {
      const key = `fwd-${i}`;
      if (!ring.preferenceList(key, 3).includes("n4")) keys.push(key);
    }
    expect(hashKey(keys[0]!)).toBeTypeOf("number");
    const outsider = cluster.client("n4");
    for (const key of keys) {
      const res = await outsider.put(key, `via-n4-${key}`);
      expect(res.context.byteLength).toBeGreaterThan(0);
      const got = await cluster.client("n1").get(key, { r: 3 });
      expect(got && text(got.values)).toEqual([`via-n4-${key}`]);
      expect(await cluster.readReplica("n4", key)).toBeUndefined();
    }
    // With a client deadline (the lean path makes it fractional: it counts from the request's
    // arrival), the forwarded call must still carry a valid whole-millisecond timeout.
    const timed = cluster.client("n4", { timeoutMs: 3000 });
    for (const key of keys.slice(0, 3)) {
      await timed.put(key, `timed-${key}`, { context: (await timed.get(key))!.context });
      expect(text((await cluster.client("n1").get(key, { r: 3 }))!.values)).toEqual([`timed-${key}`]);
    }
    await timed.delete(keys[2]!);
    expect(await cluster.client("n1").get(keys[2]!, { r: 3 })).toBeNull();
    // A write-back through the outsider with the context it got replaces its own write.
    const first = keys[0]!;
    const read = await outsider.get(first);
    await outsider.put(first, "second", { context: read!.context });
    const after = await cluster.client("n2").get(first, { r: 3 });
    expect(after && text(after.values)).toEqual(["second"]);
    // Each went as an op on n4's replica stream to a replica: no KVService call reached the
    // replicas (their request metrics count only what clients sent them: the reads above).
    const counters = async (id: string) => (await cluster.status(id)).counters;
    const handed = Number((await counters("n4"))["forwarded_writes"] ?? 0);
    let coordinated = 0;
    for (const id of ["n1", "n2", "n3"]) coordinated += Number((await counters(id))["forwarded_writes_coordinated"] ?? 0);
    expect([handed, coordinated]).toEqual([15, 15]);
    for (const node of cluster.nodes.filter((x) => x.id !== "n4")) {
      const metrics = await (await fetch(`http://${node.address}/metrics`)).text();
      expect(metrics, node.id).not.toMatch(/^dynamo_requests_total\{method="(Put|Delete)"/m);
    }
  });
});

describe("a 3-node cluster with --max-value-bytes 1024", () => {
  let cluster: TestCluster;
  beforeAll(async () => {
    cluster = await TestCluster.start({ nodes: 3, n: 3, args: ["--max-value-bytes", "1024", "--hinted-handoff", "false"] });
  }, 30_000);
  afterAll(async () => cluster?.stop());

  it("replicates a burst of writes whose replica messages together exceed the value limit many times over", async () => {
    // 300 writes of 1 KiB issued at once: their replica ops are batched on each peer stream,
    // and a batch must still fit the receiving node's message limit.
    const client = cluster.client("n1");
    const keys = Array.from({ length: 300 }, (_, i) => `burst-${i}`);
    await Promise.all(keys.map((key) => client.put(key, "v".repeat(1000), { w: 3 })));
    for (const id of ["n2", "n3"]) {
      for (const key of keys) expect(await cluster.readReplica(id, key), `${key} on ${id}`).toBeDefined();
    }
  });
});
