// The plain HTTP key API, in the style of Riak's: `/kv/{key}` on the node's port, values as raw
// bodies, so that curl needs no JSON or base64. A mapping of requests and answers onto the
// coordinator's Get and Put/Delete, with the coordinator's own validation, limits and errors:
//
//   PUT    /kv/{key}  body = the value (any bytes), Content-Type stored with it  → 204 + context
//   GET    /kv/{key}  → 200 value | 300 siblings (multipart/mixed, or JSON) | 404
//   HEAD   /kv/{key}  → GET's status and headers, no body
//   DELETE /kv/{key}  → 204
//
// - Keys are percent-decoded strictly (a bad escape, or bytes that are not UTF-8: 400); an
//   unescaped "/" is part of the key ("/kv/a/b" is the key "a/b", as is "/kv/a%2Fb").
// - Query: `r` (GET, HEAD), `w` (PUT, DELETE), `timeout_ms` (all): decimal integers, ranges as
//   in KVService; any other or repeated parameter: 400.
// - The causal context (the sealed context KVService returns) travels base64 in X-Dynamo-Context:
//   in GET and PUT answers, and in PUT and DELETE requests that replace what a read returned.
// - Siblings: 300 Multiple Choices, one multipart/mixed part per live value, each with its
//   Content-Type; with `Accept: application/json` (preferred over multipart/mixed) the body is
//   {"siblings":[{"value_base64":"…","content_type":"…"}],"context":"…"} instead.
// - A value without a stored content type is application/octet-stream.
// - Errors: JSON {"code":"<Connect code name>","message":"…"}, the HTTP status from Connect's
//   code table (httpStatusOf) except failed_precondition: 409. A body over --max-value-bytes is
//   413 (invalid_argument): announced by Content-Length, at once; otherwise once reading reaches
//   one byte over the limit, without reading further (the listener discards the rest).
import type * as http from "node:http";
import type * as http2 from "node:http2";
import { randomBytes } from "node:crypto";
import type { Readable } from "node:stream";
import { Code, ConnectError } from "@connectrpc/connect";
import { codeToHttpStatus, codeToString } from "@connectrpc/connect/protocol-connect";
import { CONTEXT_HEADER } from "@dynamo-ts/proto";
import type { Coordinator, LiveSibling } from "../requests/coordinator.js";
import type { Logger } from "../observability/log.js";
import { deadlineFor } from "./call-context.js";
import { type FallbackResponse, isBase64 } from "./rpc-handler.js";

type NodeRequest = http.IncomingMessage | http2.Http2ServerRequest;

export const KV_PATH = "/kv";
export const ALLOWED_METHODS = "GET, HEAD, PUT, DELETE";
export const DEFAULT_CONTENT_TYPE = "application/octet-stream";

export interface KvHttpOptions {
  readonly coordinator: Pick<Coordinator, "get" | "write" | "validateKey">;
  /** The deadline of a request without timeout_ms (--request-timeout-ms). */
  readonly defaultTimeoutMs: number;
  /** --max-value-bytes: the largest body a PUT may have. */
  readonly maxValueBytes: number;
  readonly log: Logger;
  /** Throws Unauthenticated / PermissionDenied unless the request may read (GET, HEAD) or write (PUT, DELETE). */
  readonly authorize?: (req: NodeRequest, role: "read" | "write") => void;
  /** Told of each answered request: "http_GET" etc., its Connect code ("ok" on success), seconds taken. */
  readonly observe?: (method: string, code: string, seconds: number) => void;
}

/** Whether a request URL is the key API's (`/kv`, `/kv/...`). */
export function isKvPath(url: string | undefined): boolean {
  if (url === undefined || !url.startsWith(KV_PATH)) return false;
  const next = url.charAt(KV_PATH.length);
  return next === "" || next === "/" || next === "?";
}

/** The HTTP status of a Connect error code: Connect's table, except failed_precondition (409). */
export function httpStatusOf(code: Code): number {
  return code === Code.FailedPrecondition ? 409 : codeToHttpStatus(code);
}

/**
 * Errors answered with another status than their code's (413 for a body over the value limit). A
 * side table rather than a subclass: ConnectError's instanceof admits no subclasses.
 */
const OWN_STATUS = new WeakMap<ConnectError, number>();

const QUERY_PARAMETERS: Readonly<Record<string, readonly string[]>> = {
  GET: ["r", "timeout_ms"],
  HEAD: ["r", "timeout_ms"],
  PUT: ["w", "timeout_ms"],
  DELETE: ["w", "timeout_ms"],
};

const strictUtf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/** The key in a `/kv/{key}` path, percent-decoded; InvalidArgument on a bad escape or bytes that are not UTF-8. */
export function decodeKey(path: string): string {
  const encoded = path.slice(KV_PATH.length + 1);
  const bytes: number[] = [];
  for (let i = 0; i < encoded.length; i++) {
    const c = encoded.charCodeAt(i);
    if (c === 0x25 /* % */) {
      const hex = encoded.slice(i + 1, i + 3);
      if (!/^[0-9A-Fa-f]{2}$/.test(hex)) throw new ConnectError(`the key's percent-encoding is invalid at "${encoded.slice(i, i + 3)}"`, Code.InvalidArgument);
      bytes.push(parseInt(hex, 16));
      i += 2;
    } else if (c <= 0xff) {
      // Node hands unescaped bytes over 0x7f to us one character per byte.
      bytes.push(c);
    } else {
      throw new ConnectError("the key holds characters that are not percent-encoded", Code.InvalidArgument);
    }
  }
  try {
    return strictUtf8.decode(Uint8Array.from(bytes));
  } catch {
    throw new ConnectError("the key is not valid UTF-8 once percent-decoded", Code.InvalidArgument);
  }
}

/** The method's query parameters as numbers (their ranges are the coordinator's and deadlineFor's to check). */
export function parseQuery(query: string, method: string): Map<string, number> {
  const allowed = QUERY_PARAMETERS[method] ?? [];
  const params = new Map<string, number>();
  if (query === "") return params;
  for (const pair of query.split("&")) {
    const eq = pair.indexOf("=");
    const name = eq === -1 ? pair : pair.slice(0, eq);
    const value = eq === -1 ? "" : pair.slice(eq + 1);
    if (!allowed.includes(name)) {
      throw new ConnectError(`unknown query parameter ${JSON.stringify(name.slice(0, 64))}: ${method} takes ${allowed.join(", ")}`, Code.InvalidArgument);
    }
    if (params.has(name)) throw new ConnectError(`query parameter ${name} is given twice`, Code.InvalidArgument);
    if (!/^[0-9]+$/.test(value)) throw new ConnectError(`${name} must be a decimal integer, got ${JSON.stringify(value.slice(0, 64))}`, Code.InvalidArgument);
    params.set(name, Number(value));
  }
  return params;
}

/** The X-Dynamo-Context request header as bytes; empty (a blind write) when absent. */
export function requestContext(header: string | string[] | undefined): Uint8Array {
  if (header === undefined) return new Uint8Array();
  if (typeof header !== "string" || header === "" || !isBase64(header)) {
    throw new ConnectError("X-Dynamo-Context must be the base64 context a GET or PUT answered with (omit it for a blind write)", Code.InvalidArgument);
  }
  return Buffer.from(header, "base64");
}

/** Whether the client prefers the JSON sibling answer: application/json with a higher q than multipart/mixed. */
export function prefersJson(accept: string | undefined): boolean {
  if (!accept) return false;
  let json = 0;
  let multipart = 0;
  for (const entry of accept.split(",")) {
    const [type = "", ...params] = entry.split(";").map((s) => s.trim().toLowerCase());
    const qParam = params.find((p) => p.startsWith("q="));
    const q = qParam === undefined ? 1 : Number(qParam.slice(2)) || 0;
    if (type === "application/json") json = Math.max(json, q);
    else if (type === "multipart/mixed" || type === "multipart/*") multipart = Math.max(multipart, q);
  }
  return json > 0 && json > multipart;
}

/** A multipart/mixed body (RFC 2046) with one part per sibling, and a boundary none of the values contains. */
export function multipartBody(siblings: readonly LiveSibling[]): { boundary: string; body: Buffer } {
  let boundary: string;
  do boundary = randomBytes(16).toString("hex");
  while (siblings.some((s) => Buffer.from(s.value.buffer, s.value.byteOffset, s.value.byteLength).includes(`--${boundary}`)));
  const pieces: Buffer[] = [];
  for (const sibling of siblings) {
    pieces.push(
      Buffer.from(`--${boundary}\r\ncontent-type: ${sibling.contentType ?? DEFAULT_CONTENT_TYPE}\r\n\r\n`),
      Buffer.from(sibling.value),
      Buffer.from("\r\n"),
    );
  }
  pieces.push(Buffer.from(`--${boundary}--\r\n`));
  return { boundary, body: Buffer.concat(pieces) };
}

/**
 * Reads a body of at most `limit` bytes. One byte more and it stops reading (the chunk in hand is
 * dropped, the request paused; the listener discards the rest once the answer is sent) and
 * rejects with `tooLarge` (by default a 413), which is given the chunks received.
 */
export function readBody(req: Readable, limit: number, tooLarge: (limit: number, received: readonly Buffer[]) => Error = valueTooLarge): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const stop = () => {
      req.off("data", onData);
      req.off("end", onEnd);
      req.off("error", onError);
      req.off("close", onClose);
    };
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size <= limit) {
        chunks.push(chunk);
        return;
      }
      stop();
      req.pause();
      reject(tooLarge(limit, chunks.concat(chunk)));
    };
    const onEnd = () => {
      stop();
      resolve(Buffer.concat(chunks, size));
    };
    const onError = (err: Error) => {
      stop();
      reject(err);
    };
    const onClose = () => {
      stop();
      reject(new ConnectError("the request ended before its body did", Code.Canceled));
    };
    req.on("data", onData);
    req.once("end", onEnd);
    req.once("error", onError);
    req.once("close", onClose);
  });
}

function valueTooLarge(limit: number): ConnectError {
  const err = new ConnectError(`value is more than ${limit} bytes, the limit (--max-value-bytes)`, Code.InvalidArgument);
  OWN_STATUS.set(err, 413);
  return err;
}

interface Answer {
  /** The Connect code of the outcome ("ok" for any success), for metrics. */
  readonly code?: string;
  readonly status: number;
  readonly headers: http.OutgoingHttpHeaders;
  readonly body?: Buffer;
}

function errorAnswer(err: ConnectError, status = OWN_STATUS.get(err) ?? httpStatusOf(err.code)): Answer {
  const body = Buffer.from(`${JSON.stringify({ code: codeToString(err.code), message: err.rawMessage })}\n`);
  const headers: http.OutgoingHttpHeaders = { "content-type": "application/json" };
  return { code: codeToString(err.code), status, headers, body };
}

export function createKvHttpHandler(options: KvHttpOptions): (req: NodeRequest, res: FallbackResponse) => void {
  const { coordinator, defaultTimeoutMs, maxValueBytes, log } = options;

  const answer = async (req: NodeRequest, signal: AbortSignal): Promise<Answer> => {
    const method = req.method ?? "";
    if (!(method in QUERY_PARAMETERS)) {
      const answer = errorAnswer(new ConnectError(`method ${method} is not allowed on /kv/{key}: use ${ALLOWED_METHODS}`, Code.Unimplemented), 405);
      return { ...answer, headers: { ...answer.headers, allow: ALLOWED_METHODS } };
    }
    options.authorize?.(req, method === "GET" || method === "HEAD" ? "read" : "write");
    const url = req.url ?? "";
    const q = url.indexOf("?");
    const key = decodeKey(q === -1 ? url : url.slice(0, q));
    // Before a PUT's body is read (get and write check it again, at no cost).
    coordinator.validateKey(key);
    const query = parseQuery(q === -1 ? "" : url.slice(q + 1), method);
    const deadline = () => deadlineFor(query.get("timeout_ms"), defaultTimeoutMs, { timeoutMs: () => undefined, signal });

    if (method === "GET" || method === "HEAD") {
      const result = await coordinator.get(key, query.get("r"), deadline());
      const context = Buffer.from(result.context).toString("base64");
      const [only, ...others] = result.siblings;
      if (only && others.length === 0) {
        const headers = { "content-type": only.contentType ?? DEFAULT_CONTENT_TYPE, [CONTEXT_HEADER]: context };
        return { status: 200, headers, body: Buffer.from(only.value.buffer, only.value.byteOffset, only.value.byteLength) };
      }
      if (prefersJson(req.headers.accept)) {
        const siblings = result.siblings.map((s) => ({
          value_base64: Buffer.from(s.value).toString("base64"),
          content_type: s.contentType ?? DEFAULT_CONTENT_TYPE,
        }));
        return {
          status: 300,
          headers: { "content-type": "application/json", [CONTEXT_HEADER]: context },
          body: Buffer.from(`${JSON.stringify({ siblings, context })}\n`),
        };
      }
      const { boundary, body } = multipartBody(result.siblings);
      return { status: 300, headers: { "content-type": `multipart/mixed; boundary=${boundary}`, [CONTEXT_HEADER]: context }, body };
    }

    const context = requestContext(req.headers[CONTEXT_HEADER]);
    if (method === "DELETE") {
      await coordinator.write({ key, value: null, context, w: query.get("w"), deadline: deadline() }, false);
      return { status: 204, headers: {} };
    }
    if (Number(req.headers["content-length"]) > maxValueBytes) throw valueTooLarge(maxValueBytes);
    const value = await readBody(req as Readable, maxValueBytes);
    const contentType = req.headers["content-type"] || undefined;
    const written = await coordinator.write({ key, value, contentType, context, w: query.get("w"), deadline: deadline() }, false);
    return { status: 204, headers: { [CONTEXT_HEADER]: Buffer.from(written).toString("base64") } };
  };

  return (req, res) => {
    let sent = false;
    const gone = new AbortController();
    res.once("close", () => {
      if (!sent) gone.abort(new ConnectError("the client went away", Code.Canceled));
    });
    const started = performance.now();
    answer(req, gone.signal)
      .catch((err: unknown): Answer => {
        if (!(err instanceof ConnectError)) {
          log.error("kv http request failed with an unexpected error", {
            method: req.method,
            error: err instanceof Error ? (err.stack ?? err.message) : String(err),
          });
        }
        return errorAnswer(ConnectError.from(err));
      })
      .then(({ code, status, headers, body }) => {
        sent = true;
        const method = req.method && req.method in QUERY_PARAMETERS ? req.method : "other";
        options.observe?.(`http_${method}`, code ?? "ok", (performance.now() - started) / 1000);
        if (gone.signal.aborted) return;
        const withLength = body === undefined ? headers : { ...headers, "content-length": body.byteLength };
        res.writeHead(status, withLength);
        res.end(req.method === "HEAD" ? undefined : body);
      })
      .catch((err: unknown) => log.warn("could not write a kv http response", { error: String(err) }));
  };
}
