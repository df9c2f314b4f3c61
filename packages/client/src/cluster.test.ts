// The SDK against a real three-node cluster (scripts/local-cluster.mjs): failover with a node
// killed, update() resolving siblings, typed errors, and every ```ts example of README.md.
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type DynamoClientOptions, DynamoClient } from "./client.js";
import { DynamoError } from "./errors.js";
import { LocalCluster, runProcess } from "./test-support/local-cluster.js";
import { rejection } from "./test-support/rejection.js";

const text = (v: Uint8Array) => new TextDecoder().decode(v);
const PACKAGE_DIR = fileURLToPath(new URL("..", import.meta.url));

describe("DynamoClient against a three-node cluster", () => {
  let cluster: LocalCluster;
  const clients: DynamoClient[] = [];
  const client = (options: DynamoClientOptions) => {
    const c = new DynamoClient(options);
    clients.push(c);
    return c;
  };

  beforeAll(async () => {
    cluster = await LocalCluster.start(3);
  });
  afterAll(async () => {
    for (const c of clients) c.close();
    await cluster?.stop();
  });

  it("keeps reading and writing through the other nodes when one is killed, and uses it again once it is back", async () => {
    const c = client({ nodes: cluster.addresses, timeoutMs: 5_000 });
    for (let i = 0; i < 9; i++) await c.put(`failover-${i}`, `before-${i}`);

    // Reads in flight while node3 dies (8 readers, back to back), and reads and writes after
    // it: every one succeeds. (A write in flight on the node that dies may fail: it is not
    // sent again, as it may have been applied.)
    try {
      await killNode3WhileReading(c);
    } finally {
      await cluster.healAll(); // whatever failed, the next tests get all three nodes
    }
    // node3 back: the client that failed over to the others still works, and node3 serves the new value.
    await new Promise((r) => setTimeout(r, 1_100)); // past the backoff
    for (let i = 0; i < 6; i++) expect(await c.get(`failover-${i}`)).not.toBeNull();
    const only3 = client({ node: cluster.address("node3") });
    await expect.poll(async () => (await only3.get("failover-0", { r: 1 }))?.values.map(text), { timeout: 15_000 }).toEqual(["after-0"]);
  });

  async function killNode3WhileReading(c: DynamoClient): Promise<void> {
    let reading = true;
    const reads: string[] = [];
    const readers = Array.from({ length: 8 }, async (_, r) => {
      for (let i = r; reading; i++) {
        reads.push(
          await c.get(`failover-${i % 9}`).then(
            (found) => (found ? "found" : "missing"),
            (err: DynamoError) => `${err.codeName}: ${err.rawMessage}`,
          ),
        );
      }
    });
    try {
      await new Promise((r) => setTimeout(r, 200));
      await cluster.kill("node3");
      await new Promise((r) => setTimeout(r, 300));
    } finally {
      reading = false;
      await Promise.all(readers);
    }
    expect(reads.length).toBeGreaterThanOrEqual(8);
    expect(reads.filter((r) => r !== "found")).toEqual([]);
    for (let i = 0; i < 9; i++) {
      const read = await c.get(`failover-${i}`);
      await c.put(`failover-${i}`, `after-${i}`, { context: read!.context });
      expect((await c.get(`failover-${i}`))!.values.map(text)).toEqual([`after-${i}`]);
    }

    // A client of node3 alone: the connection is refused, nothing was sent.
    const alone = await rejection(client({ node: cluster.address("node3") }).put("failover-0", "lost?"));
    expect([alone.codeName, alone.node]).toEqual(["Unavailable", `http://${cluster.address("node3")}`]);
    expect(alone.rawMessage).toMatch(/ECONNREFUSED/);
  }

  it("update() hands every sibling to fn and writes one value back with the read's context", async () => {
    const [n1, n2] = [client({ node: cluster.address("node1") }), client({ node: cluster.address("node2") })];
    await n1.put("cart", "apples");
    await n2.put("cart", "pears"); // blind: a sibling of "apples"
    const c = client({ nodes: cluster.addresses });
    let seen: string[] | null = null;
    const written = await c.update("cart", (siblings) => {
      seen = siblings!.map(text).sort();
      return seen.join(",");
    });
    expect(seen).toEqual(["apples", "pears"]);
    expect(written?.context.length).toBeGreaterThan(0);
    expect((await c.get("cart", { r: 3 }))!.values.map(text)).toEqual(["apples,pears"]);

    // A missing key: fn gets null; returning null writes nothing. Returning null for a key deletes it.
    expect(await c.update("cart-missing", (siblings) => (expect(siblings).toBeNull(), null))).toBeNull();
    expect(await c.get("cart-missing")).toBeNull();
    expect(await c.update("cart", () => null)).toBeNull();
    expect(await c.get("cart")).toBeNull();
    // Bytes and strings both write.
    await c.update("cart", () => new Uint8Array([0, 1, 2]));
    expect([...(await c.get("cart"))!.values[0]!]).toEqual([0, 1, 2]);
  });

  it("raises typed errors with the node's code; cancels on the caller's signal", async () => {
    const c = client({ nodes: cluster.addresses });
    const cases: [() => Promise<unknown>, string, RegExp][] = [
      [() => c.put("", "x"), "InvalidArgument", /key must not be empty/],
      [() => c.get("k", { r: 7 }), "InvalidArgument", /\br\b/],
      [() => c.put("big", new Uint8Array(1024 * 1024 + 1)), "InvalidArgument", /value is 1048577 bytes, the limit is 1048576/],
      [() => c.put("huge", new Uint8Array(2 * 1024 * 1024)), "ResourceExhausted", /larger than configured readMaxBytes/],
      [() => c.put("k", "x", { context: new Uint8Array([1, 2, 3]) }), "InvalidArgument", /context/],
      [() => c.get("k", { signal: AbortSignal.abort() }), "Canceled", /abort/],
      [() => c.repair(), "", /needs the cluster secret/],
    ];
    for (const [call, codeName, message] of cases) {
      const err = await call().then(
        () => undefined,
        (e: unknown) => e as Error,
      );
      expect(err, codeName).toBeInstanceOf(codeName ? DynamoError : TypeError);
      if (err instanceof DynamoError) expect(err.codeName).toBe(codeName);
      expect(err!.message).toMatch(message);
    }
    // A write the node refused is not sent to another node.
    expect((await rejection(c.put("", "x"))).attempts).toHaveLength(1);
  });

  describe("README.md examples", () => {
    // Each ```ts block runs as a module (node strips the types) against this cluster: the
    // README's 127.0.0.1:7001.. become the cluster's addresses, and what a block prints must
    // be what its `// → ...` comments say, in order.
    const readme = readFileSync(new URL("../README.md", import.meta.url), "utf8");
    const blocks = [...readme.matchAll(/```ts\n([\s\S]*?)```/g)].map((m) => m[1]!);

    it("has examples", () => {
      expect(blocks.length).toBeGreaterThanOrEqual(3);
    });

    it.each(blocks.map((code, i) => [i + 1, code.split("\n").find((l) => l.startsWith("//")) ?? "", code] as const))(
      "example %i %s",
      async (_i, _title, code) => {
        const source = code.replace(/127\.0\.0\.1:700(\d)/g, (_m, n: string) => cluster.address(`node${n}`));
        const expected = [...code.matchAll(/\/\/ → (.*)$/gm)].map((m) => m[1]!.trim());
        const { FORCE_COLOR: _color, ...env } = process.env; // console.log as on a pipe: no colours
        const ran = await runProcess(process.execPath, ["--input-type=module-typescript", "-e", source], {
          cwd: PACKAGE_DIR,
          env: { ...env, NO_COLOR: "1", DYNAMO_CLUSTER_SECRET: cluster.secret },
        });
        expect(ran.stderr).toBe("");
        expect(ran.code).toBe(0);
        expect(ran.stdout.toString().trimEnd().split("\n").filter(Boolean)).toEqual(expected);
      },
    );
  });
});
