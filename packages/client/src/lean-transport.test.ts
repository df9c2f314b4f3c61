// The lean unary calling side against connect-node's transport: every case goes through both,
// against a connect-node server and against a raw HTTP/2 server that answers badly, and both
// must come out the same (the message, or the code, message and metadata of the error).
import * as http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { Code, ConnectError, createClient, type Transport } from "@connectrpc/connect";
import { createConnectTransport, Http2SessionManager } from "@connectrpc/connect-node";
import { Health, HealthCheckResponse_ServingStatus } from "@dynamo-ts/proto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { stoppedAnswering } from "./cli.js";
import { neverSent } from "./errors.js";
import { leanUnaryTransport } from "./lean-transport.js";
import { cancelledOutcomes, caseHandler, errorsOf, itAnswersLikeConnectNode, outcome, type RandomAnswer } from "./test-support/lean-cases.js";

const randomAnswers: RandomAnswer[] = [];

/** Raw answers to /grpc.health.v1.Health/Check, chosen by x-case. */
function rawAnswer(stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders): void {
  const kase = headers["x-case"];
  const drawn = headers["x-random"];
  if (typeof drawn === "string") {
    const spec = randomAnswers[Number(drawn)]!;
    stream.resume();
    stream.on("error", () => {});
    stream.respond({ ":status": spec.status, ...spec.headers });
    stream.end(spec.body);
    return;
  }
  stream.resume();
  stream.on("error", () => {});
  switch (kase) {
    case "503-text":
      stream.respond({ ":status": 503, "content-type": "text/plain" });
      stream.end("busy");
      return;
    case "json-type":
      stream.respond({ ":status": 200, "content-type": "application/json" });
      stream.end("{}");
      return;
    case "garbage":
      stream.respond({ ":status": 200, "content-type": "application/proto" });
      stream.end(Buffer.from([0xff, 0xff, 0xff]));
      return;
    case "json-error":
      stream.respond({ ":status": 429, "content-type": "application/json", "x-retry": "later" });
      stream.end(JSON.stringify({ code: "resource_exhausted", message: "slow down" }));
      return;
    case "refused":
      stream.close(http2.constants.NGHTTP2_REFUSED_STREAM);
      return;
    case "break":
      stream.session?.destroy();
      return;
    case "break-after-headers":
      stream.respond({ ":status": 200, "content-type": "application/proto" });
      stream.write(Buffer.from([0x08]));
      setTimeout(() => stream.session?.destroy(), 10);
      return;
    case "early":
      // Answers at once, without reading the (large) request: a server that refuses a body.
      stream.respond({ ":status": 413, "content-type": "application/json" });
      stream.end(JSON.stringify({ code: "resource_exhausted", message: "too large" }));
      return;
    case "gzip":
      stream.respond({ ":status": 200, "content-type": "application/proto", "content-encoding": "snappy" });
      stream.end(Buffer.alloc(0));
      return;
  }
}

describe("leanUnaryTransport", () => {
  let adapterServer: http2.Http2Server;
  let rawServer: http2.Http2Server;
  const managers: Http2SessionManager[] = [];
  const port = (server: http2.Http2Server) => (server.address() as AddressInfo).port;

  /** Both transports to one server: [lean, connect-node]. */
  const transports = (url: string): [Transport, Transport] => {
    const lean = new Http2SessionManager(url);
    const plain = new Http2SessionManager(url);
    managers.push(lean, plain);
    return [
      leanUnaryTransport(createConnectTransport({ baseUrl: url, httpVersion: "2", sessionManager: lean, useBinaryFormat: true }), lean),
      createConnectTransport({ baseUrl: url, httpVersion: "2", sessionManager: plain, useBinaryFormat: true }),
    ];
  };

  beforeAll(async () => {
    adapterServer = http2.createServer(caseHandler);
    rawServer = http2.createServer().on("stream", rawAnswer);
    await Promise.all([adapterServer, rawServer].map((s) => new Promise<void>((ready) => s.listen(0, "127.0.0.1", ready))));
  });
  afterAll(async () => {
    for (const m of managers) m.abort();
    await Promise.all([adapterServer, rawServer].map((s) => new Promise((done) => s.close(done))));
  });

  itAnswersLikeConnectNode({
    transports,
    adapterUrl: () => `http://127.0.0.1:${port(adapterServer)}`,
    rawUrl: () => `http://127.0.0.1:${port(rawServer)}`,
    randomAnswers,
  });

  it("leaves none of a call's listeners on its stream once the stream has closed", async () => {
    // node:http2 keeps each request's stream reachable until a full GC; a listener left on it
    // would keep the call's closures, promise and answer with it (lean-transport.ts).
    /**
     * Records the listeners added to each stream request() hands out until the microtasks of that
     * turn have run: the transport's, which it adds as soon as it gets the stream, not the ones
     * node:http2 adds for itself later on (e.g. on "end" and "finish").
     */
    class CapturingManager extends Http2SessionManager {
      readonly added: Array<{ stream: http2.ClientHttp2Stream; event: string | symbol; listener: (...args: unknown[]) => void }> = [];
      readonly streams: http2.ClientHttp2Stream[] = [];
      override async request(...args: Parameters<Http2SessionManager["request"]>): Promise<http2.ClientHttp2Stream> {
        const stream = await super.request(...args);
        this.streams.push(stream);
        const on = stream.on.bind(stream);
        let recording = true;
        process.nextTick(() => (recording = false));
        stream.on = ((event: string | symbol, listener: (...args: unknown[]) => void) => {
          if (recording) this.added.push({ stream, event, listener });
          return on(event, listener);
        }) as typeof stream.on;
        return stream;
      }
    }
    const cases = [
      [adapterServer, "ok", {}],
      [adapterServer, "not-found", {}],
      [adapterServer, "slow", { timeoutMs: 50 }],
      [rawServer, "garbage", {}],
      [rawServer, "refused", {}],
      [rawServer, "break-after-headers", {}],
    ] as const;
    for (const [server, caseName, options] of cases) {
      const url = `http://127.0.0.1:${port(server)}`;
      const manager = new CapturingManager(url);
      managers.push(manager);
      const lean = leanUnaryTransport(createConnectTransport({ baseUrl: url, httpVersion: "2", sessionManager: manager, useBinaryFormat: true }), manager);
      await outcome(lean, caseName, options);
      expect(manager.streams).toHaveLength(1);
      const stream = manager.streams[0]!;
      if (!stream.closed || !stream.destroyed) await new Promise((closed) => stream.once("close", closed));
      await new Promise((tick) => setImmediate(tick));
      expect(manager.added.map(({ event }) => String(event)).sort()).toEqual(["close", "data", "end", "error", "response"]);
      const left = manager.added.filter(({ event, listener }) => stream.listeners(event).includes(listener)).map(({ event }) => String(event));
      expect({ caseName, left }).toEqual({ caseName, left: [] });
    }
  });

  it("takes an answer sent before the request was read, like connect-node, without a deadline", async () => {
    const [lean, plain] = transports(`http://127.0.0.1:${port(rawServer)}`);
    const big = { service: "x".repeat(1_000_000) };
    const outcomes = await Promise.all(
      [lean, plain].map((t) =>
        t.unary(Health.method.check, undefined, undefined, { "x-case": "early" }, big).then(
          () => "answered",
          (err: unknown) => `${Code[ConnectError.from(err).code]}: ${ConnectError.from(err).rawMessage}`,
        ),
      ),
    );
    expect(outcomes[0]).toBe(outcomes[1]);
    expect(outcomes[0]).toBe("ResourceExhausted: too large");
  });

  it("is cancelled by the caller's signal, before and during the call", async () => {
    const [lean, plain] = transports(`http://127.0.0.1:${port(adapterServer)}`);
    for (const transport of [lean, plain]) {
      expect(await cancelledOutcomes(transport)).toMatchObject([{ code: "Canceled" }, { code: "Canceled" }]);
    }
    // The session is still usable after the reset streams.
    expect(await outcome(lean, "ok")).toMatchObject({ ok: HealthCheckResponse_ServingStatus.SERVING });
  });

  it("reports a stream the server refused unprocessed (REFUSED_STREAM) as never sent, and as Unavailable where connect-node says Internal", async () => {
    const [lean, plain] = transports(`http://127.0.0.1:${port(rawServer)}`);
    const errors = await errorsOf([lean, plain], undefined, { "x-case": "refused" });
    expect(errors.map((e) => [Code[e.code], neverSent(e), stoppedAnswering(e)])).toEqual([
      ["Unavailable", true, true],
      ["Internal", true, true],
    ]);
    expect(errors[0]!.rawMessage).toBe("http/2 stream closed with error code REFUSED_STREAM (0x7)");
    expect(errors[1]!.rawMessage).toBe("Stream closed with error code NGHTTP2_REFUSED_STREAM");
    // A stream reset with another code was processed, or may have been: not "never sent".
    const reset = await lean.unary(Health.method.check, undefined, undefined, { "x-case": "break-after-headers" }, { service: "" }).then(
      () => expect.fail("answered"),
      (err: unknown) => ConnectError.from(err),
    );
    expect([Code[reset.code], neverSent(reset)]).toEqual(["Canceled", false]);
  });

  it("serves concurrent calls through a client on one session", async () => {
    const [lean] = transports(`http://127.0.0.1:${port(adapterServer)}`);
    const health = createClient(Health, lean);
    const answers = await Promise.all(Array.from({ length: 50 }, (_, i) => health.check({ service: i % 2 ? "down" : "" })));
    expect(answers.map((a) => a.status)).toEqual(
      Array.from({ length: 50 }, (_, i) => (i % 2 ? HealthCheckResponse_ServingStatus.NOT_SERVING : HealthCheckResponse_ServingStatus.SERVING)),
    );
  });
});
