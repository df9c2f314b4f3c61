// The Python example (examples/python/kv_example.py) against a real 3-node cluster: stubs
// generated from proto/ at test time with Debian's protoc and grpc_python_plugin, run with a
// python3 that has Debian's python3-grpcio, then the final state checked from TypeScript.
// Without those prerequisites the suite skips with the reason; with CI=true it fails instead
// (the e2e suites' convention), so CI cannot pass by skipping.
import { execFile } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TestCluster } from "../test-support/cluster.js";

const REPO = resolve(fileURLToPath(new URL(".", import.meta.url)), "../../../..");
const GENERATE = join(REPO, "examples/python/generate.sh");
const EXAMPLE = join(REPO, "examples/python/kv_example.py");
const INSTALL = "apt-get install python3-grpcio python3-protobuf protobuf-compiler protobuf-compiler-grpc (or bash .ci/run)";
/** Generous: on a loaded machine even `import grpc` can take seconds, and a slow probe must not read as a missing package. */
const PROBE_TIMEOUT_MS = 120_000;

interface Run {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs a program; resolves with its exit code and output whatever the code (null: it did not start or was killed). */
function run(file: string, args: readonly string[], options: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<Run> {
  return new Promise((done) => {
    execFile(file, args, { cwd: REPO, env: options.env ?? process.env, timeout: options.timeoutMs ?? 30_000, encoding: "utf8" }, (error, stdout, stderr) => {
      const code = error === null ? 0 : typeof error.code === "number" ? error.code : null;
      done({ code, stdout, stderr: stderr || (error && code === null ? error.message : "") });
    });
  });
}

/**
 * A python3 that can import grpc and google.protobuf: $DYNAMO_PYTHON when set, else Debian's
 * /usr/bin/python3 (where python3-grpcio installs; a pyenv or venv python3 earlier on PATH
 * does not see it), else whatever python3 is on PATH.
 */
async function findPython(): Promise<{ python: string } | { missing: string }> {
  const candidates = process.env.DYNAMO_PYTHON ? [process.env.DYNAMO_PYTHON] : ["/usr/bin/python3", "python3"];
  const tried: string[] = [];
  for (const python of candidates) {
    const probe = await run(python, ["-c", "import grpc, google.protobuf; print(grpc.__version__)"], { timeoutMs: PROBE_TIMEOUT_MS });
    if (probe.code === 0) return { python };
    tried.push(`${python}: ${probe.stderr.trim().split("\n").at(-1) || `exit ${probe.code}`}`);
  }
  return { missing: `no python3 with grpcio and protobuf (${tried.join("; ")})` };
}

/** Why the example cannot run here, or the python to run it with. */
async function prerequisites(): Promise<{ python: string } | { missing: string }> {
  const missing: string[] = [];
  if ((await run("protoc", ["--version"], { timeoutMs: PROBE_TIMEOUT_MS })).code !== 0) missing.push("protoc not found");
  if (
    !existsSync(process.env.GRPC_PYTHON_PLUGIN ?? "/usr/bin/grpc_python_plugin") &&
    (await run("sh", ["-c", "command -v grpc_python_plugin"], { timeoutMs: PROBE_TIMEOUT_MS })).code !== 0
  ) {
    missing.push("grpc_python_plugin not found");
  }
  const python = await findPython();
  if ("missing" in python) missing.push(python.missing);
  if (missing.length > 0) return { missing: `${missing.join("; ")}; install them: ${INSTALL}` };
  return python as { python: string };
}

const SUITE = "the Python gRPC example on a 3-node cluster, N=3 R=2 W=2";
const found = await prerequisites();
if ("missing" in found) {
  if (process.env.CI === "true") throw new Error(`integration suite "${SUITE}" cannot run on CI: ${found.missing}`);
  console.warn(`[integration] skipping "${SUITE}": ${found.missing}`);
}

describe.skipIf("missing" in found)(`${SUITE}${"missing" in found ? ` (skipped: ${found.missing})` : ""}`, () => {
  const python = "python" in found ? found.python : "python3";
  let cluster: TestCluster;
  let stubs: string;

  beforeAll(async () => {
    stubs = mkdtempSync(join(tmpdir(), "dynamo-py-stubs-"));
    // Whatever proto/ holds now: the stubs are never committed.
    const generated = await run("bash", [GENERATE, stubs]);
    expect(generated.stderr).toBe("");
    expect(generated.code).toBe(0);
    cluster = await TestCluster.start({ nodes: 3 });
  }, 60_000);
  afterAll(async () => {
    await cluster?.stop();
    if (stubs) rmSync(stubs, { recursive: true, force: true });
  });

  it("puts, reads, resolves two siblings with the context, deletes, and maps errors to gRPC codes", async () => {
    const key = "py-example";
    const node = cluster.node("n1").address;
    const res = await run(python, [EXAMPLE, node, "--key", key], {
      env: { ...process.env, PYTHONPATH: stubs, PYTHONDONTWRITEBYTECODE: "1" },
      timeoutMs: 50_000,
    });
    expect(res.stderr).toBe("");
    expect(res.code).toBe(0);

    const lines = res.stdout.trimEnd().split("\n");
    // Context lengths and server messages vary: the lines are matched up to them.
    expect(lines).toEqual([
      `connected to ${node}`,
      expect.stringMatching(/^put py-example = b'hello' \(text\/plain\): context \d+ bytes$/),
      "get py-example: [b'hello'] (text/plain)",
      "put py-example-cart = b'apples' without a context (blind)",
      "put py-example-cart = b'pears' without a context (blind)",
      expect.stringMatching(/^get py-example-cart: 2 siblings \[b'apples', b'pears'\], context \d+ bytes$/),
      "resolved py-example-cart: put b'apples,pears' with the read's context",
      "get py-example-cart: 1 value b'apples,pears'",
      "deleted py-example-cart with the read's context",
      expect.stringMatching(/^get py-example-cart: NOT_FOUND \(.+\)$/),
      expect.stringMatching(/^put with an empty key: INVALID_ARGUMENT \(.+\)$/),
      expect.stringMatching(/^put with a forged context: INVALID_ARGUMENT \(.+\)$/),
      "ok",
    ]);

    // The TypeScript client, through every node at R=N, sees what the example left: the first
    // key with its one value, the resolved-then-deleted key gone.
    for (const id of ["n1", "n2", "n3"]) {
      const client = cluster.client(id);
      const kept = await client.get(key, { r: 3 });
      expect(kept?.values.map((v) => Buffer.from(v).toString())).toEqual(["hello"]);
      expect(await client.get(`${key}-cart`, { r: 3 })).toBeNull();
    }
  });

  it("sends its deadline (grpc-timeout) and gzip-compressed calls, both served", async () => {
    // Python grpcio's own deadline and compression, with one replica frozen: a put at W=3 cannot
    // complete and must end with DEADLINE_EXCEEDED at the client's deadline; gzip calls work.
    const script = [
      "import sys, grpc",
      "from dynamo.v1 import kv_pb2, kv_pb2_grpc",
      "stub = kv_pb2_grpc.KVServiceStub(grpc.insecure_channel(sys.argv[1]))",
      "stub.Put(kv_pb2.PutRequest(key='py-gzip', value=b'z' * 4000), timeout=10, compression=grpc.Compression.Gzip)",
      "got = stub.Get(kv_pb2.GetRequest(key='py-gzip'), timeout=10, compression=grpc.Compression.Gzip)",
      "print('gzip', len(got.siblings), len(got.siblings[0].value))",
      "try:",
      "    stub.Put(kv_pb2.PutRequest(key='py-deadline', value=b'v', w=3), timeout=0.5)",
      "    print('deadline: put succeeded')",
      "except grpc.RpcError as e:",
      "    print('deadline', e.code().name)",
    ].join("\n");
    const env = { ...process.env, PYTHONPATH: stubs, PYTHONDONTWRITEBYTECODE: "1" };
    const n3 = cluster.node("n3");
    n3.pause();
    try {
      const res = await run(python, ["-c", script, cluster.node("n1").address], { env, timeoutMs: 50_000 });
      expect(res.stderr).toBe("");
      expect(res.stdout.trimEnd().split("\n")).toEqual(["gzip 1 4000", "deadline DEADLINE_EXCEEDED"]);
    } finally {
      n3.resume();
    }
  });

  it("fails with a non-zero exit and a clear message when no node answers", async () => {
    const res = await run(python, [EXAMPLE, "127.0.0.1:1", "--timeout", "1"], { env: { ...process.env, PYTHONPATH: stubs, PYTHONDONTWRITEBYTECODE: "1" } });
    expect(res.code).toBe(1);
    expect(res.stderr).toMatch(/^FAILED: cannot connect to 127\.0\.0\.1:1 within 1s$/m);
  });
});
