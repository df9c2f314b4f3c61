// TLS with real certificates made by openssl (scripts/make-certs.sh) in the test itself: a 3-node
// cluster with --tls-cert-file/--tls-key-file/--tls-ca-file serving curl (HTTP/1.1 and HTTP/2),
// buf curl, Python grpcio with TLS and the SDK; writes at W=3, which need the nodes' mutual TLS;
// internal calls without a client certificate from the cluster CA refused; a node with a
// certificate from another CA kept out while the cluster carries on; a plaintext client turned
// away; and a certificate replaced on disk served to new connections without a restart.
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import * as https from "node:https";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import * as tls from "node:tls";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { DynamoClient } from "@dynamo-ts/client";
import { GetRequestSchema, GetResponseSchema } from "@dynamo-ts/proto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { eventually, freePort, TEST_SECRET } from "../test-support/cluster.js";

const REPO = resolve(fileURLToPath(new URL(".", import.meta.url)), "../../../..");
const MAIN = join(REPO, "packages/node/dist/main.js");
const MAKE_CERTS = join(REPO, "scripts/make-certs.sh");
const BUF = join(REPO, "node_modules/.bin/buf");
const run = promisify(execFile);

interface Node {
  readonly id: string;
  readonly port: number;
  process: ChildProcess | undefined;
  readonly output: string[];
}

describe("TLS: client port and mutual TLS between nodes", () => {
  const root = mkdtempSync(join(tmpdir(), "dynamo-tls-"));
  const certs = join(root, "certs");
  const rogueCerts = join(root, "rogue-certs");
  const ca = join(certs, "ca.pem");
  const nodes: Node[] = [];
  const clients: DynamoClient[] = [];

  async function start(id: string, port: number, certDir: string, membership: string[]): Promise<Node> {
    const node: Node = { id, port, process: undefined, output: [] };
    const child = spawn(
      process.execPath,
      [
        MAIN,
        "--node-id",
        id,
        "--listen",
        `127.0.0.1:${port}`,
        ...membership,
        "--data-dir",
        join(root, "data", id),
        "--tls-cert-file",
        join(certDir, `${id}.pem`),
        "--tls-key-file",
        join(certDir, `${id}.key`),
        "--tls-ca-file",
        ca,
        "--gossip-interval-ms",
        "200",
      ],
      { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, DYNAMO_CLUSTER_SECRET: TEST_SECRET, DYNAMO_EXIT_WITH_PARENT: "1" } },
    );
    node.process = child;
    child.stdout!.on("data", (chunk: Buffer) => node.output.push(chunk.toString()));
    child.stderr!.on("data", (chunk: Buffer) => node.output.push(chunk.toString()));
    child.once("exit", () => (node.process = undefined));
    nodes.push(node);
    // The certificate a node serves is signed by its own directory's CA (another one for the rogue node).
    await eventually(async () => expect(await httpsGet(port, "/healthz", { ca: readFileSync(join(certDir, "ca.pem")) })).toBe(200), 20_000, 100);
    return node;
  }

  function httpsGet(port: number, path: string, options: https.RequestOptions = {}): Promise<number> {
    return new Promise((done, fail) => {
      const req = https.get({ host: "127.0.0.1", port, path, ca: readFileSync(ca), timeout: 2_000, agent: false, ...options }, (res) => {
        res.resume();
        done(res.statusCode ?? 0);
      });
      req.on("error", fail);
    });
  }

  function client(port: number, options: { httpVersion?: "1.1" | "2"; protocol?: "connect" | "grpc" | "grpc-web" } = {}): DynamoClient {
    const c = new DynamoClient({ node: `127.0.0.1:${port}`, ca: readFileSync(ca, "utf8"), clusterSecret: TEST_SECRET, ...options });
    clients.push(c);
    return c;
  }

  const curl = (...args: string[]) => run("curl", ["-sS", "--max-time", "10", ...args], { encoding: "utf8" });

  beforeAll(async () => {
    await run("bash", [MAKE_CERTS, certs, "n1", "n2", "n3", "n4"]);
    // Another CA, and a certificate it signed for a node that claims to belong.
    await run("bash", [MAKE_CERTS, rogueCerts, "n5"]);
    const ports = await Promise.all([freePort(), freePort(), freePort()]);
    const peers = ["--peers", ports.map((p, i) => `n${i + 1}@127.0.0.1:${p}`).join(",")];
    await Promise.all(ports.map((port, i) => start(`n${i + 1}`, port, certs, peers)));
    // Fresh data dirs: each node first rebuilds its ranges from the others (over mutual TLS).
    for (const node of nodes) {
      await eventually(
        async () => {
          const status = await client(node.port, { httpVersion: "1.1" }).status();
          expect(status.members.filter((m) => m.state === "alive")).toHaveLength(3);
          expect(status.rebuilding).toBe(false);
        },
        30_000,
        200,
      );
    }
  }, 90_000);

  afterAll(async () => {
    for (const c of clients) c.close();
    await Promise.all(
      nodes.map(async (node) => {
        const child = node.process;
        if (!child) return;
        const exited = new Promise((done) => child.once("exit", done));
        child.kill("SIGKILL");
        await exited;
      }),
    );
    rmSync(root, { recursive: true, force: true });
  });

  it("serves the SDK over TLS on HTTP/2 and HTTP/1.1 (Connect, gRPC, gRPC-Web); W=3 needs every node, so node-to-node mTLS works", async () => {
    const [n1, n2, n3] = nodes;
    await eventually(async () => expect((await client(n1!.port).status()).members.filter((m) => m.state === "alive")).toHaveLength(3), 20_000, 200);
    await client(n1!.port).put("tls-sdk", "over tls", { w: 3 });
    for (const [port, options] of [
      [n2!.port, { protocol: "grpc" as const }],
      [n3!.port, { protocol: "grpc-web" as const, httpVersion: "1.1" as const }],
      [n1!.port, { httpVersion: "1.1" as const }],
    ] as const) {
      const got = await client(port, options).get("tls-sdk", { r: 3 });
      expect(new TextDecoder().decode(got!.values[0])).toBe("over tls");
    }
  });

  it("answers curl over TLS with HTTP/1.1 and HTTP/2 (Connect JSON), and buf curl (gRPC)", async () => {
    const url = (path: string) => `https://127.0.0.1:${nodes[0]!.port}${path}`;
    const put = await curl(
      "--http2",
      "--cacert",
      ca,
      "-H",
      "content-type: application/json",
      "-d",
      '{"key":"tls-curl","value":"aGk=","w":3}',
      url("/dynamo.v1.KVService/Put"),
    );
    expect(put.stdout).toMatch(/"context":"/);
    const get = await curl(
      "--http1.1",
      "--cacert",
      ca,
      "-H",
      "content-type: application/json",
      "-d",
      '{"key":"tls-curl","r":3}',
      url("/dynamo.v1.KVService/Get"),
    );
    expect(JSON.parse(get.stdout)).toMatchObject({ siblings: [{ value: "aGk=" }] });
    const plainKv = await curl("--http1.1", "--cacert", ca, url("/kv/tls-curl"));
    expect(plainKv.stdout).toBe("hi");
    const viaBuf = await run(
      BUF,
      [
        "curl",
        "--protocol",
        "grpc",
        "--http2-prior-knowledge=false",
        "--cacert",
        ca,
        "--schema",
        join(REPO, "proto"),
        "-d",
        '{"key":"tls-curl"}',
        url("/dynamo.v1.KVService/Get"),
      ],
      {
        encoding: "utf8",
        cwd: REPO,
      },
    );
    expect(JSON.parse(viaBuf.stdout)).toMatchObject({ siblings: [{ value: "aGk=" }] });
  });

  it("answers Python grpcio over a TLS channel that trusts the cluster CA", async () => {
    const request = Buffer.from(toBinary(GetRequestSchema, create(GetRequestSchema, { key: "tls-curl" }))).toString("hex");
    const script = [
      "import grpc, sys",
      "creds = grpc.ssl_channel_credentials(open(sys.argv[1], 'rb').read())",
      "channel = grpc.secure_channel(sys.argv[2], creds)",
      "get = channel.unary_unary('/dynamo.v1.KVService/Get')",
      "print(get(bytes.fromhex(sys.argv[3]), timeout=10).hex())",
    ].join("\n");
    const out = await run("/usr/bin/python3", ["-c", script, ca, `127.0.0.1:${nodes[1]!.port}`, request], { encoding: "utf8" });
    const response = fromBinary(GetResponseSchema, Buffer.from(out.stdout.trim(), "hex"));
    expect(new TextDecoder().decode(response.siblings[0]!.value)).toBe("hi");
  });

  it("refuses internal calls without a client certificate from the cluster CA, even with the secret; turns plaintext away", async () => {
    const url = `https://127.0.0.1:${nodes[1]!.port}/dynamo.v1.ReplicaService/Read`;
    const headers = ["-H", "content-type: application/json", "-H", `x-dynamo-cluster-secret: ${TEST_SECRET}`, "-d", '{"key":"tls-curl"}'];
    const bare = await curl("--cacert", ca, ...headers, url);
    expect(JSON.parse(bare.stdout)).toMatchObject({
      code: "permission_denied",
      message: expect.stringMatching(/client certificate from the cluster CA/) as string,
    });
    const rogue = await curl("--cacert", ca, "--cert", join(rogueCerts, "n5.pem"), "--key", join(rogueCerts, "n5.key"), ...headers, url);
    expect(JSON.parse(rogue.stdout)).toMatchObject({ code: "permission_denied" });
    const member = await curl("--cacert", ca, "--cert", join(certs, "n4.pem"), "--key", join(certs, "n4.key"), ...headers, url);
    expect(JSON.parse(member.stdout)).toHaveProperty("record");
    const plaintext = await curl(`http://127.0.0.1:${nodes[1]!.port}/healthz`).catch((err: { code: number }) => err);
    expect((plaintext as { code: number }).code).not.toBe(0);
  });

  it("keeps a node with a certificate from another CA out; the cluster carries on", async () => {
    const port = await freePort();
    // It trusts the real CA (so it would reach the members) but presents the other CA's certificate.
    await start("n5", port, rogueCerts, ["--seeds", `127.0.0.1:${nodes[0]!.port}`]);
    await new Promise((r) => setTimeout(r, 4_000));
    for (const node of nodes.slice(0, 3)) {
      const members = (await client(node.port).status()).members.map((m) => m.nodeId);
      expect(members).not.toContain("n5");
    }
    await client(nodes[2]!.port).put("after-rogue", "still fine", { w: 3 });
    expect(new TextDecoder().decode((await client(nodes[0]!.port).get("after-rogue", { r: 3 }))!.values[0])).toBe("still fine");
  });

  it("serves a certificate replaced on disk to new connections, without a restart", async () => {
    const n1 = nodes[0]!;
    const before = await peerSerial(n1.port);
    await run("bash", [MAKE_CERTS, certs, "n1"]); // a new certificate (new serial) in the same files
    await eventually(async () => expect(await peerSerial(n1.port)).not.toBe(before), 15_000, 250);
    expect(n1.output.join("")).toContain("TLS certificate, key or CA reloaded");
    expect(n1.process).toBeDefined();
    await client(n1.port).put("after-reload", "ok", { w: 3 });
  });

  function peerSerial(port: number): Promise<string> {
    return new Promise((done, fail) => {
      const socket = tls.connect({ host: "127.0.0.1", port, ca: readFileSync(ca), ALPNProtocols: ["http/1.1"] }, () => {
        const serial = socket.getPeerCertificate().serialNumber;
        socket.end();
        done(serial);
      });
      socket.on("error", fail);
    });
  }
});
