// The dashboard every node serves at /ui: a static page (packages/node/dashboard/, compiled and
// copied into dist/dashboard/ by the build; no framework, no CDN, no request leaves the node)
// and the node's state as JSON at /ui/state.json: the same messages AdminService Status,
// ListHints and AntiEntropyStatus answer, in their protobuf JSON form. The page draws its
// throughput and latency charts from this node's GET /metrics.
import { readFileSync } from "node:fs";
import type * as http from "node:http";
import { create, toJsonString } from "@bufbuild/protobuf";
import { AntiEntropyStatusResponseSchema, ListHintsResponseSchema, StatusResponseSchema } from "@dynamo-ts/proto";
import { statusResponse as antiEntropyStatusResponse } from "../background/anti-entropy/index.js";
import { type AdminSources, hintsResponse, statusResponse } from "./admin-service.js";
import type { FallbackResponse } from "./rpc-handler.js";
import { Code, ConnectError } from "@connectrpc/connect";
import { codeToString } from "@connectrpc/connect/protocol-connect";
import { nodeHeaders } from "./credentials.js";

const ASSETS_DIR = new URL("../dashboard/", import.meta.url);

interface Asset {
  readonly file: string;
  readonly contentType: string;
}

/** Path → file of dist/dashboard. Nothing else under /ui is served. */
const ASSETS = new Map<string, Asset>([
  ["/ui", { file: "index.html", contentType: "text/html; charset=utf-8" }],
  ["/ui/", { file: "index.html", contentType: "text/html; charset=utf-8" }],
  ["/ui/dashboard.js", { file: "dashboard.js", contentType: "text/javascript; charset=utf-8" }],
  ["/ui/dashboard.css", { file: "dashboard.css", contentType: "text/css; charset=utf-8" }],
]);

/**
 * Only this node's own files and JSON: no inline script or style, no other origin, not framed.
 * Values from the cluster (node ids, addresses) reach the DOM as text only.
 */
export const DASHBOARD_CSP =
  "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

const SECURITY_HEADERS = {
  "content-security-policy": DASHBOARD_CSP,
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
};

export function isDashboardPath(url: string | undefined): boolean {
  const path = url?.split("?", 1)[0] ?? "";
  return path === "/ui" || path.startsWith("/ui/");
}

/** The node's state for the page: status, hints and anti-entropy, as protobuf JSON. */
export function dashboardState(src: AdminSources): string {
  const status = toJsonString(StatusResponseSchema, create(StatusResponseSchema, statusResponse(src)));
  const hints = toJsonString(ListHintsResponseSchema, create(ListHintsResponseSchema, hintsResponse(src)));
  const antiEntropy = toJsonString(AntiEntropyStatusResponseSchema, create(AntiEntropyStatusResponseSchema, antiEntropyStatusResponse(src.antiEntropy)));
  return `{"status":${status},"hints":${hints},"antiEntropy":${antiEntropy}}`;
}

export function createDashboardHandler(
  src: AdminSources,
  assetsDir: URL = ASSETS_DIR,
): (req: http.IncomingMessage | { method?: string; url?: string }, res: FallbackResponse) => void {
  // Read once: the files are part of the build and small (tens of KiB).
  const cache = new Map<string, Buffer>();
  const load = (asset: Asset): Buffer | undefined => {
    let body = cache.get(asset.file);
    if (body) return body;
    try {
      body = readFileSync(new URL(asset.file, assetsDir));
    } catch {
      return undefined;
    }
    cache.set(asset.file, body);
    return body;
  };
  return (req, res) => {
    const path = req.url?.split("?", 1)[0] ?? "";
    if (req.method !== "GET" && req.method !== "HEAD") {
      res.writeHead(405, { "content-type": "text/plain; charset=utf-8", allow: "GET, HEAD" });
      res.end("method not allowed: the dashboard is read-only\n");
      return;
    }
    const head = req.method === "HEAD";
    if (path === "/ui/state.json") {
      // The node's state is the admin API's: the same credentials (the page asks for them).
      try {
        src.credentials.authorize(nodeHeaders((req as http.IncomingMessage).headers ?? {}), "admin", "the dashboard's state");
      } catch (err) {
        const ce = ConnectError.from(err);
        res.writeHead(ce.code === Code.PermissionDenied ? 403 : 401, {
          "content-type": "application/json",
          "www-authenticate": 'Bearer realm="dynamo-ts"',
          "cache-control": "no-store",
        });
        res.end(head ? undefined : `${JSON.stringify({ code: codeToString(ce.code), message: ce.rawMessage })}\n`);
        return;
      }
      const body = dashboardState(src);
      res.writeHead(200, { "content-type": "application/json", "cache-control": "no-store", ...SECURITY_HEADERS });
      res.end(head ? undefined : body);
      return;
    }
    const asset = ASSETS.get(path);
    const body = asset && load(asset);
    if (!asset || !body) {
      res.writeHead(404, { "content-type": "text/plain; charset=utf-8" });
      res.end(asset ? "the dashboard is not built: run npm run build -w packages/node\n" : "not found: the dashboard is at /ui\n");
      return;
    }
    // no-cache: revalidated on each load, so a node upgraded in place serves its new page.
    res.writeHead(200, { "content-type": asset.contentType, "content-length": String(body.length), "cache-control": "no-cache", ...SECURITY_HEADERS });
    res.end(head ? undefined : body);
  };
}
