// The plain HTTP key API (`/kv/{key}`) on a real 3-node cluster: the seed systems' curl smoke
// commands unchanged, every status it answers with, siblings in multipart and JSON resolved with
// the context, percent-encoded keys, value limits, and the kill / write / restart / read demo.
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TestCluster } from "../test-support/cluster.js";
import { parseMultipart, siblingsOf } from "../test-support/kv-http-answers.js";

const MAX_VALUE = 4096;
const MAX_SIBLINGS = 3;

interface Reply {
  readonly status: number;
  readonly headers: Headers;
  readonly body: Buffer;
}

async function curl(...args: string[]): Promise<{ stdout: string; stderr: string }> {
  return promisify(execFile)("curl", args, { encoding: "utf8" });
}

function errorCode(reply: Reply): string {
  expect(reply.headers.get("content-type")).toBe("application/json");
  return (JSON.parse(reply.body.toString()) as { code: string }).code;
}

describe("the plain HTTP key API on a 3-node cluster, N=3 R=2 W=2", () => {
  let cluster: TestCluster;
  const url = (id: string, path: string) => `http://${cluster.node(id).address}${path}`;
  const call = async (id: string, path: string, init: RequestInit = {}): Promise<Reply> => {
    const res = await fetch(url(id, path), init);
    return { status: res.status, headers: res.headers, body: Buffer.from(await res.arrayBuffer()) };
  };

  beforeAll(async () => {
    cluster = await TestCluster.start({ nodes: 3, args: ["--max-value-bytes", String(MAX_VALUE), "--max-siblings", String(MAX_SIBLINGS)] });
  }, 30_000);
  afterAll(async () => cluster?.stop());

  it("runs the seed systems' smoke commands unchanged: curl -X PUT .../kv/hello -d world, curl .../kv/hello", async () => {
    const [p1, p2] = [cluster.node("n1").port, cluster.node("n2").port];
    const put = await curl("-X", "PUT", `http://localhost:${p1}/kv/hello`, "-d", "world");
    expect(put.stdout).toBe("");
    const got = await curl(`http://localhost:${p2}/kv/hello`);
    expect(got.stdout).toBe("world");
    // curl -d sends the form content type: the bytes are stored as sent, and so is the type.
    const reply = await call("n3", "/kv/hello");
    expect([reply.status, reply.body.toString(), reply.headers.get("content-type")]).toEqual([200, "world", "application/x-www-form-urlencoded"]);
    // curl -i shows the context; curl -I is a HEAD.
    const head = await curl("-sI", `http://localhost:${p2}/kv/hello`);
    expect(head.stdout).toMatch(/^HTTP\/1\.1 200 OK\r\n/);
    expect(head.stdout).toMatch(/\r\nx-dynamo-context: [A-Za-z0-9+/]+=*\r\n/i);
    expect(head.stdout).toMatch(/\r\ncontent-length: 5\r\n/i);
  });

  it("stores raw bytes with their content type, 204 on PUT and DELETE, 404 after the delete", async () => {
    const bytes = Buffer.from([0, 1, 2, 0xff, 0xfe, 13, 10]);
    const put = await call("n1", "/kv/raw", { method: "PUT", body: bytes, headers: { "content-type": "image/x-test" } });
    expect([put.status, put.body.length]).toEqual([204, 0]);
    const got = await call("n2", "/kv/raw");
    expect([got.status, got.body.equals(bytes), got.headers.get("content-type"), got.headers.get("content-length")]).toEqual([200, true, "image/x-test", "7"]);
    const head = await call("n3", "/kv/raw", { method: "HEAD" });
    expect([head.status, head.body.length, head.headers.get("content-type"), head.headers.get("x-dynamo-context")]).toEqual([
      200,
      0,
      "image/x-test",
      got.headers.get("x-dynamo-context"),
    ]);
    const untyped = await call("n1", "/kv/untyped", { method: "PUT", body: Buffer.from("v") });
    expect(untyped.status).toBe(204);
    expect((await call("n2", "/kv/untyped")).headers.get("content-type")).toBe("application/octet-stream");

    expect((await call("n3", "/kv/raw", { method: "DELETE" })).status).toBe(204);
    const gone = await call("n1", "/kv/raw");
    expect([gone.status, errorCode(gone)]).toEqual([404, "not_found"]);
    expect((await call("n2", "/kv/raw", { method: "HEAD" })).status).toBe(404);
    const never = await call("n2", "/kv/never-written");
    expect([never.status, errorCode(never)]).toEqual([404, "not_found"]);
  });

  it("answers siblings with 300 multipart/mixed (or JSON) and resolves them with the context", async () => {
    // Blind writes through different coordinators: concurrent, both kept.
    await call("n1", "/kv/cart", { method: "PUT", body: "apples", headers: { "content-type": "text/plain" } });
    await call("n2", "/kv/cart", { method: "PUT", body: Buffer.from("pears\r\n--not-a-boundary") });
    const reply = await call("n3", "/kv/cart");
    expect(reply.status).toBe(300);
    expect(reply.headers.get("content-type")).toMatch(/^multipart\/mixed; boundary=/);
    const context = reply.headers.get("x-dynamo-context")!;
    expect(context).toMatch(/^[A-Za-z0-9+/]+=*$/);
    const expected = [
      ["apples", "text/plain"],
      ["pears\r\n--not-a-boundary", "application/octet-stream"],
    ];
    // Parsed strictly: boundary lines, part headers, exact bytes.
    expect(parseMultipart(reply.headers.get("content-type"), reply.body)).toHaveLength(2);
    expect(siblingsOf(reply.headers.get("content-type"), reply.body).siblings).toEqual(expected);

    const json = await call("n1", "/kv/cart", { headers: { accept: "application/json" } });
    expect([json.status, json.headers.get("content-type")]).toEqual([300, "application/json"]);
    const doc = siblingsOf(json.headers.get("content-type"), json.body);
    expect(doc.siblings).toEqual(expected);
    expect(doc.context).toBe(json.headers.get("x-dynamo-context"));

    const resolved = await call("n2", "/kv/cart", {
      method: "PUT",
      body: "apples,pears",
      headers: { "x-dynamo-context": context, "content-type": "text/csv" },
    });
    expect(resolved.status).toBe(204);
    const after = await call("n3", "/kv/cart");
    expect([after.status, after.body.toString(), after.headers.get("content-type")]).toEqual([200, "apples,pears", "text/csv"]);

    // A write with the context of a PUT replaces exactly that write.
    const next = await call("n1", "/kv/cart", { method: "PUT", body: "figs", headers: { "x-dynamo-context": resolved.headers.get("x-dynamo-context")! } });
    expect(next.status).toBe(204);
    expect((await call("n2", "/kv/cart")).body.toString()).toBe("figs");
    // DELETE with a context deletes what that context saw.
    expect((await call("n3", "/kv/cart", { method: "DELETE", headers: { "x-dynamo-context": next.headers.get("x-dynamo-context")! } })).status).toBe(204);
    expect((await call("n1", "/kv/cart")).status).toBe(404);
  });

  it("takes percent-encoded keys: a%2Fb, unicode, and raw UTF-8 from curl", async () => {
    await call("n1", "/kv/a%2Fb", { method: "PUT", body: "slash" });
    expect((await call("n2", "/kv/a%2Fb")).body.toString()).toBe("slash");
    expect((await call("n2", "/kv/a/b")).body.toString()).toBe("slash");
    await call("n1", `/kv/${encodeURIComponent("clé 日本 🔑")}`, { method: "PUT", body: "unicode" });
    expect((await call("n3", "/kv/cl%C3%A9%20%E6%97%A5%E6%9C%AC%20%F0%9F%94%91")).body.toString()).toBe("unicode");
    expect((await curl("-s", `http://127.0.0.1:${cluster.node("n2").port}/kv/clé%20日本%20🔑`)).stdout).toBe("unicode");
    // The same key through the RPC API.
    const rpc = await cluster.client("n1").get("clé 日本 🔑");
    expect(rpc && Buffer.from(rpc.values[0]!).toString()).toBe("unicode");
  });

  it("answers 400 for bad keys, parameters and contexts, and 405 for other methods", async () => {
    const cases: Array<[string, RequestInit]> = [
      ["/kv/%zz", {}],
      ["/kv/%C3%28", { method: "PUT", body: "v" }],
      ["/kv/", {}],
      [`/kv/${"k".repeat(257)}`, {}],
      ["/kv/k?r=0", {}],
      ["/kv/k?r=4", {}],
      ["/kv/k?r=two", {}],
      ["/kv/k?w=0", { method: "PUT", body: "v" }],
      ["/kv/k?timeout_ms=0", {}],
      ["/kv/k?timeout_ms=600001", { method: "DELETE" }],
      ["/kv/k?w=1", {}],
      ["/kv/k", { method: "PUT", body: "v", headers: { "x-dynamo-context": "%%%" } }],
      ["/kv/k", { method: "PUT", body: "v", headers: { "x-dynamo-context": "4cEBBW5vZGUxAXH5o42KcO3yr43dqdEd2Qk=" } }],
      ["/kv/k", { method: "PUT", body: "v", headers: { "content-type": "t".repeat(300) } }],
    ];
    for (const [path, init] of cases) {
      const reply = await call("n1", path, init);
      expect([path, reply.status, errorCode(reply)]).toEqual([path, 400, "invalid_argument"]);
    }
    const post = await call("n1", "/kv/k", { method: "POST", body: "v" });
    expect([post.status, post.headers.get("allow"), errorCode(post)]).toEqual([405, "GET, HEAD, PUT, DELETE", "unimplemented"]);
    // Valid parameters pass.
    expect((await call("n1", "/kv/params?w=3&timeout_ms=5000", { method: "PUT", body: "p" })).status).toBe(204);
    expect((await call("n2", "/kv/params?r=3&timeout_ms=5000")).body.toString()).toBe("p");
  });

  it("answers 413 for a value over --max-value-bytes, announced or streamed, and 409 past --max-siblings", async () => {
    expect((await call("n1", "/kv/big", { method: "PUT", body: Buffer.alloc(MAX_VALUE, 7) })).status).toBe(204);
    const announced = await call("n1", "/kv/big", { method: "PUT", body: Buffer.alloc(MAX_VALUE + 1) });
    expect([announced.status, errorCode(announced)]).toEqual([413, "invalid_argument"]);
    let sent = 0;
    const stream = new ReadableStream({
      pull(controller) {
        if (sent >= 4 * MAX_VALUE) return controller.close();
        sent += 1024;
        controller.enqueue(new Uint8Array(1024));
      },
    });
    const streamed = await call("n2", "/kv/big", { method: "PUT", body: stream, duplex: "half" } as RequestInit);
    expect(streamed.status).toBe(413);
    const curlBig = await curl("-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", "PUT", "--data-binary", "x".repeat(MAX_VALUE + 1), url("n3", "/kv/big"));
    expect(curlBig.stdout).toBe("413");
    expect((await call("n3", "/kv/big")).body.length).toBe(MAX_VALUE);

    for (let i = 0; i < MAX_SIBLINGS; i++) expect((await call(`n${1 + (i % 3)}`, "/kv/crowded", { method: "PUT", body: `v${i}` })).status).toBe(204);
    const crowded = await call("n1", "/kv/crowded", { method: "PUT", body: "one more" });
    expect([crowded.status, errorCode(crowded)]).toEqual([409, "failed_precondition"]);
    // Resolving with the context is always accepted.
    const read = await call("n2", "/kv/crowded");
    expect(read.status).toBe(300);
    const resolved = await call("n3", "/kv/crowded", { method: "PUT", body: "one", headers: { "x-dynamo-context": read.headers.get("x-dynamo-context")! } });
    expect(resolved.status).toBe(204);
  });

  it("answers 504 when replicas do not answer before timeout_ms, 503 when too few are up", async () => {
    await call("n1", "/kv/outage", { method: "PUT", body: "before" });
    cluster.node("n2").pause();
    cluster.node("n3").pause();
    try {
      const slow = await call("n1", "/kv/outage?timeout_ms=500");
      expect([slow.status, errorCode(slow)]).toEqual([504, "deadline_exceeded"]);
    } finally {
      cluster.node("n2").resume();
      cluster.node("n3").resume();
    }
    await cluster.waitAllAlive();
    await cluster.node("n2").kill();
    await cluster.node("n3").kill();
    try {
      const down = await call("n1", "/kv/outage");
      expect([down.status, errorCode(down)]).toEqual([503, "unavailable"]);
      expect(JSON.parse(down.body.toString()).message).toMatch(/1 of 3 replicas answered, 2 needed/);
      // R=1 still works on the one replica left.
      expect((await call("n1", "/kv/outage?r=1")).body.toString()).toBe("before");
      // (A write that failed may still be stored by the replicas that took it, as in Dynamo.)
      const write = await call("n1", "/kv/outage", { method: "PUT", body: "during" });
      expect([write.status, errorCode(write)]).toEqual([503, "unavailable"]);
      expect((await call("n1", "/kv/outage?w=1", { method: "PUT", body: "w=1" })).status).toBe(204);
    } finally {
      await cluster.node("n2").start();
      await cluster.node("n3").start();
    }
    await cluster.waitAllAlive();
  });

  it("demo: kill a node, PUT, restart it, GET the value back through the restarted node", async () => {
    await cluster.node("n3").kill();
    const put = await curl("-s", "-X", "PUT", url("n1", "/kv/while-n3-was-down"), "-d", "still here");
    expect(put.stdout).toBe("");
    await cluster.node("n3").start();
    const got = await curl("-s", url("n3", "/kv/while-n3-was-down"));
    expect(got.stdout).toBe("still here");
  });

  it("serves HTTP/2 clients too (curl --http2-prior-knowledge)", async () => {
    const put = await curl("-s", "--http2-prior-knowledge", "-X", "PUT", "-H", "content-type: text/plain", "--data-binary", "over h2", url("n1", "/kv/h2"));
    expect(put.stdout).toBe("");
    const got = await curl("-s", "--http2-prior-knowledge", "-i", url("n2", "/kv/h2"));
    expect(got.stdout).toMatch(/^HTTP\/2 200 \r\n/);
    expect(got.stdout).toMatch(/\r\ncontent-type: text\/plain\r\n/);
    expect(got.stdout.endsWith("\r\n\r\nover h2")).toBe(true);
  });
});
