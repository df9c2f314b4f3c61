// What the lean calling sides' tests (lean-transport.test.ts over HTTP/2, lean-http1.test.ts over
// HTTP/1.1) share: a Health service whose answer a header picks, the outcome of a call as a
// comparable value, random answers for the property that both transports agree, and the cases
// both suites run alike (itAnswersLikeConnectNode).
import * as net from "node:net";
import { create, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError, type Transport } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { Health, HealthCheckResponse_ServingStatus, HealthCheckResponseSchema } from "@dynamo-ts/proto";
import fc from "fast-check";
import { expect, it } from "vitest";
import { neverSent } from "../errors.js";

const never = new Promise<never>(() => {});

/** A Health service whose answer the request's x-case header picks (ok, not-found, slow). */
export const caseHandler: ReturnType<typeof connectNodeAdapter> = connectNodeAdapter({
  routes: (router) =>
    router.service(Health, {
      async check(req, ctx) {
        const kase = ctx.requestHeader.get("x-case");
        ctx.responseHeader.set("x-seen-timeout", ctx.requestHeader.get("connect-timeout-ms") ?? "none");
        ctx.responseHeader.set("x-seen-auth", ctx.requestHeader.get("authorization") ?? "none");
        ctx.responseTrailer.set("x-trailer", "t1");
        if (kase === "not-found") throw new ConnectError("no such service", Code.NotFound, { "x-why": "because" });
        if (kase === "slow") await never;
        return { status: req.service === "down" ? HealthCheckResponse_ServingStatus.NOT_SERVING : HealthCheckResponse_ServingStatus.SERVING };
      },
    }),
});

export type Outcome = { ok: unknown; header?: Record<string, string | null>; trailer?: string | null } | { code: string; message: string; why: string | null };

/** A Health/Check call with x-case `caseName`, as its message and metadata or its error's code, message and metadata. */
export async function outcome(
  transport: Transport,
  caseName: string,
  options: { timeoutMs?: number; signal?: AbortSignal; headers?: Record<string, string> } = {},
): Promise<Outcome> {
  try {
    const res = await transport.unary(Health.method.check, options.signal, options.timeoutMs, { "x-case": caseName, ...options.headers }, { service: "" });
    return {
      ok: res.message.status,
      header: { timeout: res.header.get("x-seen-timeout"), auth: res.header.get("x-seen-auth") },
      trailer: res.trailer.get("x-trailer"),
    };
  } catch (err) {
    const ce = ConnectError.from(err);
    return { code: Code[ce.code], message: ce.rawMessage, why: ce.metadata.get("x-why") ?? ce.metadata.get("x-retry") };
  }
}

/** An answer the property test draws: status, headers and body, sent as they are. */
export interface RandomAnswer {
  readonly status: number;
  readonly headers: Record<string, string>;
  readonly body: Uint8Array;
}

/** Statuses, content types, Connect headers and trailers, and bodies (empty, a message, error JSON, text, bytes). */
export function randomAnswerArbitrary(): fc.Arbitrary<RandomAnswer> {
  const healthy = toBinary(HealthCheckResponseSchema, create(HealthCheckResponseSchema, { status: HealthCheckResponse_ServingStatus.SERVING }));
  return fc.record({
    status: fc.constantFrom(200, 200, 200, 400, 401, 403, 404, 408, 409, 412, 429, 499, 500, 502, 503, 504),
    headers: fc.record(
      {
        "content-type": fc.constantFrom(
          "application/proto",
          "application/json",
          "application/json; charset=utf-8",
          "application/connect+proto",
          "text/plain",
          "application/grpc",
        ),
        "x-why": fc.string({ maxLength: 8 }).filter((v) => /^[a-z]*$/.test(v)),
        "trailer-x-why": fc.constantFrom("t", "u"),
        "content-encoding": fc.constantFrom("identity"),
      },
      { requiredKeys: [] },
    ),
    body: fc.oneof(
      fc.uint8Array({ maxLength: 40 }),
      fc.constant(healthy),
      fc
        .record(
          { code: fc.constantFrom("not_found", "unavailable", "internal", "bogus", 7), message: fc.string({ maxLength: 12 }), details: fc.constant([]) },
          { requiredKeys: [] },
        )
        .map((json) => new TextEncoder().encode(JSON.stringify(json))),
      fc.string({ maxLength: 20 }).map((text) => new TextEncoder().encode(text)),
    ),
  });
}

/**
 * Checks that `lean` and `plain` answer each of 300 random answers alike; `answers` is where the
 * raw server looks up the answer whose index a call sends in x-random.
 */
export async function expectSameOnRandomAnswers(
  lean: Transport,
  plain: Transport,
  answers: RandomAnswer[],
  equal: (a: Outcome, b: Outcome) => void,
): Promise<void> {
  const call = async (transport: Transport, index: number): Promise<Outcome> => {
    try {
      const res = await transport.unary(Health.method.check, undefined, 2000, { "x-random": String(index) }, {});
      return { ok: res.message.status, header: { why: res.header.get("x-why") }, trailer: res.trailer.get("x-why") };
    } catch (err) {
      const ce = ConnectError.from(err);
      return { code: Code[ce.code], message: ce.rawMessage, why: ce.metadata.get("x-why") };
    }
  };
  await fc.assert(
    fc.asyncProperty(randomAnswerArbitrary(), async (spec) => {
      answers.push(spec);
      const index = answers.length - 1;
      equal(await call(lean, index), await call(plain, index));
    }),
    { seed: 17, numRuns: 300 },
  );
}

/** The error a Health/Check with these headers fails with on each transport; a call that succeeds is an error itself. */
export function errorsOf(transports: readonly Transport[], timeoutMs: number | undefined, headers?: Record<string, string>): Promise<ConnectError[]> {
  return Promise.all(
    transports.map((t) =>
      t.unary(Health.method.check, undefined, timeoutMs, headers, { service: "" }).then(
        () => {
          throw new Error("the call was answered");
        },
        (err: unknown) => ConnectError.from(err),
      ),
    ),
  );
}

/** Outcomes of a call cancelled before it starts and of one ("slow") cancelled while the server holds it. */
export async function cancelledOutcomes(transport: Transport): Promise<[Outcome, Outcome]> {
  const before = await outcome(transport, "ok", { signal: AbortSignal.abort() });
  const controller = new AbortController();
  setTimeout(() => controller.abort(), 30);
  return [before, await outcome(transport, "slow", { signal: controller.signal })];
}

/** What itAnswersLikeConnectNode needs from a suite; the URLs are read once its servers listen. */
export interface LeanSuite {
  /** Both transports to one server: [lean, connect-node's over the same HTTP version]. */
  transports(url: string): [Transport, Transport];
  /** The server answering with caseHandler. */
  adapterUrl(): string;
  /** The raw server: x-case picks a hand-made answer, x-random one of `randomAnswers`. */
  rawUrl(): string;
  readonly randomAnswers: RandomAnswer[];
}

/** The cases both lean calling sides answer like connect-node's transport; called inside a suite's describe(). */
export function itAnswersLikeConnectNode(suite: LeanSuite): void {
  it.each([
    ["ok", {}],
    ["ok", { timeoutMs: 5000, headers: { authorization: "Bearer abc" } }],
    ["not-found", {}],
    ["slow", { timeoutMs: 50 }],
  ] as const)("answers %s %j like connect-node (connect-node server)", async (caseName, options) => {
    const [lean, plain] = suite.transports(suite.adapterUrl());
    const got = await outcome(lean, caseName, options);
    expect(got).toEqual(await outcome(plain, caseName, options));
    if (caseName === "ok") expect(got).toMatchObject({ ok: HealthCheckResponse_ServingStatus.SERVING, trailer: "t1" });
    if (caseName === "slow") expect(got).toMatchObject({ code: "DeadlineExceeded" });
    if (caseName === "not-found") expect(got).toEqual({ code: "NotFound", message: "no such service", why: "because" });
  });

  it("sends the deadline and the caller's headers", async () => {
    const [lean] = suite.transports(suite.adapterUrl());
    expect(await outcome(lean, "ok", { timeoutMs: 4000, headers: { authorization: "Bearer xyz" } })).toMatchObject({
      header: { timeout: "4000", auth: "Bearer xyz" },
    });
    expect(await outcome(lean, "ok", { timeoutMs: 0 })).toMatchObject({ header: { timeout: "none" } });
    // A fractional deadline goes out as whole milliseconds (connect-node would refuse the fraction).
    expect(await outcome(lean, "ok", { timeoutMs: 2999.25 })).toMatchObject({ header: { timeout: "3000" } });
  });

  it.each(["503-text", "json-type", "garbage", "json-error", "break", "break-after-headers"])(
    "answers a raw server's %s like connect-node",
    async (caseName) => {
      const [lean, plain] = suite.transports(suite.rawUrl());
      const got = await outcome(lean, caseName);
      expect(got).toEqual(await outcome(plain, caseName));
      expect(got).toHaveProperty("code");
    },
  );

  it("refuses a compressed answer it did not ask for", async () => {
    const [lean] = suite.transports(suite.rawUrl());
    expect(await outcome(lean, "gzip")).toMatchObject({ code: "Internal", message: 'unsupported response encoding "snappy"' });
  });

  it("reports a refused connection as Unavailable and never sent, like connect-node", async () => {
    // A port that was just listened on and closed: nothing accepts there.
    const closed = net.createServer();
    await new Promise<void>((ready) => closed.listen(0, "127.0.0.1", ready));
    const url = `http://127.0.0.1:${(closed.address() as net.AddressInfo).port}`;
    await new Promise((done) => closed.close(done));
    const errors = await errorsOf(suite.transports(url), 1000);
    expect(errors.map((e) => [Code[e.code], neverSent(e)])).toEqual([
      ["Unavailable", true],
      ["Unavailable", true],
    ]);
  });

  it("answers random statuses, content types, trailers and bodies like connect-node (property)", async () => {
    const [lean, plain] = suite.transports(suite.rawUrl());
    await expectSameOnRandomAnswers(lean, plain, suite.randomAnswers, (got, want) => expect(got).toEqual(want));
  });
}
