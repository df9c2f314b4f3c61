// The lean calling side for unary calls over the Connect protocol on HTTP/1.1 (binary): one
// request per keep-alive connection of an http.Agent, the answer parsed when it ends. Same
// requests and outcomes as connect-node's HTTP/1.1 transport (lean-http1.test.ts runs every case
// through both), with less CPU and, above all, less garbage that outlives a call: node:http2's
// client requests are promoted out of the young generation (see lean-transport.ts), node:http's
// are not, so a busy client's scavenges stay short (docs/performance.md, thirteenth pass).
// Streaming calls go to connect-node's transport unchanged.
import * as http from "node:http";
import * as https from "node:https";
import type { DescMessage, DescMethodUnary, MessageInitShape } from "@bufbuild/protobuf";
import { Code, ConnectError, type Transport, type UnaryResponse } from "@connectrpc/connect";
import { connectErrorFromNodeReason, settleWithAnswer, startUnaryCall } from "./lean-transport.js";

/** A Transport whose unary calls go over `agent`'s connections to `baseUrl`; streaming calls go to `fallback`. */
export function leanHttp1Transport(fallback: Transport, baseUrl: string, agent: http.Agent): Transport {
  const url = new URL(baseUrl);
  const secure = url.protocol === "https:";
  const target = { host: url.hostname.replace(/^\[|\]$/g, ""), port: url.port === "" ? (secure ? 443 : 80) : Number(url.port), agent };
  const send = secure ? https.request : http.request;
  return {
    unary: (method, signal, timeoutMs, header, input) => callUnary(send, target, method, signal, timeoutMs, header, input),
    stream: (method, signal, timeoutMs, header, input, contextValues) => fallback.stream(method, signal, timeoutMs, header, input, contextValues),
  };
}

interface Target {
  readonly host: string;
  readonly port: number;
  readonly agent: http.Agent;
}

function callUnary<I extends DescMessage, O extends DescMessage>(
  send: typeof http.request,
  target: Target,
  method: DescMethodUnary<I, O>,
  signal: AbortSignal | undefined,
  requestedTimeoutMs: number | undefined,
  header: Parameters<Transport["unary"]>[3],
  input: MessageInitShape<I>,
): Promise<UnaryResponse<I, O>> {
  return new Promise<UnaryResponse<I, O>>((resolve, reject) => {
    // A failed call's connection is not reused: what is left of its exchange on it is unknown.
    const call = startUnaryCall(method, signal, requestedTimeoutMs, header, input, reject, () => request.destroy());
    if (call === undefined) return;
    const { body, headers, fail } = call;
    headers["content-length"] = body.byteLength;
    const request = send({ ...target, method: "POST", path: `/${method.parent.typeName}/${method.name}`, headers }, (response) => {
      const chunks: Buffer[] = [];
      response.on("data", (chunk: Buffer) => chunks.push(chunk));
      response.on("end", () => {
        if (!call.settled) settleWithAnswer(call, method, response.statusCode ?? 0, response.headers, chunks, resolve);
      });
      response.on("error", (err) => fail(connectErrorFromNodeReason(err)));
      // Node reports a connection lost mid-answer as an "error" first; this only makes sure no
      // call waits for an answer that can no longer come.
      response.on("close", () => {
        if (!response.complete) fail(new ConnectError("the connection closed before the response ended", Code.Aborted));
      });
    });
    request.on("error", (err) => fail(connectErrorFromNodeReason(err)));
    request.end(body);
  });
}
