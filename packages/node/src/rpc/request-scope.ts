// What wraps every request before routing: the Host allow-list (--allowed-hosts), a log scope
// (the lines a request causes carry its id: the client's sane x-request-id, echoed back, or one
// made up), and at --log-level debug a line when it is answered; and the interceptor that logs
// handler failures Connect would hide.
import { AsyncResource } from "node:async_hooks";
import { ConnectError, type Interceptor } from "@connectrpc/connect";
import { currentRequestId, type Logger, withRequestScope } from "../observability/log.js";
import type { FallbackResponse, RequestHandler } from "./rpc-handler.js";
import { hasPeerCertificate } from "./tls-material.js";

export interface RequestScopeOptions {
  readonly logLevel: string;
  /** --allowed-hosts (lower case); empty: any Host. */
  readonly allowedHosts: readonly string[];
  readonly advertise: string;
  readonly listen: string;
  /** With TLS on: calls to the internal services need a client certificate from the cluster CA. */
  readonly requirePeerCertificate?: boolean;
}

/** Services only other nodes call (the cluster secret alone is not enough for them under TLS). */
const INTERNAL_SERVICE_PATHS = ["/dynamo.v1.ReplicaService/", "/dynamo.v1.GossipService/", "/dynamo.v1.AntiEntropyService/"];

export function inRequestScope(handler: RequestHandler, options: RequestScopeOptions, log: Logger): RequestHandler {
  const debug = options.logLevel === "debug";
  const hostAllowed = hostAllowList(options);
  return (req, res) =>
    withRequestScope(req.headers["x-request-id"], () => {
      if (!hostAllowed(req.headers.host ?? (req.headers[":authority"] as string | undefined))) {
        (res as FallbackResponse).writeHead(421, { "content-type": "text/plain; charset=utf-8" });
        res.end("misdirected request: this node does not answer for that Host (see --allowed-hosts)\n");
        return;
      }
      if (options.requirePeerCertificate && INTERNAL_SERVICE_PATHS.some((p) => req.url?.startsWith(p)) && !hasPeerCertificate(req.socket)) {
        // 403 is PermissionDenied to Connect, gRPC and gRPC-Web clients alike.
        (res as FallbackResponse).writeHead(403, { "content-type": "application/json" });
        res.end(
          JSON.stringify({
            code: "permission_denied",
            message: "internal API: a client certificate from the cluster CA is required (mutual TLS between nodes)",
          }),
        );
        return;
      }
      const incoming = req.headers["x-request-id"];
      if (typeof incoming === "string" && incoming === currentRequestId()) res.setHeader("x-request-id", incoming);
      if (debug) {
        const started = performance.now();
        // "finish" comes outside the request's scope: the line is logged in it (its request id).
        // Not AsyncResource.bind(): the accessor properties it defines on every bound function
        // keep all that the function reaches (here the request and its response) alive until
        // the next full GC (docs/performance.md, ninth pass).
        const scope = new AsyncResource("dynamo.requestLog");
        res.once("finish", () =>
          scope.runInAsyncScope(() =>
            log.debug("request", {
              method: req.method,
              path: req.url?.split("?", 1)[0],
              status: res.statusCode,
              ms: Math.round((performance.now() - started) * 10) / 10,
            }),
          ),
        );
      }
      handler(req, res);
    });
}

/**
 * --allowed-hosts: the Host (or :authority) a request may name, so that a page on another site
 * cannot reach a node on localhost through a DNS name rebound to 127.0.0.1. The node's own
 * listen and advertised addresses are always allowed (other nodes call it by them).
 */
export function hostAllowList(options: Pick<RequestScopeOptions, "allowedHosts" | "advertise" | "listen">): (host: string | undefined) => boolean {
  if (options.allowedHosts.length === 0) return () => true;
  const allowed = new Set([...options.allowedHosts, options.advertise.toLowerCase(), options.listen.toLowerCase()]);
  return (host) => {
    if (host === undefined) return false;
    const h = host.toLowerCase();
    if (allowed.has(h)) return true;
    const port = /:(\d+)$/.exec(h);
    return port !== null && allowed.has(h.slice(0, port.index));
  };
}

/**
 * Logs a handler failure that is not a ConnectError: the client only sees "internal error"
 * (Connect hides the cause), so the node's log is where the cause must be found.
 */
export function logUnexpectedErrors(log: Logger): Interceptor {
  return (next) => async (req) => {
    try {
      return await next(req);
    } catch (err) {
      if (!(err instanceof ConnectError)) {
        log.error("request failed with an unexpected error", {
          method: `${req.service.typeName}/${req.method.name}`,
          error: err instanceof Error ? (err.stack ?? err.message) : String(err),
        });
      }
      throw err;
    }
  };
}
