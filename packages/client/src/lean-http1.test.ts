// The lean HTTP/1.1 unary calling side against connect-node's HTTP/1.1 transport: every case goes
// through both, against a connect-node server and against a raw HTTP/1.1 server that answers
// badly, and both must come out the same (the message, or the code, message and metadata of the
// error).
import * as http from "node:http";
import type { AddressInfo } from "node:net";
import { Code, ConnectError, createClient, type Transport } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { Health, HealthCheckResponse_ServingStatus } from "@dynamo-ts/proto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { leanHttp1Transport } from "./lean-http1.js";
import { cancelledOutcomes, caseHandler, itAnswersLikeConnectNode, outcome, type RandomAnswer } from "./test-support/lean-cases.js";
import { createDynamoTransport } from "./transport.js";

const randomAnswers: RandomAnswer[] = [];

/** Raw answers, chosen by x-case (or x-random: one the property test drew). */
function rawAnswer(req: http.IncomingMessage, res: http.ServerResponse): void {
  const drawn = req.headers["x-random"];
  req.resume();
  if (typeof drawn === "string") {
    const spec = randomAnswers[Number(drawn)]!;
    res.writeHead(spec.status, spec.headers);
    res.end(spec.body);
    return;
  }
  switch (req.headers["x-case"]) {
    case "503-text":
      res.writeHead(503, { "content-type": "text/plain" });
      res.end("busy");
      return;
    case "json-type":
      res.writeHead(200, { "content-type": "application/json" });
      res.end("{}");
      return;
    case "garbage":
      res.writeHead(200, { "content-type": "application/proto" });
      res.end(Buffer.from([0xff, 0xff, 0xff]));
      return;
    case "json-error":
      res.writeHead(429, { "content-type": "application/json", "x-retry": "later" });
      res.end(JSON.stringify({ code: "resource_exhausted", message: "slow down" }));
      return;
    case "break":
      req.socket.destroy();
      return;
    case "break-after-headers":
      res.writeHead(200, { "content-type": "application/proto", "content-length": "10" });
      res.write(Buffer.from([0x08]));
      setTimeout(() => req.socket.destroy(), 10);
      return;
    case "early":
      res.writeHead(413, { "content-type": "application/json", connection: "close" });
      res.end(JSON.stringify({ code: "resource_exhausted", message: "too large" }));
      return;
    case "gzip":
      res.writeHead(200, { "content-type": "application/proto", "content-encoding": "snappy" });
      res.end();
      return;
  }
}

describe("leanHttp1Transport", () => {
  let adapterServer: http.Server;
  let rawServer: http.Server;
  const agents: http.Agent[] = [];
  const port = (server: http.Server) => (server.address() as AddressInfo).port;

  /** Both transports to one server: [lean, connect-node]. */
  const transports = (url: string): [Transport, Transport] => {
    const agent = new http.Agent({ keepAlive: true });
    agents.push(agent);
    const plain = createConnectTransport({ baseUrl: url, httpVersion: "1.1", useBinaryFormat: true });
    return [leanHttp1Transport(plain, url, agent), plain];
  };

  beforeAll(async () => {
    adapterServer = http.createServer(caseHandler);
    rawServer = http.createServer(rawAnswer);
    await Promise.all([adapterServer, rawServer].map((s) => new Promise<void>((ready) => s.listen(0, "127.0.0.1", ready))));
  });
  afterAll(async () => {
    for (const agent of agents) agent.destroy();
    await Promise.all([adapterServer, rawServer].map((s) => new Promise((done) => s.close(done).closeAllConnections())));
  });

  itAnswersLikeConnectNode({
    transports,
    adapterUrl: () => `http://127.0.0.1:${port(adapterServer)}`,
    rawUrl: () => `http://127.0.0.1:${port(rawServer)}`,
    randomAnswers,
  });

  it("takes an answer sent before the request was read, like connect-node", async () => {
    const [lean, plain] = transports(`http://127.0.0.1:${port(rawServer)}`);
    const big = { service: "x".repeat(1_000_000) };
    const outcomes = await Promise.all(
      [lean, plain].map((t) =>
        t.unary(Health.method.check, undefined, 5000, { "x-case": "early" }, big).then(
          () => "answered",
          (err: unknown) => `${Code[ConnectError.from(err).code]}: ${ConnectError.from(err).rawMessage}`,
        ),
      ),
    );
    expect(outcomes[0]).toBe(outcomes[1]);
  });

  it("is cancelled by the caller's signal, before and during the call, and calls go on afterwards", async () => {
    const [lean, plain] = transports(`http://127.0.0.1:${port(adapterServer)}`);
    for (const transport of [lean, plain]) {
      expect(await cancelledOutcomes(transport)).toMatchObject([{ code: "Canceled" }, { code: "Canceled" }]);
    }
    expect(await outcome(lean, "ok")).toMatchObject({ ok: HealthCheckResponse_ServingStatus.SERVING });
  });

  it("serves concurrent calls through a client over the agent's kept-alive connections", async () => {
    let connections = 0;
    const counting = http.createServer(caseHandler).on("connection", () => connections++);
    await new Promise<void>((ready) => counting.listen(0, "127.0.0.1", ready));
    try {
      const [lean] = transports(`http://127.0.0.1:${port(counting)}`);
      const health = createClient(Health, lean);
      for (let round = 0; round < 3; round++) {
        const answers = await Promise.all(Array.from({ length: 20 }, (_, i) => health.check({ service: i % 2 ? "down" : "" })));
        expect(answers.map((a) => a.status)).toEqual(
          Array.from({ length: 20 }, (_, i) => (i % 2 ? HealthCheckResponse_ServingStatus.NOT_SERVING : HealthCheckResponse_ServingStatus.SERVING)),
        );
      }
      // Later rounds reuse the first round's connections.
      expect(connections).toBe(20);
    } finally {
      await new Promise((done) => counting.close(done).closeAllConnections());
    }
  });

  it("is what createDynamoTransport gives for Connect over HTTP/1.1, and close() ends its connections", async () => {
    let open = 0;
    const counting = http.createServer(caseHandler).on("connection", (socket) => {
      open++;
      socket.on("close", () => open--);
    });
    await new Promise<void>((ready) => counting.listen(0, "127.0.0.1", ready));
    try {
      const { transport, close } = createDynamoTransport({ node: `127.0.0.1:${port(counting)}`, httpVersion: "1.1" });
      expect(await outcome(transport, "ok")).toMatchObject({ ok: HealthCheckResponse_ServingStatus.SERVING });
      expect(open).toBe(1);
      close();
      await expect.poll(() => open).toBe(0);
    } finally {
      await new Promise((done) => counting.close(done).closeAllConnections());
    }
  });
});
