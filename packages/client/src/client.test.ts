// DynamoClient against fake nodes (in-process Connect servers that answer as told): which
// failures move a call to the next node, round-robin, backoff, typed errors, cancellation.
import * as http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { Code, ConnectError, type HandlerContext } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { FORWARD_OUTCOME_HEADER, KVService } from "@dynamo-ts/proto";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { DynamoClient } from "./client.js";
import { DynamoError } from "./errors.js";
import { freePort } from "./test-support/local-cluster.js";
import { rejection } from "./test-support/rejection.js";

/** How a fake node answers its next calls: a value, or a thrown error. */
type Behaviour = (method: string, ctx: HandlerContext) => void | Promise<void>;

class FakeNode {
  readonly calls: string[] = [];
  behaviour: Behaviour = () => {};
  private server!: http2.Http2Server;
  private readonly sessions = new Set<http2.ServerHttp2Session>();

  /** A behaviour: the connection breaks while the call is in flight. */
  readonly breakConnection: Behaviour = () => {
    for (const s of this.sessions) s.destroy();
    return new Promise(() => {});
  };

  /**
   * Streams are refused unprocessed (RST_STREAM REFUSED_STREAM), as a real node refuses
   * those opened after its GOAWAY when it begins shutting down.
   */
  refusing = false;

  async start(): Promise<void> {
    const answer = async (method: string, ctx: HandlerContext) => {
      this.calls.push(method);
      await this.behaviour(method, ctx);
    };
    const handler = connectNodeAdapter({
      routes: (router) =>
        router.service(KVService, {
          get: async (req, ctx) => (
            await answer("get", ctx),
            { siblings: [{ value: new TextEncoder().encode(`${req.key}@${this.address}`) }], context: new Uint8Array([1]) }
          ),
          put: async (_req, ctx) => (await answer("put", ctx), { context: new Uint8Array([2]) }),
          delete: async (_req, ctx) => (await answer("delete", ctx), {}),
        }),
    });
    this.server = http2.createServer(handler).on("session", (s) => {
      this.sessions.add(s);
      s.once("close", () => this.sessions.delete(s));
    });
    // Ahead of the Connect handler, which then finds the stream closed.
    this.server.prependListener("stream", (stream) => {
      if (this.refusing) stream.close(http2.constants.NGHTTP2_REFUSED_STREAM);
    });
    await new Promise<void>((ready) => this.server.listen(0, "127.0.0.1", ready));
  }

  get address(): string {
    return `127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  stop(): Promise<void> {
    return new Promise((done) => this.server.close(() => done()));
  }
}

const fail = (code: Code, message: string, outcome?: string) => () => {
  const err = new ConnectError(message, code);
  if (outcome) err.metadata.set(FORWARD_OUTCOME_HEADER, outcome);
  throw err;
};

describe("DynamoClient over several nodes", () => {
  const nodes = [new FakeNode(), new FakeNode()];
  const clients: DynamoClient[] = [];
  let closed: string;
  const client = (addresses: string[], options: { timeoutMs?: number; backoffMs?: number; lean?: boolean } = {}) => {
    const c = new DynamoClient({ nodes: addresses, ...options });
    clients.push(c);
    return c;
  };

  beforeAll(async () => {
    await Promise.all(nodes.map((n) => n.start()));
    closed = `127.0.0.1:${await freePort()}`;
  });
  afterEach(() => {
    for (const c of clients.splice(0)) c.close();
    for (const n of nodes) {
      n.calls.length = 0;
      n.behaviour = () => {};
      n.refusing = false;
    }
  });
  afterAll(() => Promise.all(nodes.map((n) => n.stop())));

  it("spreads calls round-robin", async () => {
    const c = client(nodes.map((n) => n.address));
    for (let i = 0; i < 4; i++) await c.get("k");
    expect(nodes.map((n) => n.calls.length)).toEqual([2, 2]);
  });

  it("fails a read over on Unavailable, DeadlineExceeded, a refused or a broken connection", async () => {
    const [a, b] = nodes as [FakeNode, FakeNode];
    a.behaviour = fail(Code.Unavailable, "1 of 3 replicas answered, 2 needed");
    expect(new TextDecoder().decode((await client([a.address, b.address]).get("k"))!.values[0])).toBe(`k@${b.address}`);

    a.behaviour = () => new Promise((r) => setTimeout(r, 2_000));
    // A fractional deadline works too (it goes out as whole milliseconds).
    const slow = client([a.address, b.address], { timeoutMs: 199.5 });
    expect(new TextDecoder().decode((await slow.get("k"))!.values[0])).toBe(`k@${b.address}`);

    expect(await client([closed, b.address]).get("k")).not.toBeNull();

    a.behaviour = a.breakConnection;
    expect(new TextDecoder().decode((await client([a.address, b.address]).get("k"))!.values[0])).toBe(`k@${b.address}`);
  });

  it("does not fail a read over when the node answered (NotFound is null, InvalidArgument is thrown)", async () => {
    const [a, b] = nodes as [FakeNode, FakeNode];
    a.behaviour = fail(Code.NotFound, "no such key");
    expect(await client([a.address, b.address]).get("k")).toBeNull();
    a.behaviour = fail(Code.InvalidArgument, "key must not be empty");
    const err = await rejection(client([a.address, b.address]).get("k"));
    expect([err.code, err.codeName, err.node, err.attempts.length]).toEqual([Code.InvalidArgument, "InvalidArgument", `http://${a.address}`, 1]);
    expect(b.calls).toEqual([]);
  });

  it("fails a write over only when it certainly reached no coordinator: refused connection, refused stream, or declined", async () => {
    const [a, b] = nodes as [FakeNode, FakeNode];
    expect(await client([closed, b.address]).put("k", "v")).toEqual({ context: new Uint8Array([2]) });
    expect(b.calls).toEqual(["put"]);

    a.behaviour = fail(Code.Unavailable, "node1 did not coordinate the write: store not writable", "declined");
    await client([a.address, b.address]).delete("k");
    expect(b.calls).toEqual(["put", "delete"]);

    // A stream the node refused unprocessed (it is shutting down), through either transport.
    a.refusing = true;
    for (const lean of [true, false]) expect(await client([a.address, b.address], { lean }).put("k", "v")).toEqual({ context: new Uint8Array([2]) });
    expect(b.calls).toEqual(["put", "delete", "put", "put"]);
  });

  it.each([
    ["Unavailable (quorum not met)", fail(Code.Unavailable, "1 of 3 replicas acknowledged, 2 needed")],
    ["Unavailable answered after forwarding", fail(Code.Unavailable, "1 of 3 replicas acknowledged, 2 needed", "answered")],
    ["DeadlineExceeded", fail(Code.DeadlineExceeded, "deadline passed")],
    ["a hang past the deadline", () => new Promise<void>((r) => setTimeout(r, 2_000))],
    ["a broken connection", (_m: string, ctx: HandlerContext) => nodes[0]!.breakConnection("put", ctx)],
  ] as [string, Behaviour][])("does not send a write again after %s", async (_what, behaviour) => {
    const [a, b] = nodes as [FakeNode, FakeNode];
    a.behaviour = behaviour;
    const err = await rejection(client([a.address, b.address], { timeoutMs: 300 }).put("k", "v"));
    expect(err.node).toBe(`http://${a.address}`);
    expect(err.attempts).toHaveLength(1);
    expect(b.calls).toEqual([]);
  });

  it("passes over a node that failed for the backoff, and tries it last rather than not at all", async () => {
    const [a, b] = nodes as [FakeNode, FakeNode];
    const c = client([closed, a.address, b.address], { backoffMs: 60_000 });
    for (let i = 0; i < 6; i++) await c.put(`k${i}`, "v");
    // Only the first call went to the closed port; afterwards a and b share the load.
    expect(a.calls.length + b.calls.length).toBe(6);
    expect(Math.abs(a.calls.length - b.calls.length)).toBeLessThanOrEqual(1);

    a.behaviour = fail(Code.Unavailable, "declined", "declined");
    b.behaviour = fail(Code.Unavailable, "declined", "declined");
    const err = await rejection(c.put("k", "v"));
    // Every node was tried once: the two up ones, then the one in backoff.
    expect(err.attempts.map((x) => x.node)).toHaveLength(3);
    expect(err.attempts.at(-1)!.node).toBe(`http://${closed}`);
  });

  it("gives up at once when the caller cancels, with code Canceled", async () => {
    const [a, b] = nodes as [FakeNode, FakeNode];
    a.behaviour = b.behaviour = () => new Promise((r) => setTimeout(r, 2_000));
    const abort = new AbortController();
    setTimeout(() => abort.abort(), 100);
    const c = client([a.address, b.address]);
    const err = await rejection(c.get("k", { signal: abort.signal }));
    expect(err.codeName).toBe("Canceled");
    expect(err.attempts).toHaveLength(1);
    // The node is not held responsible: of the next two calls, b gets one and a the other.
    a.behaviour = b.behaviour = () => {};
    const before = [a.calls.length, b.calls.length];
    await c.get("k");
    await c.get("k");
    expect([a.calls.length - before[0]!, b.calls.length - before[1]!]).toEqual([1, 1]);
  });

  it("raises DynamoErrors that are ConnectErrors, and only those are DynamoErrors", async () => {
    const err = await rejection(client([closed]).put("k", "v"));
    expect(err).toBeInstanceOf(ConnectError);
    expect(ConnectError.from(err)).toBe(err);
    expect(err.code).toBe(Code.Unavailable);
    expect(err.rawMessage).toMatch(/ECONNREFUSED/);
    expect(new ConnectError("x", Code.Unavailable)).not.toBeInstanceOf(DynamoError);
  });

  it("needs exactly one of node and nodes", () => {
    expect(() => new DynamoClient({})).toThrow(TypeError);
    expect(() => new DynamoClient({ node: "127.0.0.1:1", nodes: ["127.0.0.1:2"] })).toThrow(TypeError);
    expect(() => new DynamoClient({ nodes: [] })).toThrow(TypeError);
  });
});
