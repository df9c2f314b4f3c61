// Credentials on real processes: admin methods and the dashboard's state refuse callers without
// the cluster secret or an admin token, whatever --require-client-auth says; with it, the key
// API (Connect and /kv) needs a token with the right role; tokens are re-read when the file
// changes; --allowed-hosts refuses other Host headers; weak secrets stop a node at start-up.
import { execFile } from "node:child_process";
import { request } from "node:http";
import { mkdtempSync, rmSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { Code } from "@connectrpc/connect";
import { DynamoClient, DynamoError } from "@dynamo-ts/client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { dynamo, TEST_SECRET, TestCluster } from "../test-support/cluster.js";

const ADMIN = "admin-token-0123456789abcdef";
const READER = "read-token-0123456789abcdef";
const WRITER = "write-token-0123456789abcdef";
const EXPIRED = "expired-token-0123456789abcdef";
const LATE = "added-later-token-0123456789abcdef";

/** GET /kv/k with a chosen Host header (fetch does not let a caller set it). */
function statusWithHost(address: string, host: string): Promise<number | undefined> {
  const [hostname, port] = address.split(":");
  return new Promise((resolve, reject) => {
    const req = request({ hostname, port: Number(port), path: "/kv/k", headers: { host, authorization: `Bearer ${ADMIN}` } }, (res) => {
      res.resume();
      resolve(res.statusCode);
    });
    req.once("error", reject);
    req.end();
  });
}

async function codeOf(call: Promise<unknown>): Promise<Code | "ok"> {
  try {
    await call;
    return "ok";
  } catch (err) {
    if (err instanceof DynamoError) return err.code;
    throw err;
  }
}

describe("credentials", () => {
  let cluster: TestCluster;
  let dir: string;
  let tokensFile: string;
  let address: string;
  const clients: DynamoClient[] = [];
  const client = (options: { token?: string; clusterSecret?: string } = {}) => {
    const c = new DynamoClient({ node: address, httpVersion: "1.1", ...options });
    clients.push(c);
    return c;
  };

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "dynamo-security-"));
    tokensFile = join(dir, "tokens");
    writeFileSync(
      tokensFile,
      [
        `# test tokens`,
        `${ADMIN} admin name=ops`,
        `${READER} read name=reporting`,
        `${WRITER} write,read`,
        `${EXPIRED} read,write expires=2020-01-01T00:00:00Z`,
      ].join("\n"),
    );
    cluster = await TestCluster.start({ nodes: 3, args: ["--tokens-file", tokensFile, "--require-client-auth", "--allowed-hosts", "localhost,kv.example"] });
    address = cluster.nodes[0]!.address;
  }, 60_000);

  afterAll(async () => {
    for (const c of clients) c.close();
    await cluster?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("refuses the key API without a token, with an unknown or expired one (Unauthenticated)", async () => {
    expect(await codeOf(client().get("k"))).toBe(Code.Unauthenticated);
    expect(await codeOf(client({ token: "no-such-token-0123456789abcdef" }).get("k"))).toBe(Code.Unauthenticated);
    expect(await codeOf(client({ token: EXPIRED }).get("k"))).toBe(Code.Unauthenticated);
    const none = await fetch(`http://${address}/kv/k`);
    expect(none.status).toBe(401);
    expect(await none.json()).toMatchObject({ code: "unauthenticated" });
  });

  it("lets each role do what it grants and refuses the rest (PermissionDenied)", async () => {
    expect(await codeOf(client({ token: WRITER }).put("k", new TextEncoder().encode("v")))).toBe("ok");
    expect((await client({ token: READER }).get("k"))?.values.map((v) => new TextDecoder().decode(v))).toEqual(["v"]);
    expect(await codeOf(client({ token: READER }).put("k", new Uint8Array([1])))).toBe(Code.PermissionDenied);
    expect(await codeOf(client({ token: READER }).delete("k"))).toBe(Code.PermissionDenied);
    const put = await fetch(`http://${address}/kv/k`, { method: "PUT", body: "x", headers: { authorization: `Bearer ${READER}` } });
    expect(put.status).toBe(403);
    expect(((await put.json()) as { message: string }).message).toContain("needs the write role; token reporting has read");
    const get = await fetch(`http://${address}/kv/k`, { headers: { authorization: `Bearer ${READER}` } });
    expect(get.status).toBe(200);
    // Admin implies read and write.
    expect(await codeOf(client({ token: ADMIN }).put("k2", new Uint8Array([2])))).toBe("ok");
  });

  it("keeps admin methods for the cluster secret and admin tokens", async () => {
    expect(await codeOf(client().status())).toBe(Code.Unauthenticated);
    expect(await codeOf(client({ token: READER }).status())).toBe(Code.PermissionDenied);
    expect(await codeOf(client({ token: WRITER }).hints())).toBe(Code.PermissionDenied);
    expect(await codeOf(client({ token: READER }).antiEntropyStatus())).toBe(Code.PermissionDenied);
    expect(await codeOf(client({ token: ADMIN }).status())).toBe("ok");
    expect(await codeOf(client({ clusterSecret: TEST_SECRET }).hints())).toBe("ok");
    // A plain POST of Status with no credentials, as the issue found it answered.
    const plain = await fetch(`http://${address}/dynamo.v1.AdminService/Status`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: "{}",
    });
    expect(plain.status).toBe(401);
    const state = await fetch(`http://${address}/ui/state.json`);
    expect(state.status).toBe(401);
    expect((await fetch(`http://${address}/ui/state.json`, { headers: { authorization: `Bearer ${ADMIN}` } })).status).toBe(200);
    expect((await fetch(`http://${address}/ui/state.json`, { headers: { authorization: `Bearer ${TEST_SECRET}` } })).status).toBe(200);
    // The CLI takes the secret from a file or the environment.
    writeFileSync(join(dir, "secret"), `${TEST_SECRET}\n`, { mode: 0o600 });
    const cli = await dynamo("status", "--node", address, "--secret-file", join(dir, "secret"), "--json");
    expect(cli.code).toBe(0);
    const denied = await dynamo("status", "--node", address, "--token-file", join(dir, "missing"));
    expect(denied.code).toBe(2);
    expect(denied.stderr).toContain("cannot read the token file");
  });

  it("takes tokens added to the file without a restart", async () => {
    expect(await codeOf(client({ token: LATE }).get("k"))).toBe(Code.Unauthenticated);
    writeFileSync(tokensFile, `${ADMIN} admin\n${LATE} read\n`);
    // A later mtime, whatever the file system's timestamp resolution.
    utimesSync(tokensFile, new Date(), new Date(Date.now() + 5_000));
    let code: Code | "ok" = Code.Unauthenticated;
    for (let i = 0; i < 50 && code !== "ok"; i++) {
      await new Promise((r) => setTimeout(r, 200));
      code = await codeOf(client({ token: LATE }).get("k"));
    }
    expect(code).toBe("ok");
    // Removed tokens stop working the same way.
    expect(await codeOf(client({ token: READER }).get("k"))).toBe(Code.Unauthenticated);
  });

  it("answers 421 to a Host it does not serve, and serves its own addresses and the allowed names", async () => {
    const port = address.split(":")[1];
    expect(await statusWithHost(address, `evil.example:${port}`)).toBe(421);
    for (const host of [`localhost:${port}`, "kv.example", address]) expect([host, await statusWithHost(address, host)]).toEqual([host, 200]);
  });
});

describe("cluster secrets", () => {
  const main = join(import.meta.dirname, "../../dist/main.js");
  const start = async (...args: string[]) => {
    try {
      await promisify(execFile)(process.execPath, [main, "--node-id", "w1", "--data-dir", join(tmpdir(), "dynamo-never-created"), ...args], {
        timeout: 10_000,
      });
      return { code: 0, stderr: "" };
    } catch (err) {
      const e = err as { code: number; stderr: string };
      return { code: e.code, stderr: e.stderr };
    }
  };

  it("refuses weak ones at start-up with the reason", async () => {
    const sixteenAs = await start("--cluster-secret", "a".repeat(16));
    expect(sixteenAs.code).toBe(2);
    expect(sixteenAs.stderr).toContain("the cluster secret is too weak: it is 16 characters; use at least 24");
    const repeated = await start("--cluster-secret", "ab".repeat(20));
    expect(repeated.stderr).toContain("only 2 distinct characters");
  });
});
