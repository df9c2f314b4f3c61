// What every handler reads off its call: whether the caller is another node (the cluster
// secret), whether it may call an admin method, and the request's deadline (its timeout_ms, the
// transport's timeout header). The one cluster-secret check of the node: SHA-256 digests
// compared with timingSafeEqual (the listener's trusted-stream check uses it too).
import { createHash, timingSafeEqual } from "node:crypto";
import { Code, ConnectError, type HandlerContext } from "@connectrpc/connect";
import { Deadline } from "../requests/deadline.js";
import { CLUSTER_SECRET_HEADER } from "@dynamo-ts/proto";
import { connectHeaders, type Credentials } from "./credentials.js";

/** The longest deadline any request may have (timeout_ms, or a transport timeout header). */
export const MAX_TIMEOUT_MS = 600_000;

const matchers = new Map<string, (given: string | undefined | null) => boolean>();

/** Whether a given value is the cluster secret, in constant time (one digest per secret, kept). */
export function clusterSecretMatcher(secret: string): (given: string | undefined | null) => boolean {
  let match = matchers.get(secret);
  if (!match) {
    const expected = createHash("sha256").update(secret).digest();
    match = (given) => typeof given === "string" && timingSafeEqual(createHash("sha256").update(given).digest(), expected);
    matchers.set(secret, match);
  }
  return match;
}

export function isInternalCaller(ctx: HandlerContext, secret: string): boolean {
  return clusterSecretMatcher(secret)(ctx.requestHeader.get(CLUSTER_SECRET_HEADER));
}

/** Admin methods: the cluster secret or a token with the admin role, whatever --require-client-auth says. */
export function requireAdmin(ctx: HandlerContext, credentials: Credentials): void {
  credentials.authorize(connectHeaders(ctx.requestHeader), "admin", `${ctx.service.typeName}/${ctx.method.name}`);
}

export function requireInternal(ctx: HandlerContext, secret: string): void {
  if (!isInternalCaller(ctx, secret)) {
    throw new ConnectError("internal API: the cluster secret is missing or wrong", Code.PermissionDenied);
  }
}

/**
 * A request's deadline: its own timeout (1..MAX_TIMEOUT_MS, else InvalidArgument) or the node's
 * default, shortened by a transport timeout; it also fires when the call's signal does (the
 * client went away). Any call with a signal can have one: the plain HTTP key API passes its own.
 */
export function deadlineFor(
  requestedMs: number | undefined,
  defaultMs: number,
  ctx: { timeoutMs(): number | undefined; readonly signal?: AbortSignal },
): Deadline {
  if (requestedMs !== undefined && (requestedMs < 1 || requestedMs > MAX_TIMEOUT_MS)) {
    throw new ConnectError(`timeout_ms must be between 1 and ${MAX_TIMEOUT_MS}, got ${requestedMs}`, Code.InvalidArgument);
  }
  let ms = requestedMs ?? defaultMs;
  const transportTimeout = ctx.timeoutMs();
  if (transportTimeout !== undefined) ms = Math.min(ms, Math.max(1, transportTimeout));
  return new Deadline(ms, ctx.signal);
}
