import { randomBytes } from "node:crypto";
import { readFileSync, realpathSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Code, ConnectError } from "@connectrpc/connect";
import { EXIT, formatValues, parseArgs, run, stoppedAnswering } from "./cli.js";
import { dynamo, freePort as closedPort, LocalCluster, runProcess } from "./test-support/local-cluster.js";
import { normalizeNodeUrl } from "./transport.js";

function io() {
  const out: string[] = [];
  const err: string[] = [];
  const text = (d: string | Uint8Array) => (typeof d === "string" ? d : Buffer.from(d).toString());
  return { out, err, io: { out: (d: string | Uint8Array) => out.push(text(d)), err: (s: string) => err.push(s), stdin: () => new Uint8Array(), env: {} } };
}

const PACKAGE = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")) as { version: string };
const REPO_ROOT = fileURLToPath(new URL("../../../", import.meta.url));

describe("dynamo CLI", () => {
  it("takes a decommissioned node that stopped answering as stopped, however its connection ended, but not an answered error", () => {
    expect(stoppedAnswering(new ConnectError("connect ECONNREFUSED 127.0.0.1:7003", Code.Unavailable))).toBe(true);
    // A container that stopped after leaving drops off its network; connect reports this as Internal.
    expect(stoppedAnswering(new ConnectError("connect EHOSTUNREACH 172.27.0.5:7001", Code.Internal))).toBe(true);
    expect(stoppedAnswering(new ConnectError("getaddrinfo ENOTFOUND node5", Code.Internal))).toBe(true);
    expect(stoppedAnswering(new ConnectError("needs credentials", Code.Unauthenticated))).toBe(false);
    expect(stoppedAnswering(new ConnectError("internal error", Code.Internal))).toBe(false);
    expect(stoppedAnswering(new Error("connect EHOSTUNREACH"))).toBe(false);
  });

  it("parses flags in both forms", () => {
    const p = parseArgs(["put", "k", "v", "--w", "2", "--node=127.0.0.1:7002", "--json"]);
    expect(p.positional).toEqual(["put", "k", "v"]);
    expect(p.flags.get("w")).toBe("2");
    expect(p.flags.get("node")).toBe("127.0.0.1:7002");
    expect(p.flags.get("json")).toBe("true");
    expect(parseArgs(["put", "--", "--key", "-v"]).positional).toEqual(["put", "--key", "-v"]);
  });

  it("prints help and exits 0 for --help, 2 with no command", async () => {
    const a = io();
    expect(await run(["--help"], a.io)).toBe(EXIT.ok);
    expect(a.out.join("")).toContain("Usage: dynamo");
    expect(await run([], io().io)).toBe(EXIT.usage);
  });

  it.each([
    [["frobnicate"], /unknown command/],
    [["get"], /usage: dynamo get/],
    [["put", "k"], /usage: dynamo put/],
    [["get", "k", "--r", "two"], /--r must be a positive integer/],
    [["get", "k", "--bogus"], /unknown option --bogus/],
    [["put", "k", "v", "--context", "not base64!"], /--context is not base64/],
    [["get", "k", "--protocol", "smtp"], /--protocol must be/],
    [["get", "k", "--node", ","], /--node needs HOST:PORT/],
    [["get", "k", "--node", "http://"], /not a node address/],
  ])("rejects %j with exit code 2", async (argv, message) => {
    const a = io();
    expect(await run(argv, a.io)).toBe(EXIT.usage);
    expect(a.err.join("")).toMatch(message);
  });

  it("exits 4 when the node cannot be reached", async () => {
    const port = await closedPort();
    const a = io();
    expect(await run(["get", "k", "--node", `127.0.0.1:${port}`, "--timeout-ms", "2000"], a.io)).toBe(EXIT.unavailable);
    expect(a.err.join("")).toMatch(/Unavailable/);
  });

  it("normalizes node addresses", () => {
    expect(normalizeNodeUrl("127.0.0.1:7001")).toBe("http://127.0.0.1:7001");
    expect(normalizeNodeUrl("http://localhost:7002/")).toBe("http://localhost:7002");
    expect(() => normalizeNodeUrl("http://")).toThrow(/not a node address/);
  });
});

describe("dynamo CLI output for scripts", () => {
  const bytes = (text: string) => new TextEncoder().encode(text);

  it("prints --version", async () => {
    const a = io();
    expect(await run(["--version"], a.io)).toBe(EXIT.ok);
    expect(a.out.join("")).toBe(`dynamo ${PACKAGE.version}\n`);
  });

  it("prints --version in dynamo-node and dynamo-bench too", async () => {
    for (const [bin, name] of [
      ["packages/node/dist/main.js", "node"],
      ["packages/bench/dist/bin.js", "bench"],
    ]) {
      const version = (JSON.parse(readFileSync(`${REPO_ROOT}packages/${name}/package.json`, "utf8")) as { version: string }).version;
      const ran = await runProcess(process.execPath, [`${REPO_ROOT}${bin}`, "--version"]);
      expect([ran.code, ran.stdout.toString(), ran.stderr]).toEqual([0, `dynamo-${name} ${version}\n`, ""]);
    }
  });

  it("prints a value's exact bytes, a newline only on a terminal; siblings and base64 one per line", () => {
    const binary = new Uint8Array([0, 10, 255, 13]);
    expect([...formatValues([binary], false, false)]).toEqual([0, 10, 255, 13]);
    expect(Buffer.from(formatValues([bytes("hello")], false, false)).toString()).toBe("hello");
    expect(Buffer.from(formatValues([bytes("hello")], false, true)).toString()).toBe("hello\n");
    expect(Buffer.from(formatValues([bytes("hello\n")], false, true)).toString()).toBe("hello\n");
    expect(Buffer.from(formatValues([bytes("apples"), bytes("pears")], false, false)).toString()).toBe("apples\npears\n");
    expect(Buffer.from(formatValues([binary, bytes("x")], true, false)).toString()).toBe("AAr/DQ==\neA==\n");
  });
});

describe("dynamo CLI against a three-node cluster", () => {
  let cluster: LocalCluster;
  let n1: string;
  let n2: string;

  beforeAll(async () => {
    cluster = await LocalCluster.start(3);
    [n1, n2] = [cluster.address("node1"), cluster.address("node2")];
  });
  afterAll(async () => {
    await cluster?.stop();
  });

  it("get: only the value on stdout, byte for byte; the context on stderr, or first on stdout with --show-context", async () => {
    const value = new Uint8Array(randomBytes(4096));
    const put = await dynamo(["put", "blob", "-", "--node", n1], value);
    expect(put.code, put.stderr).toBe(0);
    const context = /^ok\ncontext: (\S+)\n$/.exec(put.stdout.toString())![1]!;

    const got = await dynamo(["get", "blob", "--node", n2]);
    expect(got.code).toBe(EXIT.ok);
    expect(Buffer.compare(got.stdout, value)).toBe(0);
    expect(got.stderr).toBe(`context: ${context}\n`);

    const shown = await dynamo(["get", "blob", "--node", n2, "--show-context"]);
    expect(shown.stderr).toBe("");
    const newline = shown.stdout.indexOf(0x0a);
    expect(shown.stdout.subarray(0, newline).toString()).toBe(context);
    expect(Buffer.compare(shown.stdout.subarray(newline + 1), value)).toBe(0);

    // The context printed resolves: a write with it replaces the value.
    expect((await dynamo(["put", "blob", "text", "--context", context, "--node", n1])).code).toBe(0);
    expect((await dynamo(["get", "blob", "--node", n1])).stdout.toString()).toBe("text");
  });

  it("get: siblings each on a line with a note on stderr; --base64 and --json; not found is exit 3 with nothing on stdout", async () => {
    await dynamo(["put", "fruit", "apples", "--node", n1]);
    await dynamo(["put", "fruit", "pears", "--node", n2]);
    const siblings = await dynamo(["get", "fruit", "--node", n1, "--r", "3"]);
    expect(siblings.code).toBe(EXIT.ok);
    expect(siblings.stdout.toString().split("\n").slice(0, -1).sort()).toEqual(["apples", "pears"]);
    expect(siblings.stderr).toMatch(/^dynamo: 2 siblings \(concurrent writes\); resolve them with put --context\ncontext: \S+\n$/);
    const base64 = await dynamo(["get", "fruit", "--node", n1, "--r", "3", "--base64"]);
    expect(base64.stdout.toString().split("\n").slice(0, -1).sort()).toEqual(["YXBwbGVz", "cGVhcnM="]);

    const json = JSON.parse((await dynamo(["get", "fruit", "--node", n1, "--r", "3", "--json"])).stdout.toString());
    expect(Object.keys(json)).toEqual(["key", "found", "values", "context"]);
    expect((json.values as string[]).sort()).toEqual(["YXBwbGVz", "cGVhcnM="]);
    const deleted = await dynamo(["delete", "fruit", "--context", json.context, "--node", n2, "--json"]);
    expect(JSON.parse(deleted.stdout.toString())).toEqual({ key: "fruit", deleted: true });

    const missing = await dynamo(["get", "fruit", "--node", n1]);
    expect([missing.code, missing.stdout.length, missing.stderr]).toEqual([EXIT.notFound, 0, "not found: fruit\n"]);
    const missingJson = await dynamo(["get", "fruit", "--node", n1, "--json"]);
    expect([missingJson.code, JSON.parse(missingJson.stdout.toString())]).toEqual([EXIT.notFound, { key: "fruit", found: false }]);
  });

  it("--json prints the node's answers without protobuf-es internals, in the proto3 JSON mapping", async () => {
    const secret = ["--secret", cluster.secret];
    for (const args of [
      ["status", ...secret],
      ["hints", ...secret],
      ["ranges", ...secret],
      ["repair", ...secret],
      ["put", "j", "v"],
    ]) {
      const ran = await dynamo([...args, "--node", n1, "--json"]);
      expect(ran.code, `${args[0]}: ${ran.stderr}`).toBe(EXIT.ok);
      const text = ran.stdout.toString();
      expect(text.endsWith("\n") && !text.slice(0, -1).includes("\n"), args[0]).toBe(true);
      expect(text, args[0]).not.toMatch(/\$typeName|\$unknown/);
      JSON.parse(text);
    }
    const status = JSON.parse((await dynamo(["status", "--node", n1, "--json", ...secret])).stdout.toString());
    expect(status).toMatchObject({ nodeId: "node1", n: 3, rebuilding: false, notReadyReason: "" });
    expect(status.uptimeMs).toMatch(/^\d+$/); // 64-bit integers are strings in proto3 JSON
    expect(status.members.map((m: { nodeId: string }) => m.nodeId).sort()).toEqual(["node1", "node2", "node3"]);
  });

  it("a value over --max-value-bytes exits 2: InvalidArgument up to the node's message limit, ResourceExhausted past it", async () => {
    const over = await dynamo(["put", "big", "-", "--node", n1], new Uint8Array(1_111_490)); // 1.06 MiB
    expect([over.code, over.stderr]).toEqual([EXIT.usage, "dynamo: InvalidArgument: value is 1111490 bytes, the limit is 1048576\n"]);
    const huge = await dynamo(["put", "big", "-", "--node", n1], new Uint8Array(2 * 1024 * 1024));
    expect(huge.code).toBe(EXIT.usage);
    expect(huge.stderr).toMatch(
      /^dynamo: ResourceExhausted: message size is larger than configured readMaxBytes 1530712 \(the request is larger than the node reads; values may be at most its --max-value-bytes\)\n$/,
    );
    expect((await dynamo(["get", "big", "--node", n1])).code).toBe(EXIT.notFound);
  });

  it("fails over between the nodes of --node A,B: a refused connection is tried on the next node", async () => {
    const closed = `127.0.0.1:${await closedPort()}`;
    expect((await dynamo(["put", "multi", "v", "--node", `${closed},${n1}`])).code).toBe(EXIT.ok);
    const got = await dynamo(["get", "multi", "--node", `${closed},${n2}`]);
    expect([got.code, got.stdout.toString()]).toEqual([EXIT.ok, "v"]);
    const alone = await dynamo(["get", "multi", "--node", closed]);
    expect([alone.code, alone.stderr]).toEqual([EXIT.unavailable, `dynamo: Unavailable: connect ECONNREFUSED ${closed}\n`]);
  });

  it("runs as `npx dynamo` and `npm run -s dynamo --` from the repository root", async () => {
    // npm links the bin of every workspace package into node_modules/.bin when it installs.
    expect(realpathSync(`${REPO_ROOT}node_modules/.bin/dynamo`), "node_modules/.bin/dynamo: run npm install").toBe(
      realpathSync(`${REPO_ROOT}packages/client/bin/dynamo.js`),
    );
    const npx = await runProcess("npx", ["--no", "--", "dynamo", "--version"], { cwd: REPO_ROOT });
    expect([npx.code, npx.stdout.toString(), npx.stderr]).toEqual([0, `dynamo ${PACKAGE.version}\n`, ""]);
    await dynamo(["put", "from-root", "hi", "--node", n1]);
    const script = await runProcess("npm", ["run", "-s", "dynamo", "--", "get", "from-root", "--node", n1], { cwd: REPO_ROOT });
    expect([script.code, script.stdout.toString(), script.stderr]).toEqual([0, "hi", expect.stringMatching(/^context: \S+\n$/)]);
  });
});
