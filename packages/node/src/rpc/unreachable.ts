// How a call to another node failed: the peer could not be reached (or did not answer in
// time), or it answered with an error. The failure detector counts only the first kind; the
// coordinator tries a fallback node for either.
import { Code, ConnectError } from "@connectrpc/connect";

/** A peer that could not be reached or did not answer in time, as opposed to one that answered with an error. */
export function isUnreachable(err: unknown): boolean {
  const ce = ConnectError.from(err);
  return ce.code === Code.Unavailable || ce.code === Code.DeadlineExceeded || ce.code === Code.Canceled || isRefusedUnprocessed(ce);
}

/**
 * The peer refused the call's stream before processing it (RST_STREAM REFUSED_STREAM): it is
 * shutting down (the stream came after its GOAWAY) or at its stream limit. RFC 9113, 8.7: the
 * request can be retried safely. connect-node reports it as Internal "Stream closed with error
 * code NGHTTP2_REFUSED_STREAM".
 */
export function isRefusedUnprocessed(err: unknown): boolean {
  return err instanceof ConnectError && err.code === Code.Internal && err.rawMessage.includes("NGHTTP2_REFUSED_STREAM");
}

/**
 * A long-lived stream to `peer` that broke: Unavailable (unreachable, so callers fail over),
 * unless the peer answered with a refusal that retrying elsewhere will not change.
 */
export function streamFailure(err: unknown, peer: string, what: string): ConnectError {
  const ce = ConnectError.from(err);
  if (ce.code === Code.PermissionDenied || ce.code === Code.Unimplemented || ce.code === Code.Unavailable) return ce;
  return new ConnectError(`${what} to ${peer} failed: ${ce.rawMessage}`, Code.Unavailable);
}

/**
 * This node's own HTTP/2 session to a peer refused the response (ENHANCE_YOUR_CALM): the
 * session is spent (see BulkLink in peers.ts), not the peer.
 */
export function isRefusedByOwnSession(err: unknown): boolean {
  return err instanceof ConnectError && err.code === Code.Internal && err.rawMessage.includes("NGHTTP2_ENHANCE_YOUR_CALM");
}
