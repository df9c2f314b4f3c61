// The listener's options, their defaults and bounds, and its counters.
/** Request headers as both HTTP versions deliver them (names in lower case). */
export type RequestHeaders = Readonly<Record<string, string | string[] | undefined>>;

export interface ListenerOptions {
  /**
   * A connection that has not completed the headers of a request this long after it was
   * accepted is closed. Default 30 000; 0 turns it off. Also the HTTP/1.1 server's
   * `headersTimeout` for later requests on a keep-alive connection.
   */
  readonly firstRequestTimeoutMs?: number;
  /**
   * A connection with no request in progress for this long is closed: an HTTP/1.1 keep-alive
   * connection, an HTTP/2 session with no open stream (PINGs do not count). Default 60 000;
   * 0 turns it off.
   */
  readonly idleConnectionTimeoutMs?: number;
  /**
   * A request whose body has not ended and on which nothing arrived for this long is reset
   * (HTTP/2: RST_STREAM CANCEL; HTTP/1.1: the connection is closed). Requests whose headers
   * satisfy `isTrusted` are exempt. Default 30 000; 0 turns it off.
   */
  readonly streamIdleTimeoutMs?: number;
  /** Connections open at once; beyond it new ones are refused with a message. Default 4096. */
  readonly maxConnections?: number;
  /** Requests exempt from `streamIdleTimeoutMs` (e.g. those carrying the cluster secret). */
  readonly isTrusted?: (headers: RequestHeaders) => boolean;
  /**
   * TLS on every connection: the server context for the next one (it may change: certificates are
   * reloaded). HTTP/2 or HTTP/1.1 is then chosen by ALPN; a client certificate is asked for but
   * not required (internal services check it). Undefined: plaintext.
   */
  readonly tls?: () => import("node:tls").SecureContextOptions;
  /**
   * How long a connection over `maxConnections` may take to show its protocol before it is
   * closed without an answer. Default 2 000 (at most `firstRequestTimeoutMs`).
   */
  readonly refusalTimeoutMs?: number;
  /**
   * How much of the body of a request that was answered before its body was read is read and
   * discarded before the request is cut off instead (HTTP/2: RST_STREAM CANCEL; HTTP/1.1: the
   * connection is closed). Default 64 MiB.
   */
  readonly maxDiscardBytes?: number;
}

/** Counters for metrics: `open*` are current values, the rest count since the listener started. */
export interface ListenerStats {
  /** Open connections, both protocols and those whose protocol is not known yet; refused ones excluded. */
  readonly openConnections: number;
  readonly openHttp1Connections: number;
  readonly openHttp2Connections: number;
  readonly acceptedConnections: number;
  /** Connections over `maxConnections` that were answered 503 / GOAWAY and closed. */
  readonly refusedConnections: number;
  /** Connections closed at once without an answer: over the cap with no room left to answer them. */
  readonly droppedConnections: number;
  /** Connections closed by `firstRequestTimeoutMs`. */
  readonly firstRequestTimeouts: number;
  /** Connections closed by `idleConnectionTimeoutMs`. */
  readonly idleConnectionTimeouts: number;
  /** Requests reset by `streamIdleTimeoutMs`. */
  readonly streamIdleResets: number;
  /** Requests answered before their body was read whose remaining body was discarded. */
  readonly unreadBodiesDiscarded: number;
  /** ... of which the remaining body was over `maxDiscardBytes`, so the request was cut off. */
  readonly unreadBodiesCut: number;
  /** TLS handshakes that failed or timed out (with TLS on). */
  readonly tlsHandshakeFailures: number;
}

export const LISTENER_DEFAULTS = {
  firstRequestTimeoutMs: 30_000,
  idleConnectionTimeoutMs: 60_000,
  streamIdleTimeoutMs: 30_000,
  maxConnections: 4096,
  refusalTimeoutMs: 2_000,
  maxDiscardBytes: 64 * 1024 * 1024,
} as const;

export function resolveOptions(options: ListenerOptions): Required<Omit<ListenerOptions, "isTrusted" | "tls">> {
  const resolved = {
    firstRequestTimeoutMs: options.firstRequestTimeoutMs ?? LISTENER_DEFAULTS.firstRequestTimeoutMs,
    idleConnectionTimeoutMs: options.idleConnectionTimeoutMs ?? LISTENER_DEFAULTS.idleConnectionTimeoutMs,
    streamIdleTimeoutMs: options.streamIdleTimeoutMs ?? LISTENER_DEFAULTS.streamIdleTimeoutMs,
    maxConnections: options.maxConnections ?? LISTENER_DEFAULTS.maxConnections,
    refusalTimeoutMs: options.refusalTimeoutMs ?? LISTENER_DEFAULTS.refusalTimeoutMs,
    maxDiscardBytes: options.maxDiscardBytes ?? LISTENER_DEFAULTS.maxDiscardBytes,
  };
  for (const [name, value] of Object.entries(resolved)) {
    // Node's timers overflow past 2^31 - 1 ms.
    const max = name.endsWith("Ms") ? 2 ** 31 - 1 : Number.MAX_SAFE_INTEGER;
    const min = name === "maxConnections" || name === "refusalTimeoutMs" ? 1 : 0;
    if (!Number.isSafeInteger(value) || value < min || value > max) {
      throw new RangeError(`listener option ${name} must be an integer from ${min} to ${max}, got ${value}`);
    }
  }
  return resolved;
}
