// One TCP port for every protocol: HTTP/2 with prior knowledge (gRPC, Connect, gRPC-Web over
// h2c, and node-to-node traffic) and HTTP/1.1 (curl, Connect JSON, gRPC-Web). Each new
// connection is routed by its first bytes: HTTP/2 connections open with the "PRI * HTTP/2.0"
// preface, HTTP/1.1 ones with a method name.
import * as http from "node:http";
import * as http2 from "node:http2";
import * as net from "node:net";

type Handler = (req: http.IncomingMessage | http2.Http2ServerRequest, res: http.ServerResponse | http2.Http2ServerResponse) => void;

const H2_PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");

export class DualProtocolListener {
  private readonly tcp: net.Server;
  private readonly h1: http.Server;
  private readonly h2: http2.Http2Server;
  private readonly sockets = new Set<net.Socket>();
  private readonly sessions = new Set<http2.ServerHttp2Session>();
  private inFlight = 0;
  private drained: (() => void) | undefined;

  constructor(handler: Handler) {
    const counted: Handler = (req, res) => {
      this.inFlight++;
      res.once("close", () => {
        this.inFlight--;
        if (this.inFlight === 0) this.drained?.();
      });
      handler(req, res);
    };
    this.h1 = http.createServer({ keepAliveTimeout: 65_000 }, counted as http.RequestListener);
    this.h2 = http2.createServer({ settings: { maxConcurrentStreams: 1000 } }, counted as (req: http2.Http2ServerRequest, res: http2.Http2ServerResponse) => void);
    this.h2.on("session", (session: http2.ServerHttp2Session) => {
      this.sessions.add(session);
      session.once("close", () => this.sessions.delete(session));
    });
    this.tcp = net.createServer((socket) => this.route(socket));
  }

  private route(socket: net.Socket): void {
    this.sockets.add(socket);
    socket.once("close", () => this.sockets.delete(socket));
    socket.on("error", () => socket.destroy());
    let head = Buffer.alloc(0);
    const onData = (chunk: Buffer) => {
      head = Buffer.concat([head, chunk]);
      const n = Math.min(head.length, H2_PREFACE.length);
      const isH2 = head.subarray(0, n).equals(H2_PREFACE.subarray(0, n));
      // Decide once the bytes seen so far can only be one of the two.
      if (isH2 && head.length < H2_PREFACE.length) return;
      socket.off("data", onData);
      // Pause before unshifting: in flowing mode the unshifted bytes would be emitted at
      // once to no listener. The HTTP/2 session drains the buffer and then reads the
      // socket natively, so only the HTTP/1.1 parser needs the stream resumed.
      socket.pause();
      socket.unshift(head);
      (isH2 ? this.h2 : this.h1).emit("connection", socket);
      if (!isH2) socket.resume();
    };
    socket.on("data", onData);
  }

  listen(port: number, host: string): Promise<net.AddressInfo> {
    return new Promise((resolve, reject) => {
      this.tcp.once("error", reject);
      this.tcp.listen(port, host, () => {
        this.tcp.off("error", reject);
        resolve(this.tcp.address() as net.AddressInfo);
      });
    });
  }

  /**
   * Stops accepting connections, lets in-flight requests finish for up to `graceMs`,
   * asks HTTP/2 clients to go away (GOAWAY), then closes whatever is left. Resolves with the
   * number of requests it had to cut off.
   */
  async close(graceMs: number): Promise<{ cutOff: number }> {
    const closed = new Promise<void>((resolve) => this.tcp.close(() => resolve()));
    for (const session of this.sessions) session.close();
    this.h1.closeIdleConnections();
    if (this.inFlight > 0) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, graceMs);
        this.drained = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
    // Requests still running once the grace period is over are cut off with their connections.
    const cutOff = this.inFlight;
    for (const session of this.sessions) session.destroy();
    for (const socket of this.sockets) socket.destroy();
    await closed;
    return { cutOff };
  }
}
