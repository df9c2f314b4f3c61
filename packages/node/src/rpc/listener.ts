// One TCP port for every protocol: HTTP/2 with prior knowledge (gRPC, Connect, gRPC-Web over
// h2c, and node-to-node traffic) and HTTP/1.1 (curl, Connect JSON, gRPC-Web). Each new
// connection is routed by its first bytes: HTTP/2 connections open with the "PRI * HTTP/2.0"
// preface, HTTP/1.1 ones with a method name.
//
// Every connection is bounded in time and number:
// - a connection must complete the headers of a request within `firstRequestTimeoutMs` of being
//   accepted (silent sockets, half a preface, trickled headers, an h2 session without a stream);
// - a connection with no request in progress (an HTTP/1.1 keep-alive connection between
//   requests, an HTTP/2 session without open streams; PINGs do not count) is closed after
//   `idleConnectionTimeoutMs` (HTTP/2: GOAWAY, then close);
// - a request whose body has not ended and on which nothing arrived for `streamIdleTimeoutMs` is
//   reset (HTTP/1.1: its connection is closed), unless its headers satisfy `isTrusted` (the
//   cluster's own long-lived streams); once the body has ended, the handler's deadlines apply;
// - beyond `maxConnections` open connections a new one is told so (HTTP/1.1: 503; HTTP/2:
//   SETTINGS + GOAWAY ENHANCE_YOUR_CALM "too many connections") and closed.
// A request answered before its body was read (a message over the handler's size limit) has the
// rest of its body read and discarded, so that the client can finish sending it: a Node client
// whose stream is reset with request data still queued keeps that data counted against its
// session's memory budget for good, and once that budget (10 MB by default) is used up it refuses
// every response on the session with ENHANCE_YOUR_CALM.
import * as http from "node:http";
import * as http2 from "node:http2";
import * as net from "node:net";
import * as tls from "node:tls";

type Handler = (req: http.IncomingMessage | http2.Http2ServerRequest, res: http.ServerResponse | http2.Http2ServerResponse) => void;
import { detectProtocol, h2Refusal } from "./connection-sniffing.js";
import { type ListenerOptions, type ListenerStats, type RequestHeaders, resolveOptions } from "./listener-options.js";

export { LISTENER_DEFAULTS, type ListenerOptions, type ListenerStats, type RequestHeaders } from "./listener-options.js";

/** A socket this listener ended is destroyed if the other side has not closed it by then. */
const LINGER_MS = 1_000;
/** Connections over the cap that may be waiting for their refusal at once; beyond, they are dropped. */
const REFUSAL_SLOTS = 64;
const MAX_CONCURRENT_STREAMS = 1000;
/** How often the progress of a dumped HTTP/1.1 body is compared with maxDiscardBytes. */
const DISCARD_CHECK_MS = 100;

type Protocol = "pending" | "http1" | "http2";

interface Connection {
  readonly socket: net.Socket;
  protocol: Protocol;
  session: http2.ServerHttp2Session | undefined;
  /** Requests (HTTP/1.1) or streams (HTTP/2) in progress. */
  active: number;
  /** The headers of a request have been received. */
  served: boolean;
  /** The first-request timer, then the idle timer. */
  timer: NodeJS.Timeout | undefined;
}

export class DualProtocolListener {
  private readonly tcp: net.Server;
  private readonly h1: http.Server;
  private readonly h2: http2.Http2Server;
  private readonly connections = new Map<net.Socket, Connection>();
  private readonly refusing = new Set<net.Socket>();
  private readonly sessions = new Set<http2.ServerHttp2Session>();
  /** The connection being handed to the HTTP/2 server (its "session" event is synchronous). */
  private handingOff: Connection | undefined;
  private readonly options: Required<Omit<ListenerOptions, "isTrusted" | "tls">>;
  private readonly tlsOptions: (() => tls.SecureContextOptions) | undefined;
  private readonly tlsServer: tls.Server | undefined;
  private readonly isTrusted: (headers: RequestHeaders) => boolean;
  private readonly counts = {
    accepted: 0,
    refused: 0,
    dropped: 0,
    firstRequestTimeouts: 0,
    idleConnectionTimeouts: 0,
    streamIdleResets: 0,
    unreadBodiesDiscarded: 0,
    unreadBodiesCut: 0,
    tlsHandshakeFailures: 0,
  };
  private closing = false;
  private inFlight = 0;
  private drained: (() => void) | undefined;

  constructor(handler: Handler, options: ListenerOptions = {}) {
    this.options = resolveOptions(options);
    this.isTrusted = options.isTrusted ?? (() => false);
    this.tlsOptions = options.tls;
    const { firstRequestTimeoutMs, idleConnectionTimeoutMs } = this.options;
    const counted: Handler = (req, res) => {
      this.inFlight++;
      // Node detaches an HTTP/1.1 request from its socket once the response is done (req.socket
      // is null in "finish" and "close" listeners): keep the connection it came on.
      const conn = req instanceof http.IncomingMessage ? this.connections.get(req.socket) : undefined;
      this.requestStarted(req, conn);
      // The HTTP/2 compatibility response emits "finish" only once its stream has closed,
      // which a stream with an unread body never does: watch the stream's own end of writing.
      const written = req instanceof http.IncomingMessage ? res : (req as http2.Http2ServerRequest).stream;
      written.once("finish", () => this.discardUnreadBody(req, conn));
      res.once("close", () => {
        this.inFlight--;
        this.requestEnded(conn);
        if (this.inFlight === 0) this.drained?.();
      });
      handler(req, res);
    };
    // Later requests on a keep-alive connection are bounded by Node's own header timeout (the
    // first one by the first-request timer); it is checked every connectionsCheckingInterval.
    const headersTimeout = firstRequestTimeoutMs;
    this.h1 = http.createServer(
      {
        keepAliveTimeout: idleConnectionTimeoutMs,
        headersTimeout,
        requestTimeout: headersTimeout === 0 ? 300_000 : Math.max(300_000, headersTimeout),
        connectionsCheckingInterval: headersTimeout === 0 ? 30_000 : clamp(Math.floor(headersTimeout / 4), 50, 30_000),
      },
      counted as http.RequestListener,
    );
    this.h2 = http2.createServer(
      { settings: { maxConcurrentStreams: MAX_CONCURRENT_STREAMS } },
      counted as (req: http2.Http2ServerRequest, res: http2.Http2ServerResponse) => void,
    );
    this.h2.on("session", (session: http2.ServerHttp2Session) => this.sessionOpened(session));
    if (options.tls) {
      this.tlsServer = tls.createServer(
        {
          ...options.tls(),
          ALPNProtocols: ["h2", "http/1.1"],
          // Asked for, not required: clients have none; the internal services check it.
          requestCert: true,
          rejectUnauthorized: false,
          handshakeTimeout: firstRequestTimeoutMs > 0 ? firstRequestTimeoutMs : 120_000,
        },
        (socket) => this.admit(socket),
      );
      this.tlsServer.on("tlsClientError", (_err, socket) => {
        this.counts.tlsHandshakeFailures++;
        socket.destroy();
      });
    }
    // TCP_NODELAY on every accepted socket, as node:http's and node:http2's own servers set it:
    // connections reach them through this server, so their defaults do not apply. Without it an
    // HTTP/1.1 answer written in two pieces waits for the client's (delayed) ACK (Nagle).
    this.tcp = net.createServer({ noDelay: true }, (socket) => this.accept(socket));
    // Node closes connections beyond this at once ("drop"): room for the admitted ones plus a
    // few being told they are over the cap.
    this.tcp.maxConnections = this.options.maxConnections + REFUSAL_SLOTS;
    this.tcp.on("drop", () => this.counts.dropped++);
  }

  stats(): ListenerStats {
    let http1 = 0;
    let h2 = 0;
    for (const conn of this.connections.values()) {
      if (conn.protocol === "http1") http1++;
      else if (conn.protocol === "http2") h2++;
    }
    const c = this.counts;
    return {
      openConnections: this.connections.size,
      openHttp1Connections: http1,
      openHttp2Connections: h2,
      acceptedConnections: c.accepted,
      refusedConnections: c.refused,
      droppedConnections: c.dropped,
      firstRequestTimeouts: c.firstRequestTimeouts,
      idleConnectionTimeouts: c.idleConnectionTimeouts,
      streamIdleResets: c.streamIdleResets,
      unreadBodiesDiscarded: c.unreadBodiesDiscarded,
      unreadBodiesCut: c.unreadBodiesCut,
      tlsHandshakeFailures: c.tlsHandshakeFailures,
    };
  }

  // --- connections ----------------------------------------------------------------------------

  private accept(raw: net.Socket): void {
    raw.on("error", () => raw.destroy());
    if (this.closing) {
      raw.destroy();
      return;
    }
    if (this.connections.size >= this.options.maxConnections) {
      // Over TLS there is no cheap way to tell the client why: the handshake costs more than the refusal.
      if (this.tlsServer) {
        this.counts.refused++;
        raw.destroy();
      } else this.refuse(raw);
      return;
    }
    // With TLS, Node's TLS server does the handshake (bounded by the first-request timeout) and
    // hands over the TLS socket: that is the connection HTTP/1.1 requests and HTTP/2 sessions see.
    if (this.tlsServer) this.tlsServer.emit("connection", raw);
    else this.admit(raw);
  }

  private admit(socket: net.Socket): void {
    if (this.closing) {
      socket.destroy();
      return;
    }
    this.counts.accepted++;
    const conn: Connection = { socket, protocol: "pending", session: undefined, active: 0, served: false, timer: undefined };
    this.connections.set(socket, conn);
    socket.once("close", () => {
      clearTimeout(conn.timer);
      this.connections.delete(socket);
    });
    this.arm(conn, this.options.firstRequestTimeoutMs, () => {
      this.counts.firstRequestTimeouts++;
      this.closeConnection(conn, true);
    });
    if (socket instanceof tls.TLSSocket) {
      // ALPN chose the protocol; a client that offered none is sniffed like a plaintext one.
      if (socket.alpnProtocol === "h2") this.serveH2(conn);
      else if (socket.alpnProtocol === "http/1.1") this.serveH1(conn);
      else this.sniff(conn);
      return;
    }
    this.sniff(conn);
  }

  /** Makes connections from now on use the TLS material `tls` gives now (certificates reloaded). */
  reloadTls(): void {
    if (this.tlsServer && this.tlsOptions) this.tlsServer.setSecureContext(this.tlsOptions());
  }

  private sniff(conn: Connection): void {
    const { socket } = conn;
    detectProtocol(socket, (isH2, head) => {
      // Pause before unshifting: in flowing mode the unshifted bytes would be emitted at
      // once to no listener. The HTTP/2 session drains the buffer and then reads the
      // socket natively, so only the HTTP/1.1 parser needs the stream resumed.
      socket.pause();
      socket.unshift(head);
      if (isH2) this.serveH2(conn);
      else this.serveH1(conn);
    });
  }

  private serveH2(conn: Connection): void {
    conn.protocol = "http2";
    this.handingOff = conn;
    try {
      this.h2.emit("connection", conn.socket);
    } finally {
      this.handingOff = undefined;
    }
  }

  private serveH1(conn: Connection): void {
    conn.protocol = "http1";
    this.h1.emit("connection", conn.socket);
    conn.socket.resume();
  }

  /** Runs `onExpiry` after `ms` unless re-armed or cleared first; 0 means never. */
  private arm(conn: Connection, ms: number, onExpiry: () => void): void {
    clearTimeout(conn.timer);
    conn.timer = ms > 0 ? setTimeout(onExpiry, ms).unref() : undefined;
  }

  /** Closes a connection that has no request in progress (HTTP/2: GOAWAY first). */
  private closeConnection(conn: Connection, requestTimedOut: boolean): void {
    clearTimeout(conn.timer);
    conn.timer = undefined;
    const { socket } = conn;
    if (conn.session) {
      // GOAWAY with the last stream processed, then the socket is ended once it is written.
      conn.session.close();
    } else if (conn.protocol === "http1" && requestTimedOut && socket.writable) {
      // As Node's own header timeout answers a request that never arrived in full.
      socket.end("HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n");
    } else if (conn.protocol === "http1") {
      socket.end();
    } else {
      socket.destroy();
      return;
    }
    // A client that does not close its side would keep the socket half-open.
    setTimeout(() => socket.destroy(), LINGER_MS).unref();
  }

  /** Tells a connection over the cap so, in its own protocol, and closes it. */
  private refuse(socket: net.Socket): void {
    this.refusing.add(socket);
    socket.once("close", () => this.refusing.delete(socket));
    const { refusalTimeoutMs, firstRequestTimeoutMs } = this.options;
    const wait = firstRequestTimeoutMs > 0 ? Math.min(refusalTimeoutMs, firstRequestTimeoutMs) : refusalTimeoutMs;
    const giveUp = setTimeout(() => socket.destroy(), wait).unref();
    detectProtocol(socket, (isH2) => {
      clearTimeout(giveUp);
      this.counts.refused++;
      const limit = this.options.maxConnections;
      if (isH2) {
        socket.write(h2Refusal(`too many connections: this node has ${limit} open connections, its limit; try again later`));
      } else {
        const body = `too many connections: this node has ${limit} open connections, its limit; try again later\n`;
        socket.write(
          `HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: ${Buffer.byteLength(body)}\r\n` +
            `retry-after: 1\r\nconnection: close\r\n\r\n${body}`,
        );
      }
      socket.end();
      // Keep reading (and discarding) what the client still sends: closing with unread data
      // would reset the connection before the client could read the answer.
      socket.resume();
      setTimeout(() => socket.destroy(), LINGER_MS).unref();
    });
  }

  // --- HTTP/2 sessions and streams ------------------------------------------------------------

  private sessionOpened(session: http2.ServerHttp2Session): void {
    this.sessions.add(session);
    session.once("close", () => this.sessions.delete(session));
    const conn = this.handingOff;
    if (!conn) return;
    conn.session = session;
    session.on("stream", (stream, headers, flags) => {
      conn.served = true;
      conn.active++;
      clearTimeout(conn.timer);
      conn.timer = undefined;
      stream.once("close", () => {
        conn.active--;
        if (conn.active === 0) this.armIdle(conn);
      });
      const bodyEnded = (flags & http2.constants.NGHTTP2_FLAG_END_STREAM) !== 0;
      if (!bodyEnded && this.options.streamIdleTimeoutMs > 0 && !this.isTrusted(headers)) this.watchStream(stream);
    });
  }

  private armIdle(conn: Connection): void {
    if (this.closing) return;
    this.arm(conn, this.options.idleConnectionTimeoutMs, () => {
      this.counts.idleConnectionTimeouts++;
      this.closeConnection(conn, false);
    });
  }

  /**
   * Resets a stream whose request body has not ended once nothing arrived on it for
   * streamIdleTimeoutMs. The stream's timer is refreshed by every frame read or written on it.
   */
  private watchStream(stream: http2.ServerHttp2Stream): void {
    stream.setTimeout(this.options.streamIdleTimeoutMs, () => {
      if (stream.destroyed || stream.closed) return;
      if (stream.state.remoteClose) {
        // The body has ended: from here on the stream is the handler's business.
        stream.setTimeout(0);
        return;
      }
      this.counts.streamIdleResets++;
      stream.close(http2.constants.NGHTTP2_CANCEL);
    });
  }

  // --- requests (both protocols) --------------------------------------------------------------

  /** `conn` is the HTTP/1.1 connection of `req`; HTTP/2 requests are counted per stream. */
  private requestStarted(req: http.IncomingMessage | http2.Http2ServerRequest, conn: Connection | undefined): void {
    if (!(req instanceof http.IncomingMessage) || !conn) return;
    conn.served = true;
    conn.active++;
    clearTimeout(conn.timer);
    conn.timer = undefined;
    if (this.options.streamIdleTimeoutMs > 0 && hasBody(req) && !this.isTrusted(req.headers)) this.watchHttp1Body(req, conn);
  }

  private requestEnded(conn: Connection | undefined): void {
    if (!conn) return;
    conn.active--;
    if (conn.active === 0) this.armIdle(conn);
  }

  /**
   * HTTP/1.1 requests come one at a time on a connection, so the socket's byte count is the
   * request's progress. Checked four times per period; a stalled body is cut off with its
   * connection between one and 1.25 periods after its last byte.
   */
  private watchHttp1Body(req: http.IncomingMessage, conn: Connection): void {
    const period = this.options.streamIdleTimeoutMs;
    const step = Math.max(1, Math.floor(period / 4));
    let seen = conn.socket.bytesRead;
    let lastProgress = Date.now();
    let timer: NodeJS.Timeout;
    const check = () => {
      if (req.complete || conn.socket.destroyed) return;
      const now = Date.now();
      if (conn.socket.bytesRead !== seen) {
        seen = conn.socket.bytesRead;
        lastProgress = now;
      } else if (now - lastProgress >= period) {
        this.counts.streamIdleResets++;
        conn.socket.destroy();
        return;
      }
      timer = setTimeout(check, step).unref();
    };
    timer = setTimeout(check, step).unref();
    // A body read to its end needs no watching. Left to its first check, the timer kept the
    // request (headers, stream state, closure) alive for a quarter period, long enough for every
    // request to be promoted to the old generation and wait there for a full GC.
    req.once("end", () => clearTimeout(timer));
  }

  /**
   * A request answered before its body was read (connect stops reading a message over
   * readMaxBytes): the rest of the body is read and thrown away so that the client can finish
   * sending it. Resetting the stream instead would leave the unsent rest counted against a Node
   * client's session memory for good (see the top of this file). Beyond maxDiscardBytes the
   * request is cut off.
   */
  private discardUnreadBody(req: http.IncomingMessage | http2.Http2ServerRequest, conn: Connection | undefined): void {
    const limit = this.options.maxDiscardBytes;
    let discarded = 0;
    if (req instanceof http.IncomingMessage) {
      if (!conn || req.complete || conn.socket.destroyed) return;
      this.counts.unreadBodiesDiscarded++;
      if (Number(req.headers["content-length"]) > limit) {
        // Announced too large to be worth reading: cut off at once.
        this.counts.unreadBodiesCut++;
        conn.socket.destroy();
        return;
      }
      if (req.destroyed) {
        this.dumpDestroyedBody(req, conn);
        return;
      }
      const onData = (chunk: Buffer) => {
        discarded += chunk.length;
        if (discarded <= limit) return;
        req.off("data", onData);
        this.counts.unreadBodiesCut++;
        conn.socket.destroy();
      };
      req.on("data", onData);
      req.resume();
      return;
    }
    // HTTP/2: the request object may already be destroyed (connect stops iterating it), while
    // its stream is still open and paused. Its remaining listeners only feed that request.
    const { stream } = req;
    if (stream.destroyed || stream.closed || stream.state.remoteClose) return;
    this.counts.unreadBodiesDiscarded++;
    stream.removeAllListeners("data");
    stream.on("data", (chunk: Buffer) => {
      discarded += chunk.length;
      if (discarded <= limit || stream.closed) return;
      this.counts.unreadBodiesCut++;
      stream.close(http2.constants.NGHTTP2_CANCEL);
    });
    stream.resume();
  }

  /**
   * connect stops iterating a body over its limit, which destroys the request without closing
   * its socket. Node's HTTP/1.1 parser then stops reading (the destroyed request takes no more
   * data) with the rest of the body unread, and the next request on the keep-alive connection
   * is never read: the client waits for an answer that does not come. A dumped request has its
   * remaining body dropped by the parser; the socket's byte count bounds how much.
   */
  private dumpDestroyedBody(req: http.IncomingMessage, conn: Connection): void {
    const { socket } = conn;
    const dump = (req as unknown as { _dump?: unknown })._dump;
    if (typeof dump !== "function") {
      // A Node without it: closing the connection is the only way to free it.
      this.counts.unreadBodiesCut++;
      socket.destroy();
      return;
    }
    dump.call(req);
    socket.resume();
    const startedAt = socket.bytesRead;
    const check = () => {
      if (req.complete || socket.destroyed) return;
      if (socket.bytesRead - startedAt > this.options.maxDiscardBytes) {
        this.counts.unreadBodiesCut++;
        socket.destroy();
        return;
      }
      setTimeout(check, DISCARD_CHECK_MS).unref();
    };
    setTimeout(check, DISCARD_CHECK_MS).unref();
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
    this.closing = true;
    const closed = new Promise<void>((resolve) => this.tcp.close(() => resolve()));
    for (const conn of this.connections.values()) {
      if (!conn.session) continue;
      // A session with nothing in flight is closed outright: a GOAWAY to a connect-node client
      // with no open stream makes it destroy its session with an error nobody catches (an
      // uncaught exception in the client's process, connectrpc/connect-es#1768; our own clients are
      // guarded, others may not be). Sessions with streams get GOAWAY and finish.
      if (conn.active === 0) conn.session.destroy();
      else conn.session.close();
    }
    for (const session of this.sessions) if (!session.destroyed) session.close();
    this.h1.closeIdleConnections();
    for (const conn of this.connections.values()) {
      clearTimeout(conn.timer);
      conn.timer = undefined;
      // Connections that have not shown their protocol yet have nothing in flight.
      if (conn.protocol === "pending") conn.socket.destroy();
    }
    for (const socket of this.refusing) socket.destroy();
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
    for (const socket of this.connections.keys()) socket.destroy();
    await closed;
    return { cutOff };
  }
}

function hasBody(req: http.IncomingMessage): boolean {
  const length = req.headers["content-length"];
  return req.headers["transfer-encoding"] !== undefined || (length !== undefined && length !== "0");
}

function clamp(value: number, min: number, max: number): number {
  return Math.min(max, Math.max(min, value));
}
