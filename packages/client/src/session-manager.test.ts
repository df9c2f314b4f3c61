import { once } from "node:events";
import http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { GuardedHttp2SessionManager } from "./session-manager.js";

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

/** An h2c server answering every request with 200 and the number of the session it came on. */
async function startServer(): Promise<{ url: string; sessions: http2.ServerHttp2Session[] }> {
  const server = http2.createServer();
  const sessions: http2.ServerHttp2Session[] = [];
  server.on("session", (session) => sessions.push(session));
  server.on("stream", (stream) => {
    stream.respond({ ":status": 200 });
    stream.end(String(sessions.indexOf(stream.session as http2.ServerHttp2Session)));
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  cleanups.push(async () => {
    for (const session of sessions) session.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, sessions };
}

async function get(manager: GuardedHttp2SessionManager): Promise<{ body: string; session: http2.ClientHttp2Session }> {
  const stream = await manager.request("GET", "/", {}, {});
  const session = stream.session as http2.ClientHttp2Session;
  stream.end();
  let body = "";
  stream.setEncoding("utf8");
  for await (const chunk of stream) body += chunk as string;
  if (!stream.closed) await once(stream, "close");
  return { body, session };
}

describe("GuardedHttp2SessionManager", () => {
  // connectrpc/connect-es#1768: a GOAWAY on a session without open streams makes the manager
  // destroy it with an error that node emits later; a request made in between moves the
  // manager to a new session and takes its error listeners off the old one, so the late error
  // was an uncaught exception (a dead e2e test process in CI, a crashed application for users).
  // Without the guard, vitest reports that exception and this file fails.
  it("survives a GOAWAY on an idle session when a request arrives before the session is gone", async () => {
    const { url, sessions } = await startServer();
    const manager = new GuardedHttp2SessionManager(url);
    const uncaught = new Promise<unknown>((resolve) => {
      process.on("uncaughtExceptionMonitor", resolve);
      cleanups.push(() => void process.off("uncaughtExceptionMonitor", resolve));
    });
    cleanups.push(() => manager.abort());

    const first = await get(manager);
    expect(first.body).toBe("0");
    // Issued from the client session's own "goaway" event, after the manager's handler has
    // destroyed the session and before node emits the error: the widest form of the race.
    const racing = new Promise<{ body: string; session: http2.ClientHttp2Session }>((resolve, reject) => {
      first.session.once("goaway", () => get(manager).then(resolve, reject));
    });
    // Not events.once: it rejects on the session's "error", which is the point here.
    const gone = new Promise((resolve) => first.session.once("close", resolve));
    sessions[0]!.goaway(http2.constants.NGHTTP2_NO_ERROR);

    const second = await racing;
    expect(second.body).toBe("1");
    expect(second.session === first.session).toBe(false);
    // The late error is emitted as the old session closes; unguarded, it is thrown from there
    // (and "close" never comes).
    expect(await Promise.race([gone.then(() => "closed"), uncaught])).toBe("closed");
    expect(first.session.destroyed).toBe(true);
    expect((await get(manager)).body).toBe("1");
  });
});
