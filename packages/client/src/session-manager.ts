import type { ClientHttp2Stream, Http2Session } from "node:http2";
import { Http2SessionManager } from "@connectrpc/connect-node";

const guarded = new WeakSet<Http2Session>();

/**
 * connect-node's `Http2SessionManager`, with an `error` listener on every session it opens.
 *
 * The manager destroys a session that receives GOAWAY without open streams (a node shutting
 * down) with an error that node emits a little later. A request made in between moves the
 * manager to a new session and removes its listeners from the old one, so that error had no
 * listener left and was an uncaught exception: a crashed process
 * (connectrpc/connect-es#1768, still open). The manager's own listeners and the sessions'
 * streams still receive every error; this listener only keeps an error of a session nobody
 * uses any more from reaching the process.
 */
export class GuardedHttp2SessionManager extends Http2SessionManager {
  override async request(...args: Parameters<Http2SessionManager["request"]>): Promise<ClientHttp2Stream> {
    const stream = await super.request(...args);
    const session = stream.session;
    if (session !== undefined && !guarded.has(session)) {
      guarded.add(session);
      session.on("error", ignoreError);
    }
    return stream;
  }
}

function ignoreError(): void {}
