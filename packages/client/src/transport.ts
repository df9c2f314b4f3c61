// The one place a transport to a dynamo-ts node is built: DynamoClient uses it, and so does
// dynamo-bench, whose transport ceiling must measure exactly the client's RPC stack.
import type { Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import * as http from "node:http";
import * as https from "node:https";
import { leanHttp1Transport } from "./lean-http1.js";
import { leanUnaryTransport } from "./lean-transport.js";
import { GuardedHttp2SessionManager } from "./session-manager.js";

export type Protocol = "connect" | "grpc" | "grpc-web";

export interface DynamoTransportOptions {
  /** A node's URL (`http://127.0.0.1:7001`) or address (`127.0.0.1:7001`). */
  readonly node: string;
  /** Wire protocol; default connect. Connect and gRPC-Web use the binary format. */
  readonly protocol?: Protocol;
  /** HTTP version; default 2 (gRPC needs it). */
  readonly httpVersion?: "1.1" | "2";
  /**
   * PEM certificate(s) of the CA that signed the nodes' certificates (a cluster with TLS on):
   * only it is trusted, and a node given as host:port is reached over https.
   */
  readonly ca?: string | Uint8Array;
  /**
   * Unary calls over Connect on HTTP/2 take the lean calling side (lean-transport.ts): the
   * same requests and outcomes as connect-node's, with less CPU per call. Default true; false
   * sends every call through connect-node (for comparison).
   */
  readonly lean?: boolean;
}

export interface DynamoTransport {
  readonly transport: Transport;
  /** The node's origin (`http://127.0.0.1:7001`). */
  readonly baseUrl: string;
  /** Closes the HTTP/2 session (a no-op over HTTP/1.1); the transport can't be used afterwards. */
  close(): void;
}

/** A node's URL or host:port as its origin; TypeError when it is neither. */
export function normalizeNodeUrl(node: string, scheme: "http" | "https" = "http"): string {
  const url = /^https?:\/\//.test(node) ? node : `${scheme}://${node}`;
  try {
    return new URL(url).origin;
  } catch {
    throw new TypeError(`not a node address: ${JSON.stringify(node)} (expected host:port or http://host:port)`);
  }
}

/**
 * A Connect, gRPC or gRPC-Web transport to one node. Over HTTP/2 every call made through it
 * shares one session (one TCP connection, multiplexed; reconnected after 30 s idle) until
 * close(). TypeError for gRPC over HTTP/1.1 or a bad node address.
 */
export function createDynamoTransport(options: DynamoTransportOptions): DynamoTransport {
  const baseUrl = normalizeNodeUrl(options.node, options.ca !== undefined ? "https" : "http");
  const protocol = options.protocol ?? "connect";
  const tls = options.ca !== undefined ? { ca: typeof options.ca === "string" ? options.ca : Buffer.from(options.ca) } : undefined;
  if ((options.httpVersion ?? "2") === "1.1") {
    if (protocol === "grpc") throw new TypeError("the gRPC protocol needs HTTP/2");
    const common = { baseUrl, httpVersion: "1.1" as const, useBinaryFormat: true, ...(tls ? { nodeOptions: tls } : {}) };
    if (protocol === "grpc-web") return { transport: createGrpcWebTransport(common), baseUrl, close: () => {} };
    if (options.lean === false) return { transport: createConnectTransport(common), baseUrl, close: () => {} };
    const agent = tls ? new https.Agent({ keepAlive: true, ...tls }) : new http.Agent({ keepAlive: true });
    return { transport: leanHttp1Transport(createConnectTransport(common), baseUrl, agent), baseUrl, close: () => agent.destroy() };
  }
  const sessionManager = new GuardedHttp2SessionManager(baseUrl, { idleConnectionTimeoutMs: 30_000 }, tls);
  const common = { baseUrl, httpVersion: "2" as const, sessionManager };
  const transport =
    protocol === "grpc"
      ? createGrpcTransport(common)
      : protocol === "grpc-web"
        ? createGrpcWebTransport({ ...common, useBinaryFormat: true })
        : options.lean === false
          ? createConnectTransport({ ...common, useBinaryFormat: true })
          : leanUnaryTransport(createConnectTransport({ ...common, useBinaryFormat: true }), sessionManager);
  return { transport, baseUrl, close: () => sessionManager.abort() };
}
