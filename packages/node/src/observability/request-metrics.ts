// Request metrics at the edges: a Connect interceptor that times every public unary call
// (KVService by method name, AdminService as admin_<Method>), and GET /metrics.
import type * as http from "node:http";
import { ConnectError, type Interceptor } from "@connectrpc/connect";
import { codeToString } from "@connectrpc/connect/protocol-connect";
import type { FallbackResponse } from "../rpc/rpc-handler.js";
import type { Logger } from "./log.js";
import { type Metrics, wantsOpenMetrics } from "./metrics.js";

const LABEL_PREFIX: Record<string, string> = {
  "dynamo.v1.KVService": "",
  "dynamo.v1.AdminService": "admin_",
};

/** Counts and times public unary calls; node-to-node and streaming calls are left out. */
export function requestMetrics(metrics: Metrics): Interceptor {
  return (next) => async (req) => {
    const prefix = LABEL_PREFIX[req.service.typeName];
    if (prefix === undefined || req.stream) return next(req);
    const method = prefix + req.method.name;
    const started = performance.now();
    try {
      const res = await next(req);
      metrics.observeRequest(method, "ok", (performance.now() - started) / 1000);
      return res;
    } catch (err) {
      const code = err instanceof ConnectError ? codeToString(err.code) : "unknown";
      metrics.observeRequest(method, code, (performance.now() - started) / 1000);
      throw err;
    }
  };
}

/** GET /metrics: Prometheus text, or OpenMetrics when the Accept header asks for it. */
export function serveMetrics(metrics: Metrics, req: Pick<http.IncomingMessage, "method" | "headers">, res: FallbackResponse, log: Logger): void {
  metrics.exposition(wantsOpenMetrics(req.headers.accept)).then(
    ({ contentType, body }) => {
      res.writeHead(200, { "content-type": contentType, "cache-control": "no-store" });
      res.end(req.method === "HEAD" ? undefined : body);
    },
    (err: unknown) => {
      log.error("collecting metrics failed", { error: String(err) });
      res.writeHead(500, { "content-type": "text/plain; charset=utf-8" });
      res.end("collecting metrics failed\n");
    },
  );
}
