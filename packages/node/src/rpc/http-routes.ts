// The plain HTTP routes beside the RPC services, on the same port: the key API (/kv), metrics,
// liveness and readiness, the dashboard, and the older /healthz; 404 for anything else.
import type * as http from "node:http";
import type { Logger } from "../observability/log.js";
import type { Metrics } from "../observability/metrics.js";
import type { Readiness } from "../observability/readiness.js";
import { serveMetrics } from "../observability/request-metrics.js";
import { isDashboardPath } from "./dashboard-http.js";
import { isKvPath } from "./kv-http.js";
import type { FallbackResponse } from "./rpc-handler.js";

type Request = http.IncomingMessage | import("node:http2").Http2ServerRequest;
type Route = (req: Request, res: FallbackResponse) => void;

export interface HttpRouteSources {
  readonly kvHttp: Route;
  readonly dashboard: Route;
  readonly metrics: Metrics;
  readonly log: Logger;
  readiness(): Readiness;
  serving(): boolean;
  notReadyReason(): string;
}

export function httpRoutes(src: HttpRouteSources): Route {
  return (req, res) => {
    const path = req.url?.split("?", 1)[0];
    const read = req.method === "GET" || req.method === "HEAD";
    const body = (text: string) => (req.method === "HEAD" ? undefined : text);
    if (isKvPath(req.url)) return src.kvHttp(req, res);
    if (isDashboardPath(req.url)) return src.dashboard(req, res);
    if (read && path === "/metrics") return serveMetrics(src.metrics, req as http.IncomingMessage, res, src.log);
    if (read && path === "/livez") {
      res.writeHead(200, { "content-type": "text/plain; charset=utf-8", "cache-control": "no-store" });
      res.end(body("ok\n"));
      return;
    }
    if (read && path === "/readyz") {
      const ready = src.readiness();
      res.writeHead(ready.ready ? 200 : 503, { "content-type": "application/json", "cache-control": "no-store" });
      res.end(body(`${JSON.stringify(ready)}\n`));
      return;
    }
    if (read && path === "/healthz") {
      const serving = src.serving();
      res.writeHead(serving ? 200 : 503, { "content-type": "text/plain" });
      res.end(body(serving ? "ok\n" : `${src.notReadyReason()}\n`));
      return;
    }
    res.writeHead(404, { "content-type": "text/plain" });
    res.end("not found: this port serves dynamo.v1.KVService over Connect, gRPC and gRPC-Web, plain HTTP at /kv/{key}, /metrics, /livez, /readyz and /ui\n");
  };
}
