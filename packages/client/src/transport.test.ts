import * as http from "node:http";
import * as http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { createClient } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { Health, HealthCheckResponse_ServingStatus } from "@dynamo-ts/proto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createDynamoTransport, type Protocol } from "./transport.js";

const handler = connectNodeAdapter({
  routes: (router) => router.service(Health, { check: () => ({ status: HealthCheckResponse_ServingStatus.SERVING }) }),
});

describe("createDynamoTransport", () => {
  let h2: http2.Http2Server;
  let h1: http.Server;
  let h2Sessions = 0;
  const port = (server: http.Server | http2.Http2Server) => (server.address() as AddressInfo).port;

  beforeAll(async () => {
    h2 = http2.createServer(handler).on("session", () => h2Sessions++);
    h1 = http.createServer(handler);
    await Promise.all([h2, h1].map((s) => new Promise<void>((ready) => s.listen(0, "127.0.0.1", ready))));
  });
  afterAll(async () => {
    await Promise.all([h2, h1].map((s) => new Promise((done) => s.close(done))));
  });

  const cases: [Protocol, "1.1" | "2"][] = [
    ["connect", "2"],
    ["grpc", "2"],
    ["grpc-web", "2"],
    ["connect", "1.1"],
    ["grpc-web", "1.1"],
  ];
  it.each(cases)("calls a node over %s, HTTP/%s", async (protocol, httpVersion) => {
    const server = httpVersion === "2" ? h2 : h1;
    const { transport, baseUrl, close } = createDynamoTransport({ node: `127.0.0.1:${port(server)}`, protocol, httpVersion });
    expect(baseUrl).toBe(`http://127.0.0.1:${port(server)}`);
    try {
      const res = await createClient(Health, transport).check({});
      expect(res.status).toBe(HealthCheckResponse_ServingStatus.SERVING);
    } finally {
      close();
    }
  });

  it("shares one HTTP/2 session among concurrent calls until close()", async () => {
    const before = h2Sessions;
    const { transport, close } = createDynamoTransport({ node: `http://127.0.0.1:${port(h2)}/ignored/path` });
    try {
      const health = createClient(Health, transport);
      await Promise.all(Array.from({ length: 20 }, () => health.check({})));
      await health.check({});
      expect(h2Sessions - before).toBe(1);
    } finally {
      close();
    }
  });

  it("refuses gRPC over HTTP/1.1 and a bad node address", () => {
    expect(() => createDynamoTransport({ node: "127.0.0.1:1", protocol: "grpc", httpVersion: "1.1" })).toThrow(/needs HTTP\/2/);
    expect(() => createDynamoTransport({ node: "http://" })).toThrow(TypeError);
  });
});
