// The plain HTTP key API in process: its parsers, and the handler behind the real listener and
// RPC handler (HTTP/1.1 with fetch and raw sockets, HTTP/2 with node:http2), on the real
// coordinator over the bench's fake replicas.
import * as http2 from "node:http2";
import * as net from "node:net";
import { Code, ConnectError } from "@connectrpc/connect";
import { afterEach, describe, expect, it } from "vitest";
import type { Logger } from "../observability/log.js";
import { CoordinatorBench } from "../test-support/coordinator-bench.js";
import { parseMultipart, siblingsOf } from "../test-support/kv-http-answers.js";
import { createKvHttpHandler, decodeKey, httpStatusOf, isKvPath, multipartBody, parseQuery, prefersJson, requestContext } from "./kv-http.js";
import { DualProtocolListener } from "./listener.js";
import { createRpcHandler } from "./rpc-handler.js";

const MAX_VALUE = 1000;
const silentLog: Logger = { debug() {}, info() {}, warn() {}, error() {} };
const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

function invalid(run: () => unknown): string {
  try {
    run();
  } catch (err) {
    const ce = ConnectError.from(err);
    expect(ce.code).toBe(Code.InvalidArgument);
    return ce.rawMessage;
  }
  throw new Error("no error");
}

describe("parsing", () => {
  it("routes /kv and /kv/... only", () => {
    for (const url of ["/kv", "/kv/", "/kv/a", "/kv?r=1", "/kv/a/b?w=2"]) expect([url, isKvPath(url)]).toEqual([url, true]);
    for (const url of ["/kvx", "/kv2/a", "/healthz", "/dynamo.v1.KVService/Get", undefined]) expect([url, isKvPath(url)]).toEqual([url, false]);
  });

  it("percent-decodes keys strictly", () => {
    expect(decodeKey("/kv/hello")).toBe("hello");
    expect(decodeKey("/kv/a%2Fb")).toBe("a/b");
    expect(decodeKey("/kv/a/b")).toBe("a/b");
    expect(decodeKey("/kv/%E6%97%A5%E6%9C%AC%f0%9f%94%91")).toBe("日本🔑");
    expect(decodeKey("/kv/a+b%20c")).toBe("a+b c");
    // Unescaped UTF-8 as Node's HTTP/1.1 parser hands it over: one character per byte.
    expect(decodeKey(`/kv/${Buffer.from("日本").toString("latin1")}`)).toBe("日本");
    expect(decodeKey("/kv/")).toBe("");
    expect(invalid(() => decodeKey("/kv/a%zz"))).toMatch(/percent-encoding is invalid at "%zz"/);
    expect(invalid(() => decodeKey("/kv/a%4"))).toMatch(/percent-encoding is invalid/);
    expect(invalid(() => decodeKey("/kv/a%"))).toMatch(/percent-encoding is invalid/);
    expect(invalid(() => decodeKey("/kv/%C3%28"))).toMatch(/not valid UTF-8/);
    expect(invalid(() => decodeKey("/kv/%ED%A0%80"))).toMatch(/not valid UTF-8/); // a UTF-8-encoded surrogate
    expect(invalid(() => decodeKey("/kv/%FF"))).toMatch(/not valid UTF-8/);
    expect(invalid(() => decodeKey("/kv/日本"))).toMatch(/not percent-encoded/);
  });

  it("takes r or w and timeout_ms, as decimal integers, once each", () => {
    expect([...parseQuery("r=1&timeout_ms=250", "GET")]).toEqual([
      ["r", 1],
      ["timeout_ms", 250],
    ]);
    expect([...parseQuery("w=3", "PUT")]).toEqual([["w", 3]]);
    expect([...parseQuery("", "DELETE")]).toEqual([]);
    expect(invalid(() => parseQuery("w=1", "GET"))).toMatch(/unknown query parameter "w": GET takes r, timeout_ms/);
    expect(invalid(() => parseQuery("r=1", "PUT"))).toMatch(/unknown query parameter "r"/);
    expect(invalid(() => parseQuery("r=1&r=2", "HEAD"))).toMatch(/given twice/);
    for (const bad of ["r=", "r", "r=-1", "r=1.5", "r=%31", "r=0x1", "r= 1"])
      expect(invalid(() => parseQuery(bad, "GET"))).toMatch(/r must be a decimal integer/);
  });

  it("reads a base64 context header, refusing an empty or mangled one", () => {
    expect(requestContext(undefined)).toEqual(new Uint8Array());
    expect([...requestContext("AQID")]).toEqual([1, 2, 3]);
    expect([...requestContext("_-8")]).toEqual([255, 239]);
    for (const bad of ["", "====", "a b", "AQID, AQID", ["AQID", "AQID"]])
      expect(invalid(() => requestContext(bad))).toMatch(/X-Dynamo-Context must be the base64 context/);
  });

  it("answers siblings in JSON only when the client prefers it", () => {
    expect(prefersJson(undefined)).toBe(false);
    expect(prefersJson("*/*")).toBe(false);
    expect(prefersJson("application/json")).toBe(true);
    expect(prefersJson("text/html, Application/JSON;q=0.5")).toBe(true);
    expect(prefersJson("multipart/mixed, application/json")).toBe(false);
    expect(prefersJson("multipart/mixed;q=0.1, application/json")).toBe(true);
    expect(prefersJson("application/json;q=0")).toBe(false);
  });

  it("builds multipart bodies whose boundary no value contains", () => {
    const values = ["a", "--", "\r\n--x\r\n", ""].map((v, i) => ({ value: Buffer.from(v), contentType: i === 0 ? "text/plain" : undefined }));
    const { boundary, body } = multipartBody(values);
    const parts = parseMultipart(`multipart/mixed; boundary=${boundary}`, body);
    expect(parts.map((p) => p.body.toString())).toEqual(["a", "--", "\r\n--x\r\n", ""]);
    expect(parts.map((p) => p.headers["content-type"])).toEqual([
      "text/plain",
      "application/octet-stream",
      "application/octet-stream",
      "application/octet-stream",
    ]);
  });

  it("maps Connect codes to Connect's HTTP statuses, but failed_precondition to 409", () => {
    expect([Code.InvalidArgument, Code.NotFound, Code.FailedPrecondition, Code.Unavailable, Code.DeadlineExceeded, Code.Internal].map(httpStatusOf)).toEqual([
      400, 404, 409, 503, 504, 500,
    ]);
  });
});

// --- over the listener -----------------------------------------------------------------------

interface Reply {
  readonly status: number;
  readonly headers: Headers;
  readonly body: Buffer;
}

async function startNode(
  bench = new CoordinatorBench({ nodes: ["n1", "n2", "n3"], self: "n1" }),
): Promise<{ bench: CoordinatorBench; url: string; port: number; listener: DualProtocolListener }> {
  const kv = createKvHttpHandler({ coordinator: bench.coordinator, defaultTimeoutMs: 2_000, maxValueBytes: MAX_VALUE, log: silentLog });
  const handler = createRpcHandler({ routes: () => {}, fallback: kv, maxTimeoutMs: 600_000, maxCheckedJsonBytes: 1 << 20, log: silentLog });
  const listener = new DualProtocolListener(handler, {});
  const { port } = await listener.listen(0, "127.0.0.1");
  cleanups.push(() => listener.close(0));
  return { bench, url: `http://127.0.0.1:${port}`, port, listener };
}

async function call(url: string, init: RequestInit = {}): Promise<Reply> {
  const res = await fetch(url, init);
  return { status: res.status, headers: res.headers, body: Buffer.from(await res.arrayBuffer()) };
}

function errorOf(reply: Reply): { code: string; message: string } {
  expect(reply.headers.get("content-type")).toBe("application/json");
  return JSON.parse(reply.body.toString()) as { code: string; message: string };
}

function h2call(url: string, headers: http2.OutgoingHttpHeaders, body?: Buffer): Promise<{ status: number; headers: http2.IncomingHttpHeaders; body: Buffer }> {
  const session = http2.connect(url);
  session.on("error", () => {});
  cleanups.push(() => session.destroy());
  return new Promise((resolve, reject) => {
    const stream = session.request(headers, { endStream: body === undefined });
    const chunks: Buffer[] = [];
    let responseHeaders: http2.IncomingHttpHeaders = {};
    stream.on("response", (h) => (responseHeaders = h));
    stream.on("data", (chunk: Buffer) => chunks.push(chunk));
    stream.on("end", () => resolve({ status: Number(responseHeaders[":status"]), headers: responseHeaders, body: Buffer.concat(chunks) }));
    stream.on("error", reject);
    if (body !== undefined) stream.end(body);
  });
}

describe("the key API over HTTP/1.1", () => {
  it("puts, gets, heads and deletes raw values, with their content type and context", async () => {
    const { url } = await startNode();
    const put = await call(`${url}/kv/hello`, { method: "PUT", body: "world", headers: { "content-type": "text/plain; charset=utf-8" } });
    expect(put.status).toBe(204);
    expect(put.headers.get("x-dynamo-context")).toMatch(/^[A-Za-z0-9+/]+=*$/);
    const got = await call(`${url}/kv/hello`);
    expect([got.status, got.body.toString(), got.headers.get("content-type"), got.headers.get("content-length")]).toEqual([
      200,
      "world",
      "text/plain; charset=utf-8",
      "5",
    ]);
    const head = await call(`${url}/kv/hello`, { method: "HEAD" });
    expect([head.status, head.body.length, head.headers.get("content-length"), head.headers.get("x-dynamo-context")]).toEqual([
      200,
      0,
      "5",
      got.headers.get("x-dynamo-context"),
    ]);
    // Any bytes, and no content type: application/octet-stream.
    const bytes = Buffer.from([0, 255, 13, 10, 0x80]);
    await call(`${url}/kv/bin`, { method: "PUT", body: bytes });
    const bin = await call(`${url}/kv/bin`);
    expect([bin.body.equals(bytes), bin.headers.get("content-type")]).toEqual([true, "application/octet-stream"]);
    expect((await call(`${url}/kv/hello`, { method: "DELETE" })).status).toBe(204);
    const gone = await call(`${url}/kv/hello`);
    expect([gone.status, errorOf(gone).code]).toEqual([404, "not_found"]);
    const goneHead = await call(`${url}/kv/hello`, { method: "HEAD" });
    expect([goneHead.status, goneHead.body.length]).toEqual([404, 0]);
  });

  it("answers siblings with 300, as multipart or JSON, and resolves them with the context", async () => {
    const { url } = await startNode();
    await call(`${url}/kv/cart`, { method: "PUT", body: "apples", headers: { "content-type": "text/plain" } });
    await call(`${url}/kv/cart`, { method: "PUT", body: Buffer.from("pears") }); // no content type
    const siblings = await call(`${url}/kv/cart`);
    expect(siblings.status).toBe(300);
    const expected = [
      ["apples", "text/plain"],
      ["pears", "application/octet-stream"],
    ];
    expect(siblingsOf(siblings.headers.get("content-type"), siblings.body).siblings).toEqual(expected);
    const json = await call(`${url}/kv/cart`, { headers: { accept: "application/json" } });
    expect([json.status, json.headers.get("content-type")]).toEqual([300, "application/json"]);
    const doc = siblingsOf(json.headers.get("content-type"), json.body);
    expect(doc.siblings).toEqual(expected);
    expect(doc.context).toBe(json.headers.get("x-dynamo-context"));
    const head = await call(`${url}/kv/cart`, { method: "HEAD" });
    expect([head.status, head.body.length]).toEqual([300, 0]);

    const resolved = await call(`${url}/kv/cart`, { method: "PUT", body: "apples,pears", headers: { "x-dynamo-context": doc.context! } });
    expect(resolved.status).toBe(204);
    const after = await call(`${url}/kv/cart`);
    expect([after.status, after.body.toString()]).toEqual([200, "apples,pears"]);
    // A delete with the context of the last read deletes exactly that.
    expect((await call(`${url}/kv/cart`, { method: "DELETE", headers: { "x-dynamo-context": after.headers.get("x-dynamo-context")! } })).status).toBe(204);
    expect((await call(`${url}/kv/cart`)).status).toBe(404);
  });

  it("takes percent-encoded keys", async () => {
    const { url } = await startNode();
    await call(`${url}/kv/a%2Fb`, { method: "PUT", body: "slash" });
    await call(`${url}/kv/${encodeURIComponent("日本 🔑")}`, { method: "PUT", body: "unicode" });
    expect((await call(`${url}/kv/a/b`)).body.toString()).toBe("slash");
    expect((await call(`${url}/kv/%E6%97%A5%E6%9C%AC%20%F0%9F%94%91`)).body.toString()).toBe("unicode");
    for (const bad of ["/kv/%zz", "/kv/%C3%28", "/kv/", "/kv", `/kv/${"k".repeat(257)}`]) {
      const reply = await call(`${url}${bad}`);
      expect([bad, reply.status, errorOf(reply).code]).toEqual([bad, 400, "invalid_argument"]);
    }
  });

  it("validates the query and the context header with the coordinator's limits", async () => {
    const { url } = await startNode();
    const cases: Array<[string, RequestInit, RegExp]> = [
      ["/kv/k?r=0", {}, /r must be between 1 and N=3, got 0/],
      ["/kv/k?r=4", {}, /r must be between 1 and N=3/],
      ["/kv/k?r=x", {}, /r must be a decimal integer/],
      ["/kv/k?w=9", { method: "PUT", body: "v" }, /w must be between 1 and N=3/],
      ["/kv/k?timeout_ms=0", {}, /timeout_ms must be between 1 and 600000/],
      ["/kv/k?timeout_ms=600001", { method: "DELETE" }, /timeout_ms must be between 1 and 600000/],
      ["/kv/k?q=1", {}, /unknown query parameter "q"/],
      ["/kv/k", { method: "PUT", body: "v", headers: { "x-dynamo-context": "not base64!" } }, /X-Dynamo-Context must be the base64 context/],
      ["/kv/k", { method: "PUT", body: "v", headers: { "x-dynamo-context": "AQID" } }, /context is not valid/],
      ["/kv/k", { method: "PUT", body: "v", headers: { "content-type": "x".repeat(256) } }, /content type must be 1\.\.255 printable ASCII/],
    ];
    for (const [path, init, message] of cases) {
      const reply = await call(`${url}${path}`, init);
      const error = errorOf(reply);
      expect([path, reply.status, error.code]).toEqual([path, 400, "invalid_argument"]);
      expect(error.message).toMatch(message);
    }
    expect((await call(`${url}/kv/k?r=3&timeout_ms=1000`)).status).toBe(404);
  });

  it("answers 405 with Allow for other methods", async () => {
    const { url } = await startNode();
    for (const method of ["POST", "PATCH", "OPTIONS"]) {
      const reply = await call(`${url}/kv/k`, { method, body: method === "OPTIONS" ? undefined : "v" });
      expect([method, reply.status, reply.headers.get("allow"), errorOf(reply).code]).toEqual([method, 405, "GET, HEAD, PUT, DELETE", "unimplemented"]);
    }
  });

  it("maps quorum failures to 503 and 504, and too many siblings to 409", async () => {
    const { url, bench } = await startNode();
    bench.replica("n2").behaviour = "down";
    bench.replica("n3").behaviour = "down";
    const down = await call(`${url}/kv/k`);
    expect([down.status, errorOf(down).code]).toEqual([503, "unavailable"]);
    expect(errorOf(down).message).toMatch(/quorum not reached: 1 of 3 replicas answered/);
    bench.replica("n2").behaviour = "hang";
    bench.replica("n3").behaviour = "hang";
    const slow = await call(`${url}/kv/k?timeout_ms=50`, { method: "PUT", body: "v" });
    expect([slow.status, errorOf(slow).code]).toEqual([504, "deadline_exceeded"]);
    bench.replica("n2").release();
    bench.replica("n3").release();
    bench.replica("n2").behaviour = "ok";
    bench.replica("n3").behaviour = "ok";
    for (let i = 0; i < 100; i++) await bench.put("crowded", `v${i}`);
    const crowded = await call(`${url}/kv/crowded`, { method: "PUT", body: "one more" });
    expect([crowded.status, errorOf(crowded).code]).toEqual([409, "failed_precondition"]);
  });

  it("refuses a body over the value limit with 413, announced or not, and keeps the connection usable", async () => {
    const { url, port, listener } = await startNode();
    expect((await call(`${url}/kv/max`, { method: "PUT", body: Buffer.alloc(MAX_VALUE, 1) })).status).toBe(204);
    const announced = await call(`${url}/kv/big`, { method: "PUT", body: Buffer.alloc(MAX_VALUE + 1) });
    expect([announced.status, errorOf(announced).code]).toEqual([413, "invalid_argument"]);
    expect(errorOf(announced).message).toMatch(/value is more than 1000 bytes/);
    // Chunked, without a length: read up to one byte over the limit, then refused.
    const chunks = [Buffer.alloc(600), Buffer.alloc(600), Buffer.alloc(600)];
    const stream = new ReadableStream({
      pull(controller) {
        const next = chunks.shift();
        if (next) controller.enqueue(next);
        else controller.close();
      },
    });
    const chunked = await call(`${url}/kv/big`, { method: "PUT", body: stream, duplex: "half" } as RequestInit);
    expect(chunked.status).toBe(413);
    expect((await call(`${url}/kv/big`)).status).toBe(404);

    // On one keep-alive connection: a 413 announced by Content-Length before any body byte is
    // sent, then the body, then the next request, answered.
    const socket = net.connect(port, "127.0.0.1");
    cleanups.push(() => socket.destroy());
    let received = "";
    socket.on("data", (chunk: Buffer) => (received += chunk.toString("latin1")));
    socket.write(`PUT /kv/big HTTP/1.1\r\nhost: x\r\ncontent-length: ${MAX_VALUE * 3}\r\n\r\n`);
    await waitFor(() => received.includes("\r\n\r\n{"));
    expect(received).toMatch(/^HTTP\/1\.1 413 /);
    socket.write(Buffer.alloc(MAX_VALUE * 3));
    socket.write("GET /kv/max HTTP/1.1\r\nhost: x\r\n\r\n");
    await waitFor(() => /HTTP\/1\.1 200 /.test(received));
    expect(listener.stats().unreadBodiesDiscarded).toBeGreaterThan(0);
  });
});

describe("the key API over HTTP/2", () => {
  it("serves the same answers, HEAD and 413 included", async () => {
    const { url } = await startNode();
    const put = await h2call(url, { ":method": "PUT", ":path": "/kv/h2%2Fkey", "content-type": "text/plain" }, Buffer.from("over h2"));
    expect([put.status, typeof put.headers["x-dynamo-context"]]).toEqual([204, "string"]);
    const got = await h2call(url, { ":method": "GET", ":path": "/kv/h2/key" });
    expect([got.status, got.body.toString(), got.headers["content-type"]]).toEqual([200, "over h2", "text/plain"]);
    const head = await h2call(url, { ":method": "HEAD", ":path": "/kv/h2/key" });
    expect([head.status, head.body.length, head.headers["content-length"]]).toEqual([200, 0, "7"]);
    await h2call(url, { ":method": "PUT", ":path": "/kv/h2/key" }, Buffer.from("sibling"));
    const siblings = await h2call(url, { ":method": "GET", ":path": "/kv/h2/key" });
    expect(siblings.status).toBe(300);
    expect(
      parseMultipart(String(siblings.headers["content-type"]), siblings.body)
        .map((p) => p.body.toString())
        .sort(),
    ).toEqual(["over h2", "sibling"]);
    const big = await h2call(url, { ":method": "PUT", ":path": "/kv/big" }, Buffer.alloc(MAX_VALUE * 5));
    expect([big.status, JSON.parse(big.body.toString()).code]).toEqual([413, "invalid_argument"]);
    const missing = await h2call(url, { ":method": "DELETE", ":path": "/kv/%zz" });
    expect(missing.status).toBe(400);
    const patch = await h2call(url, { ":method": "PATCH", ":path": "/kv/k" });
    expect([patch.status, patch.headers.allow]).toEqual([405, "GET, HEAD, PUT, DELETE"]);
  });
});

async function waitFor(check: () => boolean, ms = 5_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error("timed out");
    await new Promise((r) => setTimeout(r, 10));
  }
}
