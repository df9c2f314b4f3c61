// gRPC server reflection against a real node, with a client nobody here wrote: `buf curl` (from
// @bufbuild/buf) lists the services and calls KVService with no schema files, over both
// reflection versions (v1, and v1alpha that older tools still use).
import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TestCluster } from "../test-support/cluster.js";

const BUF = fileURLToPath(new URL("../../../../node_modules/.bin/buf", import.meta.url));

async function bufCurl(...args: string[]): Promise<{ code: number; out: string }> {
  try {
    const { stdout } = await promisify(execFile)(BUF, ["curl", "--http2-prior-knowledge", ...args], { timeout: 30_000 });
    return { code: 0, out: stdout };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof e.code === "number" ? e.code : -1, out: `${e.stdout ?? ""}${e.stderr ?? ""}` };
  }
}

describe("gRPC server reflection", () => {
  let cluster: TestCluster;
  let url: string;
  beforeAll(async () => {
    cluster = await TestCluster.start({ nodes: 1, n: 1 });
    url = `http://${cluster.nodes[0]!.address}`;
  }, 60_000);
  afterAll(async () => cluster?.stop());

  for (const reflectProtocol of ["grpc-v1", "grpc-v1alpha"]) {
    it(`lists the public services and their methods (${reflectProtocol})`, async () => {
      const services = await bufCurl("--protocol", "grpc", "--reflect-protocol", reflectProtocol, "--list-services", url);
      expect(services.code).toBe(0);
      expect(services.out.trim().split("\n")).toEqual([
        "dynamo.v1.AdminService",
        "dynamo.v1.KVService",
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
        "grpc.reflection.v1alpha.ServerReflection",
      ]);
      const methods = await bufCurl("--protocol", "grpc", "--reflect-protocol", reflectProtocol, "--list-methods", url);
      expect(methods.out).toContain("dynamo.v1.KVService/Put");
      // Node-to-node services need the cluster secret: not advertised.
      expect(methods.out).not.toContain("ReplicaService");
    });
  }

  it("lets a client call Put and Get with no schema files, over gRPC and Connect", async () => {
    const put = await bufCurl("--protocol", "grpc", "-d", '{"key":"reflected","value":"aGk="}', `${url}/dynamo.v1.KVService/Put`);
    expect(put.code).toBe(0);
    expect(JSON.parse(put.out)).toEqual({ context: expect.any(String) });
    const get = await bufCurl("--protocol", "connect", "-d", '{"key":"reflected"}', `${url}/dynamo.v1.KVService/Get`);
    expect(get.code).toBe(0);
    expect(JSON.parse(get.out).siblings).toEqual([{ value: "aGk=" }]);
  });

  it("does not describe the internal services", async () => {
    const read = await bufCurl("--protocol", "grpc", "-d", '{"key":"k"}', `${url}/dynamo.v1.ReplicaService/Read`);
    expect(read.code).not.toBe(0);
    expect(read.out).toContain('failed to find service named "dynamo.v1.ReplicaService"');
  });
});
