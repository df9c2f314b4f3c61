// DualProtocolListener against real sockets on 127.0.0.1, with small timeouts: which
// connections and streams are closed, reset or refused, and which survive. Timeouts are passed
// small so the tests run fast; they assert outcomes (closed, reset, refused), not durations.
import * as http from "node:http";
import * as http2 from "node:http2";
import * as net from "node:net";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { connectNodeAdapter, createConnectTransport, createGrpcTransport, Http2SessionManager } from "@connectrpc/connect-node";
import { KVService } from "@dynamo-ts/proto";
import { afterEach, describe, expect, test } from "vitest";
import { DualProtocolListener, type ListenerOptions } from "./listener.js";

type AnyHandler = ConstructorParameters<typeof DualProtocolListener>[0];

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function start(handler: AnyHandler, options: ListenerOptions = {}): Promise<{ listener: DualProtocolListener; port: number; url: string }> {
  const listener = new DualProtocolListener(handler, options);
  const { port } = await listener.listen(0, "127.0.0.1");
  cleanups.push(() => listener.close(0));
  return { listener, port, url: `http://127.0.0.1:${port}` };
}

/** Answers with the number of body bytes once the body has ended. */
const countingHandler: AnyHandler = (req, res) => {
  let n = 0;
  req.on("data", (chunk: Buffer) => (n += chunk.length));
  req.on("end", () => {
    (res as http.ServerResponse).writeHead(200, { "content-type": "text/plain", "content-length": String(String(n).length) });
    res.end(String(n));
  });
};

function rawSocket(port: number): net.Socket {
  const socket = net.connect(port, "127.0.0.1");
  socket.on("error", () => {});
  cleanups.push(() => socket.destroy());
  return socket;
}

function h2Session(url: string, options: http2.ClientSessionOptions = {}): http2.ClientHttp2Session {
  const session = http2.connect(url, options);
  session.on("error", () => {});
  cleanups.push(() => session.destroy());
  return session;
}

/** Resolves with the event's arguments; rejects if it has not happened within `ms`. */
function once<T extends unknown[] = unknown[]>(emitter: NodeJS.EventEmitter, event: string, ms = 5_000): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no "${event}" within ${ms} ms`)), ms);
    emitter.once(event, (...args: unknown[]) => {
      clearTimeout(timer);
      resolve(args as T);
    });
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Whether `socket` is still open after `ms`. */
async function stillOpenAfter(socket: net.Socket | http2.ClientHttp2Session, ms: number): Promise<boolean> {
  await sleep(ms);
  return !socket.destroyed && !socket.closed;
}

function h2Get(session: http2.ClientHttp2Session, path = "/"): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = session.request({ ":path": path });
    let body = "";
    let status = 0;
    req.setEncoding("utf8");
    req.on("response", (h) => (status = Number(h[":status"])));
    req.on("data", (c: string) => (body += c));
    req.on("end", () => resolve({ status, body }));
    req.on("error", reject);
    req.end();
  });
}

function h1Request(
  port: number,
  options: http.RequestOptions = {},
  body?: string | Buffer,
): Promise<{ status: number; body: string; headers: http.IncomingHttpHeaders }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: "127.0.0.1", port, agent: false, ...options }, (res) => {
      let text = "";
      res.setEncoding("utf8");
      res.on("data", (c: string) => (text += c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body: text, headers: res.headers }));
    });
    req.on("error", reject);
    req.end(body);
  });
}

describe("a message over readMaxBytes (defect A)", () => {
  const readMaxBytes = 64 * 1024;
  const kvHandler = () =>
    connectNodeAdapter({
      readMaxBytes,
      routes: (router) => router.service(KVService, { put: async (req) => ({ context: new Uint8Array([req.value.length % 256]) }) }),
    });

  test("fails alone: later calls on the same HTTP/2 session succeed (Connect binary, as between nodes)", async () => {
    const { listener, url } = await start(kvHandler());
    const sessions = new Http2SessionManager(url);
    cleanups.push(() => sessions.abort());
    const client = createClient(KVService, createConnectTransport({ baseUrl: url, httpVersion: "2", useBinaryFormat: true, sessionManager: sessions }));
    // Eight messages of 2 MiB: 16 MiB of refused bodies, past a Node client's 10 MB session budget.
    for (let i = 0; i < 8; i++) {
      const err = await client.put({ key: "k", value: new Uint8Array(2 * 1024 * 1024) }, { timeoutMs: 5_000 }).then(
        () => undefined,
        (e: unknown) => ConnectError.from(e),
      );
      expect(err?.code, `oversized message ${i}: ${err?.message}`).toBe(Code.ResourceExhausted);
    }
    for (let i = 0; i < 3; i++) {
      const res = await client.put({ key: "k", value: new Uint8Array(10) }, { timeoutMs: 5_000 });
      expect(res.context).toEqual(new Uint8Array([10]));
    }
    const stats = listener.stats();
    expect(stats.acceptedConnections).toBe(1); // all of it over one session
    expect(stats.unreadBodiesDiscarded).toBe(8);
    expect(stats.unreadBodiesCut).toBe(0);
  });

  test("fails alone over gRPC too", async () => {
    const { url } = await start(kvHandler());
    const sessions = new Http2SessionManager(url);
    cleanups.push(() => sessions.abort());
    const client = createClient(KVService, createGrpcTransport({ baseUrl: url, sessionManager: sessions }));
    for (let i = 0; i < 7; i++) {
      await expect(client.put({ key: "k", value: new Uint8Array(2 * 1024 * 1024) }, { timeoutMs: 5_000 })).rejects.toMatchObject({
        code: Code.ResourceExhausted,
      });
    }
    expect((await client.put({ key: "k", value: new Uint8Array(3) }, { timeoutMs: 5_000 })).context).toEqual(new Uint8Array([3]));
  });

  test("fails alone when its content-length announces it (refused before a byte is read)", async () => {
    const { url } = await start(kvHandler());
    const session = h2Session(url);
    const post = (size: number) =>
      new Promise<{ status: number; rst: number }>((resolve, reject) => {
        const req = session.request({
          ":method": "POST",
          ":path": "/dynamo.v1.KVService/Put",
          "content-type": "application/proto",
          "content-length": String(size),
        });
        let status = 0;
        req.on("response", (h) => (status = Number(h[":status"])));
        req.on("error", reject);
        req.resume();
        req.on("close", () => resolve({ status, rst: req.rstCode ?? 0 }));
        req.end(Buffer.alloc(size));
      });
    for (let i = 0; i < 8; i++) expect((await post(2 * 1024 * 1024)).status).toBe(429); // resource_exhausted
    expect(await post(0)).toEqual({ status: 200, rst: 0 });
  });

  test("a body past maxDiscardBytes is cut off, and the session still works", async () => {
    const { listener, url } = await start(kvHandler(), { maxDiscardBytes: 256 * 1024 });
    const sessions = new Http2SessionManager(url);
    cleanups.push(() => sessions.abort());
    const client = createClient(KVService, createConnectTransport({ baseUrl: url, httpVersion: "2", useBinaryFormat: true, sessionManager: sessions }));
    await expect(client.put({ key: "k", value: new Uint8Array(1024 * 1024) }, { timeoutMs: 5_000 })).rejects.toMatchObject({ code: Code.ResourceExhausted });
    expect((await client.put({ key: "k", value: new Uint8Array(5) }, { timeoutMs: 5_000 })).context).toEqual(new Uint8Array([5]));
    expect(listener.stats().unreadBodiesCut).toBe(1);
  });

  test("over HTTP/1.1 the connection serves the next request", async () => {
    const { listener, port } = await start(kvHandler());
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    cleanups.push(() => agent.destroy());
    const put = (size: number) =>
      h1Request(port, { agent, method: "POST", path: "/dynamo.v1.KVService/Put", headers: { "content-type": "application/proto" } }, "x".repeat(size));
    expect((await put(1024 * 1024)).status).toBe(429); // resource_exhausted
    expect((await put(0)).status).toBe(200);
    expect(listener.stats()).toMatchObject({ acceptedConnections: 1, unreadBodiesDiscarded: 1 });
  });

  // A gRPC-Web body is read up to its envelope's length before it is refused: connect destroys
  // the request with the rest of the body unread, which used to leave the connection silent.
  const grpcWebPut = (port: number, agent: http.Agent, messageBytes: number) => {
    const body = Buffer.alloc(5 + messageBytes);
    body.writeUInt32BE(messageBytes, 1);
    const headers = { "content-type": "application/grpc-web+proto", "x-grpc-web": "1", "content-length": String(body.length) };
    return h1Request(port, { agent, method: "POST", path: "/dynamo.v1.KVService/Put", headers }, body);
  };

  test("over HTTP/1.1, a gRPC-Web message refused after its envelope was read leaves the connection serving", async () => {
    const { listener, port } = await start(kvHandler());
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    cleanups.push(() => agent.destroy());
    for (let i = 0; i < 3; i++) {
      const refused = await grpcWebPut(port, agent, 1024 * 1024 + i);
      expect(refused.body).toContain("grpc-status: 8"); // resource_exhausted
      const next = await grpcWebPut(port, agent, 0);
      expect(next.body).toContain("grpc-status: 0");
    }
    expect(listener.stats()).toMatchObject({ acceptedConnections: 1, unreadBodiesDiscarded: 3, unreadBodiesCut: 0 });
  });

  test("over HTTP/1.1, a refused body past maxDiscardBytes closes its connection, and a new one serves", async () => {
    const { listener, port } = await start(kvHandler(), { maxDiscardBytes: 128 * 1024 });
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    cleanups.push(() => agent.destroy());
    // The answer may or may not reach the client before its connection is closed mid-upload.
    await grpcWebPut(port, agent, 4 * 1024 * 1024).catch(() => undefined);
    expect((await grpcWebPut(port, agent, 0)).body).toContain("grpc-status: 0");
    expect(listener.stats()).toMatchObject({ unreadBodiesDiscarded: 1, unreadBodiesCut: 1 });
  });
});

describe("connections that never complete a request", () => {
  const options = { firstRequestTimeoutMs: 200, idleConnectionTimeoutMs: 60_000 };

  test("a silent socket is closed", async () => {
    const { listener, port } = await start(countingHandler, options);
    const socket = rawSocket(port);
    await once(socket, "close");
    expect(listener.stats().firstRequestTimeouts).toBe(1);
  });

  test("a socket that sent half the HTTP/2 preface is closed", async () => {
    const { port } = await start(countingHandler, options);
    const socket = rawSocket(port);
    socket.write("PRI * HTTP/2.0\r\n");
    await once(socket, "close");
  });

  test("trickled HTTP/1.1 headers are answered 408 and closed", async () => {
    const { listener, port } = await start(countingHandler, options);
    const socket = rawSocket(port);
    let received = "";
    socket.on("data", (c: Buffer) => (received += c.toString()));
    socket.write("GET / HTTP/1.1\r\n");
    const trickle = setInterval(() => socket.writable && socket.write("x-a: b\r\n"), 40);
    cleanups.push(() => clearInterval(trickle));
    await once(socket, "close");
    expect(received).toMatch(/^HTTP\/1\.1 408 /);
    expect(listener.stats().firstRequestTimeouts).toBe(1);
  });

  test("an HTTP/2 session that never opens a stream is sent GOAWAY and closed", async () => {
    const { port } = await start(countingHandler, options);
    const session = h2Session(`http://127.0.0.1:${port}`);
    const [code] = await once<[number]>(session, "goaway");
    expect(code).toBe(http2.constants.NGHTTP2_NO_ERROR);
    await once(session, "close");
  });

  test("an HTTP/2 session that only pings is closed", async () => {
    const { port } = await start(countingHandler, options);
    const session = h2Session(`http://127.0.0.1:${port}`);
    const pinger = setInterval(() => !session.closed && !session.destroyed && session.ping(() => {}), 30);
    cleanups.push(() => clearInterval(pinger));
    await once(session, "close");
  });

  test("a connection that completes its request in time is not closed by the first-request rule", async () => {
    const { listener, url } = await start(countingHandler, options);
    const session = h2Session(url);
    expect(await h2Get(session)).toEqual({ status: 200, body: "0" });
    expect(await stillOpenAfter(session, 500)).toBe(true);
    expect(listener.stats().firstRequestTimeouts).toBe(0);
  });
});

describe("idle connections", () => {
  const options = { firstRequestTimeoutMs: 60_000, idleConnectionTimeoutMs: 250 };

  test("an HTTP/2 session with no open stream is sent GOAWAY and closed", async () => {
    const { listener, url } = await start(countingHandler, options);
    const session = h2Session(url);
    expect((await h2Get(session)).status).toBe(200);
    const [code] = await once<[number]>(session, "goaway");
    expect(code).toBe(http2.constants.NGHTTP2_NO_ERROR);
    await once(session, "close");
    expect(listener.stats().idleConnectionTimeouts).toBe(1);
  });

  test("an HTTP/2 session that only pings after its last request is closed", async () => {
    const { url } = await start(countingHandler, options);
    const session = h2Session(url);
    expect((await h2Get(session)).status).toBe(200);
    const pinger = setInterval(() => !session.closed && !session.destroyed && session.ping(() => {}), 30);
    cleanups.push(() => clearInterval(pinger));
    await once(session, "close");
  });

  test("an HTTP/2 session with an open stream is not idle", async () => {
    const { url } = await start(countingHandler, { ...options, streamIdleTimeoutMs: 0 });
    const session = h2Session(url);
    const req = session.request({ ":method": "POST", ":path": "/" });
    req.on("error", () => {});
    req.write("partial");
    expect(await stillOpenAfter(session, 800)).toBe(true);
    req.end();
    const [headers] = await once<[http2.IncomingHttpHeaders]>(req, "response");
    expect(headers[":status"]).toBe(200);
  });

  test("an HTTP/1.1 keep-alive connection is closed between requests", async () => {
    const { listener, port } = await start(countingHandler, options);
    const socket = rawSocket(port);
    let received = "";
    socket.on("data", (c: Buffer) => (received += c.toString()));
    socket.write("GET / HTTP/1.1\r\nhost: x\r\n\r\n");
    await once(socket, "close");
    expect(received).toMatch(/^HTTP\/1\.1 200 /);
    expect(listener.stats().idleConnectionTimeouts).toBe(1);
  });

  test("an HTTP/1.1 request slower than the idle timeout is not cut off", async () => {
    const slow: AnyHandler = (_req, res) => setTimeout(() => res.end("late"), 600);
    const { port } = await start(slow, options);
    expect(await h1Request(port)).toMatchObject({ status: 200, body: "late" });
  });
});

describe("streams with a stalled request body", () => {
  const trusted = (headers: Readonly<Record<string, string | string[] | undefined>>) => headers["x-test-trusted"] === "yes";
  const options = { firstRequestTimeoutMs: 60_000, idleConnectionTimeoutMs: 60_000, streamIdleTimeoutMs: 250, isTrusted: trusted };

  test("HTTP/2: an untrusted partial body is reset, a trusted one on the same session survives", async () => {
    const { listener, url } = await start(countingHandler, options);
    const session = h2Session(url);
    const untrusted = session.request({ ":method": "POST", ":path": "/" });
    untrusted.on("error", () => {});
    untrusted.write("partial");
    const trustedReq = session.request({ ":method": "POST", ":path": "/", "x-test-trusted": "yes" });
    trustedReq.on("error", () => {});
    trustedReq.write("partial");
    await once(untrusted, "close");
    expect(untrusted.rstCode).toBe(http2.constants.NGHTTP2_CANCEL);
    expect(listener.stats().streamIdleResets).toBe(1);
    await sleep(600);
    expect(trustedReq.closed).toBe(false);
    expect(session.closed).toBe(false);
    let body = "";
    trustedReq.setEncoding("utf8");
    trustedReq.on("data", (c: string) => (body += c));
    trustedReq.end("-rest");
    await once(trustedReq, "end");
    expect(body).toBe(String("partial-rest".length));
  });

  test("HTTP/2: a slow body that keeps arriving is not reset", async () => {
    const { url } = await start(countingHandler, options);
    const session = h2Session(url);
    const req = session.request({ ":method": "POST", ":path": "/" });
    req.on("error", () => {});
    for (let i = 0; i < 8; i++) {
      req.write("x");
      await sleep(100);
    }
    let body = "";
    req.setEncoding("utf8");
    req.on("data", (c: string) => (body += c));
    req.end();
    await once(req, "end");
    expect(body).toBe("8");
  });

  test("HTTP/2: a stream whose body has ended may take longer than the stream idle timeout", async () => {
    const slow: AnyHandler = (req, res) => {
      req.resume();
      req.on("end", () => setTimeout(() => res.end("done"), 700));
    };
    const { url } = await start(slow, options);
    const session = h2Session(url);
    const req = session.request({ ":method": "POST", ":path": "/" });
    let body = "";
    req.setEncoding("utf8");
    req.on("data", (c: string) => (body += c));
    req.end("all of it");
    await once(req, "end");
    expect(body).toBe("done");
  });

  test("HTTP/1.1: an untrusted partial body closes its connection, a trusted one survives", async () => {
    const { listener, port } = await start(countingHandler, options);
    const untrusted = rawSocket(port);
    untrusted.write("POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\n\r\npartial");
    const trustedSocket = rawSocket(port);
    let received = "";
    trustedSocket.on("data", (c: Buffer) => (received += c.toString()));
    trustedSocket.write("POST / HTTP/1.1\r\nhost: x\r\nx-test-trusted: yes\r\ncontent-length: 12\r\n\r\npartial");
    await once(untrusted, "close");
    expect(listener.stats().streamIdleResets).toBe(1);
    expect(await stillOpenAfter(trustedSocket, 600)).toBe(true);
    trustedSocket.write("-rest");
    while (!received.endsWith("12")) await once(trustedSocket, "data");
    expect(received).toMatch(/^HTTP\/1\.1 200 /);
  });
});

describe("the connection cap", () => {
  const options = { maxConnections: 2, refusalTimeoutMs: 1_000 };

  async function fill(port: number): Promise<net.Socket[]> {
    const sockets = [rawSocket(port), rawSocket(port)];
    await Promise.all(sockets.map((s) => once(s, "connect")));
    await sleep(50); // accepted by the server
    return sockets;
  }

  test("HTTP/1.1 over the cap gets 503 with a plain-text reason", async () => {
    const { listener, port } = await start(countingHandler, options);
    await fill(port);
    const res = await h1Request(port);
    expect(res.status).toBe(503);
    expect(res.headers["content-type"]).toMatch(/^text\/plain/);
    expect(res.body).toMatch(/too many connections/);
    const stats = listener.stats();
    expect(stats.refusedConnections).toBe(1);
    expect(stats.openConnections).toBe(2);
  });

  test("HTTP/2 over the cap gets SETTINGS and GOAWAY ENHANCE_YOUR_CALM 'too many connections'", async () => {
    const { listener, url, port } = await start(countingHandler, options);
    await fill(port);
    const session = h2Session(url);
    const settings = once(session, "remoteSettings");
    const [code, lastStreamId, data] = await once<[number, number, Buffer]>(session, "goaway");
    await settings;
    expect(code).toBe(http2.constants.NGHTTP2_ENHANCE_YOUR_CALM);
    expect(lastStreamId).toBe(0);
    expect(data.toString()).toMatch(/too many connections/);
    await once(session, "close");
    expect(listener.stats().refusedConnections).toBe(1);
  });

  test("a Connect client over the cap gets an error that says why", async () => {
    const { url, port } = await start(countingHandler, options);
    await fill(port);
    const sessions = new Http2SessionManager(url);
    cleanups.push(() => sessions.abort());
    const client = createClient(KVService, createConnectTransport({ baseUrl: url, httpVersion: "2", sessionManager: sessions }));
    const err = await client.put({ key: "k" }, { timeoutMs: 5_000 }).then(
      () => undefined,
      (e: unknown) => ConnectError.from(e),
    );
    // Node's client reports the GOAWAY code, not its debug data.
    expect(err?.message).toMatch(/error code 11\b|ENHANCE_YOUR_CALM/);
  });

  test("a connection that closes makes room for a new one", async () => {
    const { port } = await start(countingHandler, options);
    const [first] = await fill(port);
    first!.destroy();
    await sleep(50);
    expect((await h1Request(port)).status).toBe(200);
  });

  test("a connection over the cap that shows no protocol is closed", async () => {
    const { listener, port } = await start(countingHandler, { ...options, refusalTimeoutMs: 100 });
    await fill(port);
    const socket = rawSocket(port);
    await once(socket, "close");
    expect(listener.stats().openConnections).toBe(2);
  });
});

describe("graceful close", () => {
  test("in-flight requests finish, new connections are refused, HTTP/2 clients get GOAWAY", async () => {
    const slow: AnyHandler = (_req, res) => setTimeout(() => res.end("finished"), 300);
    const listener = new DualProtocolListener(slow, { idleConnectionTimeoutMs: 100, firstRequestTimeoutMs: 100 });
    const { port } = await listener.listen(0, "127.0.0.1");
    const session = h2Session(`http://127.0.0.1:${port}`);
    const goaway = once(session, "goaway");
    const h2Pending = h2Get(session);
    const h1Pending = h1Request(port);
    await sleep(100);
    const closing = listener.close(5_000);
    await goaway;
    await expect(h1Request(port)).rejects.toThrow(/ECONNREFUSED/);
    expect(await h2Pending).toEqual({ status: 200, body: "finished" });
    expect(await h1Pending).toMatchObject({ status: 200, body: "finished" });
    expect(await closing).toEqual({ cutOff: 0 });
  });

  test("requests still running after the grace period are cut off", async () => {
    const never: AnyHandler = () => {};
    const listener = new DualProtocolListener(never);
    const { port } = await listener.listen(0, "127.0.0.1");
    const session = h2Session(`http://127.0.0.1:${port}`);
    const pending = h2Get(session).catch(() => ({ status: 0, body: "" }));
    await sleep(100);
    expect(await listener.close(100)).toEqual({ cutOff: 1 });
    expect(await pending).toEqual({ status: 0, body: "" }); // no answer: the stream was cut off
  });
});

test("stats() counts open connections by protocol", async () => {
  const { listener, url, port } = await start(countingHandler);
  const session = h2Session(url);
  await h2Get(session);
  const agent = new http.Agent({ keepAlive: true });
  cleanups.push(() => agent.destroy());
  await h1Request(port, { agent });
  rawSocket(port);
  await sleep(50);
  expect(listener.stats()).toEqual({
    openConnections: 3,
    openHttp1Connections: 1,
    openHttp2Connections: 1,
    acceptedConnections: 3,
    refusedConnections: 0,
    droppedConnections: 0,
    firstRequestTimeouts: 0,
    idleConnectionTimeouts: 0,
    streamIdleResets: 0,
    unreadBodiesDiscarded: 0,
    unreadBodiesCut: 0,
    tlsHandshakeFailures: 0,
  });
});

test("options out of range are refused", () => {
  expect(() => new DualProtocolListener(countingHandler, { maxConnections: 0 })).toThrow(/maxConnections/);
  expect(() => new DualProtocolListener(countingHandler, { streamIdleTimeoutMs: -1 })).toThrow(/streamIdleTimeoutMs/);
  expect(() => new DualProtocolListener(countingHandler, { idleConnectionTimeoutMs: 2 ** 31 })).toThrow(/idleConnectionTimeoutMs/);
});
