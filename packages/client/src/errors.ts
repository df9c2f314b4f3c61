// The client's typed error, and the rules that say whether a failed call may be tried again
// on another node.
import { Code, ConnectError } from "@connectrpc/connect";
import { FORWARD_OUTCOME_HEADER } from "@dynamo-ts/proto";

/** One node a call was sent to, and how that attempt failed. */
export interface FailedAttempt {
  /** The node's origin (`http://127.0.0.1:7001`). */
  readonly node: string;
  readonly code: Code;
  readonly message: string;
}

/**
 * Every failure of a DynamoClient call: the Connect code of the last attempt (`code`, and its
 * name in `codeName`, e.g. "Unavailable"), the node that gave it, and every attempt of the
 * call in order (more than one when the client failed over).
 *
 * It is a ConnectError too: `err instanceof ConnectError` holds, `ConnectError.from(err)`
 * returns it unchanged, `metadata` and `rawMessage` are the node's. Its `name` stays
 * "ConnectError" (Connect's own instanceof test asks for that name); `cause` is the
 * ConnectError the transport raised, whose own cause is the socket error when there was one.
 */
export class DynamoError extends ConnectError {
  /** The node the last attempt went to. */
  readonly node: string;
  /** Every attempt of the call, in order; the last one is this error. */
  readonly attempts: readonly FailedAttempt[];

  constructor(from: ConnectError, node: string, attempts: readonly FailedAttempt[]) {
    super(from.rawMessage, from.code, from.metadata, undefined, from);
    this.details = from.details;
    this.node = node;
    this.attempts = attempts;
  }

  /** The code's name: "Unavailable", "NotFound", "InvalidArgument", ... */
  get codeName(): string {
    return Code[this.code];
  }

  // ConnectError's instanceof accepts any ConnectError; a DynamoError is only a DynamoError.
  static override [Symbol.hasInstance](value: unknown): boolean {
    return typeof value === "object" && value !== null && Object.prototype.isPrototypeOf.call(DynamoError.prototype, value);
  }
}

/** The errors an error was caused by, outermost first. */
function causes(err: unknown): Error[] {
  const chain: Error[] = [];
  for (let e = err; e instanceof Error && !chain.includes(e); e = e.cause) chain.push(e);
  return chain;
}

/** Node's own errors carry a string code (ECONNREFUSED, ERR_HTTP2_STREAM_ERROR, ...). */
function systemErrors(err: unknown): (Error & { code: string; syscall?: string })[] {
  return causes(err).filter((e): e is Error & { code: string; syscall?: string } => typeof (e as { code?: unknown }).code === "string");
}

/** Errors of opening a connection: the request was never sent. */
const CONNECT_FAILURES = new Set(["ECONNREFUSED", "ENOTFOUND", "EAI_AGAIN", "EHOSTUNREACH", "ENETUNREACH"]);

/**
 * The call failed before any byte of it was sent: the connection was refused or could not be
 * opened (connect-node answers Unavailable, caused by e.g. `connect ECONNREFUSED`), so no
 * node can have acted on it.
 */
export function neverSent(err: ConnectError): boolean {
  return systemErrors(err).some((e) => CONNECT_FAILURES.has(e.code) || e.syscall === "connect" || e.syscall === "getaddrinfo") || refusedStream(err);
}

/**
 * The node refused the call's HTTP/2 stream before processing it: RST_STREAM REFUSED_STREAM,
 * which is what a client sees for a stream it opened just as the node began shutting down
 * (its GOAWAY names the last stream it will process) or beyond the node's stream limit. RFC
 * 9113, 8.7: such a request "can be safely retried". Node reports it as an
 * ERR_HTTP2_STREAM_ERROR "Stream closed with error code NGHTTP2_REFUSED_STREAM" (connect-node
 * then answers Internal, the lean transport Unavailable; both keep it as the cause).
 */
export function refusedStream(err: unknown): boolean {
  return systemErrors(err).some((e) => e.code === "ERR_HTTP2_STREAM_ERROR" && e.message.endsWith("NGHTTP2_REFUSED_STREAM"));
}

/** The node answered Unavailable and said it did not coordinate the write (`x-dynamo-forward-outcome: declined`). */
export function declined(err: ConnectError): boolean {
  return err.code === Code.Unavailable && err.metadata.get(FORWARD_OUTCOME_HEADER) === "declined";
}

/**
 * No answer came from the node: the connection failed or broke (a socket error, or the stream
 * reset: Canceled or Aborted when the caller did not cancel), or the deadline passed.
 */
export function noAnswer(err: ConnectError): boolean {
  return err.code === Code.DeadlineExceeded || err.code === Code.Canceled || err.code === Code.Aborted || systemErrors(err).length > 0;
}

/**
 * Whether a call that failed (and that the caller did not cancel) may be sent to another node.
 * A read may, after Unavailable or no answer (errors above): reading twice is harmless. A
 * write may only when it certainly reached no coordinator (never sent, or declined): any
 * other failure may have been applied, and a second attempt would issue a second version of
 * it.
 */
export function mayRetry(kind: "read" | "write", err: ConnectError): boolean {
  if (kind === "write") return neverSent(err) || declined(err);
  return err.code === Code.Unavailable || noAnswer(err);
}
