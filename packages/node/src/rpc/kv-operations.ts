// KVService's Get, Put and Delete as plain functions of a decoded request and the call's
// headers, timeout and signal: what connect-node's router (services.ts) and the lean unary path
// (lean-unary.ts) both run, so that the two answer alike by construction.
import { Code, ConnectError } from "@connectrpc/connect";
import type { MessageInitShape } from "@bufbuild/protobuf";
import {
  CLUSTER_SECRET_HEADER,
  type CoordinateRequest,
  type DeleteRequest,
  type DeleteResponseSchema,
  FORWARD_OUTCOME_HEADER,
  FORWARDED_HEADER,
  type GetRequest,
  type GetResponseSchema,
  type PutRequest,
  type PutResponseSchema,
} from "@dynamo-ts/proto";
import { type Coordinator, isNotCoordinated, notFoundError, notFoundMessage } from "../requests/coordinator.js";
import { clusterSecretMatcher, deadlineFor, MAX_TIMEOUT_MS } from "./call-context.js";
import { Deadline } from "../requests/deadline.js";
import type { Credentials, HeaderLookup, Role } from "./credentials.js";

/** What a KV method needs from its call, whichever server path decoded it. */
export interface KvCall {
  /** A request header by lower-case name. */
  readonly header: HeaderLookup;
  /** The transport's timeout (connect-timeout-ms, grpc-timeout), if the request gave one. */
  timeoutMs(): number | undefined;
  /** Fires when the client goes away; absent where the server path does not watch for it. */
  readonly signal?: AbortSignal;
}

/**
 * Get's answer for a key without a live value (never written, or deleted): NotFound as a value,
 * not a thrown error. A read load of missing keys answers it on most calls, and as an error it
 * cost a ConnectError with two undici Headers (2% of the nodes' CPU in a profile of Gets, two
 * thirds of them missing), a rejection through every async layer and a walk of its metadata.
 * registerKvService throws it as the ConnectError (toError()); the lean path writes it directly.
 */
export class KeyNotFound {
  readonly code = Code.NotFound;
  constructor(readonly key: string) {}
  get message(): string {
    return notFoundMessage(this.key);
  }
  toError(): ConnectError {
    return notFoundError(this.key);
  }
}

export interface KvOperations {
  get(req: GetRequest, call: KvCall): Promise<MessageInitShape<typeof GetResponseSchema> | KeyNotFound>;
  put(req: PutRequest, call: KvCall): Promise<MessageInitShape<typeof PutResponseSchema>>;
  delete(req: DeleteRequest, call: KvCall): Promise<MessageInitShape<typeof DeleteResponseSchema>>;
}

export interface KvOperationSources {
  readonly coordinator: Pick<Coordinator, "find" | "write">;
  readonly credentials: Pick<Credentials, "requireClientAuth" | "authorize">;
  readonly clusterSecret: string;
  /** The deadline of a request that names none (--request-timeout-ms). */
  readonly defaultTimeoutMs: number;
}

export function kvOperations(src: KvOperationSources): KvOperations {
  const { coordinator, credentials, defaultTimeoutMs } = src;
  const isInternal = clusterSecretMatcher(src.clusterSecret);
  // With --require-client-auth, Get needs the read role and Put/Delete the write role.
  const allow = (call: KvCall, role: Role, method: string) => {
    if (credentials.requireClientAuth) credentials.authorize(call.header, role, `KVService/${method}`);
  };
  // A write another node forwarded (it was not a replica of the key) carries the cluster secret.
  const isForwarded = (call: KvCall) => call.header(FORWARDED_HEADER) === "1" && isInternal(call.header(CLUSTER_SECRET_HEADER));
  return {
    async get(req, call) {
      allow(call, "read", "Get");
      const result = await coordinator.find(req.key, req.r, deadlineFor(req.timeoutMs, defaultTimeoutMs, call));
      if (result === undefined) return new KeyNotFound(req.key);
      return { siblings: result.siblings.map(({ value, contentType }) => ({ value, contentType: contentType ?? "" })), context: result.context };
    },
    async put(req, call) {
      allow(call, "write", "Put");
      const forwarded = isForwarded(call);
      const context = await coordinate(forwarded, () =>
        coordinator.write(
          {
            key: req.key,
            value: req.value,
            contentType: req.contentType || undefined,
            context: req.context,
            w: req.w,
            deadline: deadlineFor(req.timeoutMs, defaultTimeoutMs, call),
          },
          forwarded,
        ),
      );
      return { context };
    },
    async delete(req, call) {
      allow(call, "write", "Delete");
      const forwarded = isForwarded(call);
      await coordinate(forwarded, () =>
        coordinator.write(
          { key: req.key, value: null, context: req.context, w: req.w, deadline: deadlineFor(req.timeoutMs, defaultTimeoutMs, call) },
          forwarded,
        ),
      );
      return {};
    },
  };
}

/**
 * A client write another node forwarded on the replica stream (it holds no replica of the key):
 * coordinated here as KVService.Put / Delete with the forwarded header would be, within what was
 * left of the client's deadline. The stream is internal (the cluster secret opened it), so no
 * client role is checked: the forwarding node checked it. Rejects with a notCoordinatedError
 * when this node declines the write (its store can't write).
 */
export function coordinateForwarded(coordinator: Pick<Coordinator, "write">, defaultTimeoutMs: number): (req: CoordinateRequest) => Promise<Uint8Array> {
  return (req) =>
    coordinator.write(
      {
        key: req.key,
        value: req.value ?? null,
        contentType: req.value === undefined ? undefined : req.contentType || undefined,
        context: req.context,
        w: req.w === 0 ? undefined : req.w,
        deadline: new Deadline(req.timeoutMs === 0 ? defaultTimeoutMs : Math.min(req.timeoutMs, MAX_TIMEOUT_MS)),
      },
      true,
    );
}

/**
 * Runs a write; when it was forwarded by another node, its error says whether this node
 * coordinated it (the error is the write's outcome) or declined it (try another replica).
 */
function coordinate<T>(forwarded: boolean, write: () => Promise<T>): Promise<T> {
  // A client's own write needs no wrapper (an async frame per write is a cost per request).
  return forwarded ? labelOutcome(write) : write();
}

async function labelOutcome<T>(write: () => Promise<T>): Promise<T> {
  try {
    return await write();
  } catch (err) {
    const ce = ConnectError.from(err);
    ce.metadata.set(FORWARD_OUTCOME_HEADER, isNotCoordinated(err) ? "declined" : "answered");
    throw ce;
  }
}
