// Every protocol KVService speaks, from clients nobody here wrote, against a real 3-node cluster
// on the lean unary path (the default; rpc/lean-unary.ts) — curl (Connect JSON over HTTP/1.1 and
// HTTP/2), `buf curl` (Connect, gRPC and gRPC-Web) and the connect-es client (Connect JSON and
// binary, gRPC, gRPC-Web; compressed calls; its own deadlines): Get, Put, Delete, siblings,
// errors with their codes, transport deadlines, compression, and bad input (malformed bodies,
// wrong content types, oversized messages). Python grpcio is in python-client.test.ts.
import { execFile } from "node:child_process";
import { gzipSync } from "node:zlib";
import { fileURLToPath } from "node:url";
import { Code, ConnectError, createClient, type Transport } from "@connectrpc/connect";
import { compressionGzip, createConnectTransport, createGrpcTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import { KVService } from "@dynamo-ts/proto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TestCluster } from "../test-support/cluster.js";

const BUF = fileURLToPath(new URL("../../../../node_modules/.bin/buf", import.meta.url));
const PROTO = fileURLToPath(new URL("../../../../proto", import.meta.url));

interface Ran {
  code: number;
  stdout: string;
  stderr: string;
}

async function run(file: string, args: readonly string[], input?: Buffer): Promise<Ran> {
  return new Promise((resolve) => {
    const child = execFile(file, args, { timeout: 30_000, encoding: "buffer", maxBuffer: 16 * 1024 * 1024 }, (error, stdout, stderr) => {
      const code = error === null ? 0 : typeof error.code === "number" ? error.code : -1;
      resolve({ code, stdout: stdout.toString("utf8"), stderr: stderr.toString("utf8") });
    });
    child.stdin?.end(input);
  });
}

/** curl: the body from stdin, the HTTP status appended after a tab. */
async function curl(args: readonly string[], body: Buffer | string): Promise<{ status: number; json: Record<string, unknown> | undefined; text: string }> {
  const res = await run("curl", ["-sS", "-X", "POST", "--data-binary", "@-", "-w", "\t%{http_code}", ...args], Buffer.from(body));
  expect(res.stderr).toBe("");
  const tab = res.stdout.lastIndexOf("\t");
  const text = res.stdout.slice(0, tab);
  let json: Record<string, unknown> | undefined;
  try {
    json = JSON.parse(text) as Record<string, unknown>;
  } catch {
    json = undefined;
  }
  return { status: Number(res.stdout.slice(tab + 1)), json, text };
}

const b64 = (s: string) => Buffer.from(s).toString("base64");
const unb64 = (s: unknown) => Buffer.from(String(s), "base64").toString();

describe("KVService from independent clients, on the lean unary path", () => {
  let cluster: TestCluster;
  let base: string;
  beforeAll(async () => {
    cluster = await TestCluster.start({ nodes: 3 });
    base = `http://${cluster.node("n1").address}/dynamo.v1.KVService`;
  }, 60_000);
  afterAll(async () => cluster?.stop());

  for (const http of ["--http1.1", "--http2-prior-knowledge"]) {
    describe(`curl, Connect JSON (${http})`, () => {
      const call = (method: string, body: Buffer | string, headers: string[] = []) =>
        curl([http, "-H", "content-type: application/json", ...headers.flatMap((h) => ["-H", h]), `${base}/${method}`], body);
      const key = `curl${http}`;

      it("puts, reads siblings, resolves them with the context, deletes; NotFound after", async () => {
        expect((await call("Put", JSON.stringify({ key, value: b64("a") }))).status).toBe(200);
        expect((await call("Put", JSON.stringify({ key, value: b64("b") }))).status).toBe(200);
        const read = await call("Get", JSON.stringify({ key, r: 3 }));
        expect(read.status).toBe(200);
        const siblings = read.json!.siblings as Array<{ value: string }>;
        expect(siblings.map((s) => unb64(s.value)).sort()).toEqual(["a", "b"]);
        const resolved = await call("Put", JSON.stringify({ key, value: b64("a+b"), context: read.json!.context }));
        expect(resolved.status).toBe(200);
        const after = await call("Get", JSON.stringify({ key, r: 3 }));
        expect((after.json!.siblings as Array<{ value: string }>).map((s) => unb64(s.value))).toEqual(["a+b"]);
        expect((await call("Delete", JSON.stringify({ key, context: after.json!.context }))).status).toBe(200);
        expect(await call("Get", JSON.stringify({ key, r: 3 }))).toMatchObject({ status: 404, json: { code: "not_found" } });
      });

      it("takes a gzip-compressed request (content-encoding)", async () => {
        const put = await call("Put", gzipSync(JSON.stringify({ key: `${key}-gz`, value: b64("zipped") })), ["content-encoding: gzip"]);
        expect(put.status).toBe(200);
        const got = await call("Get", JSON.stringify({ key: `${key}-gz` }));
        expect(unb64((got.json!.siblings as Array<{ value: string }>)[0]!.value)).toBe("zipped");
      });

      it("answers bad input with client-error codes", async () => {
        expect(await call("Get", '{"key":')).toMatchObject({ status: 400, json: { code: "invalid_argument" } });
        expect(await call("Put", JSON.stringify({ key, value: "not base64!" }))).toMatchObject({ status: 400, json: { code: "invalid_argument" } });
        expect(await call("Get", JSON.stringify({ key: "" }))).toMatchObject({ status: 400, json: { code: "invalid_argument" } });
        expect(await call("Get", JSON.stringify({ key, r: 9 }))).toMatchObject({ status: 400, json: { code: "invalid_argument" } });
        expect(await call("Get", JSON.stringify({ key }), ["connect-timeout-ms: soon"])).toMatchObject({ status: 400, json: { code: "invalid_argument" } });
        const wrongType = await curl([http, "-H", "content-type: text/plain", `${base}/Get`], JSON.stringify({ key }));
        expect(wrongType.status).toBe(415);
        // A value over --max-value-bytes (1 MiB): InvalidArgument; a message over the read limit: ResourceExhausted.
        expect(await call("Put", JSON.stringify({ key, value: Buffer.alloc(1024 * 1024 + 1).toString("base64") }))).toMatchObject({
          status: 400,
          json: { code: "invalid_argument" },
        });
        expect(await call("Put", JSON.stringify({ key, value: Buffer.alloc(3 * 1024 * 1024).toString("base64") }))).toMatchObject({
          status: 429,
          json: { code: "resource_exhausted" },
        });
      });

      it("ends a call at its connect-timeout-ms with deadline_exceeded", async () => {
        const n3 = cluster.node("n3");
        n3.pause();
        try {
          // W=3 cannot complete with a replica frozen (no fallback node in a 3-node cluster).
          expect(await call("Put", JSON.stringify({ key: `${key}-late`, value: b64("v"), w: 3 }), ["connect-timeout-ms: 400"])).toMatchObject({
            status: 504,
            json: { code: "deadline_exceeded" },
          });
        } finally {
          n3.resume();
        }
      });
    });
  }

  for (const protocol of ["connect", "grpc", "grpcweb"]) {
    it(`buf curl --protocol ${protocol}: put, siblings, resolve, delete, NotFound`, async () => {
      const buf = async (method: string, body: unknown) => {
        const res = await run(BUF, [
          "curl",
          "--schema",
          PROTO,
          "--protocol",
          protocol,
          "--http2-prior-knowledge",
          "-d",
          JSON.stringify(body),
          `${base}/${method}`,
        ]);
        // buf curl prints the answer on stdout, an error (as JSON) on stderr.
        const text = res.code === 0 ? res.stdout : res.stderr;
        return { code: res.code, out: JSON.parse(text) as Record<string, unknown> };
      };
      const key = `buf-${protocol}`;
      expect((await buf("Put", { key, value: b64("x") })).code).toBe(0);
      expect((await buf("Put", { key, value: b64("y") })).code).toBe(0);
      const read = await buf("Get", { key, r: 3 });
      expect(read.code).toBe(0);
      expect((read.out.siblings as Array<{ value: string }>).map((s) => unb64(s.value)).sort()).toEqual(["x", "y"]);
      expect((await buf("Delete", { key, context: read.out.context })).code).toBe(0);
      const gone = await buf("Get", { key, r: 3 });
      expect(gone.code).not.toBe(0);
      expect(gone.out).toMatchObject({ code: "not_found" });
      const bad = await buf("Get", { key: "" });
      expect(bad.out).toMatchObject({ code: "invalid_argument" });
    }, 60_000);
  }

  const transports: Record<string, (baseUrl: string) => Transport> = {
    "Connect JSON, HTTP/1.1": (baseUrl) => createConnectTransport({ baseUrl, httpVersion: "1.1", useBinaryFormat: false }),
    "Connect binary, HTTP/2": (baseUrl) => createConnectTransport({ baseUrl, httpVersion: "2", useBinaryFormat: true }),
    "Connect binary, gzip": (baseUrl) => createConnectTransport({ baseUrl, httpVersion: "2", sendCompression: compressionGzip, compressMinBytes: 0 }),
    gRPC: (baseUrl) => createGrpcTransport({ baseUrl }),
    "gRPC, gzip": (baseUrl) => createGrpcTransport({ baseUrl, sendCompression: compressionGzip, compressMinBytes: 0 }),
    "gRPC-Web": (baseUrl) => createGrpcWebTransport({ baseUrl, httpVersion: "1.1" }),
  };
  for (const [name, makeTransport] of Object.entries(transports)) {
    it(`connect-es, ${name}: put, siblings, resolve, delete, errors, deadline`, async () => {
      const client = createClient(KVService, makeTransport(`http://${cluster.node("n2").address}`));
      const key = `es-${name}`;
      const value = (s: string) => new TextEncoder().encode(s);
      await client.put({ key, value: value("p") });
      await client.put({ key, value: value("q") });
      const read = await client.get({ key, r: 3 });
      expect(read.siblings.map((s) => Buffer.from(s.value).toString()).sort()).toEqual(["p", "q"]);
      await client.put({ key, value: value("p+q"), context: read.context });
      const resolved = await client.get({ key, r: 3 });
      expect(resolved.siblings.map((s) => Buffer.from(s.value).toString())).toEqual(["p+q"]);
      await client.delete({ key, context: resolved.context });
      await expect(client.get({ key, r: 3 })).rejects.toMatchObject({ code: Code.NotFound });
      await expect(client.put({ key: "", value: value("v") })).rejects.toMatchObject({ code: Code.InvalidArgument });
      const n3 = cluster.node("n3");
      n3.pause();
      try {
        const late = await client.put({ key: `${key}-late`, value: value("v"), w: 3 }, { timeoutMs: 400 }).catch((err: unknown) => err);
        expect(late).toBeInstanceOf(ConnectError);
        expect((late as ConnectError).code).toBe(Code.DeadlineExceeded);
      } finally {
        n3.resume();
      }
    }, 60_000);
  }
});
