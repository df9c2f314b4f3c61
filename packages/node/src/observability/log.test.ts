import { describe, expect, it } from "vitest";
import { jsonLogger, rateLimited, withRequestScope } from "./log.js";

function capture(level: Parameters<typeof jsonLogger>[2] = "info") {
  const lines: string[] = [];
  const log = jsonLogger("n1", (line) => lines.push(line), level);
  return { log, entries: () => lines.map((l) => JSON.parse(l) as Record<string, unknown>), text: () => lines.join("") };
}

describe("jsonLogger", () => {
  it("writes one JSON object per line with time, level, node and message", () => {
    const { log, entries } = capture();
    log.info("hello", { a: 1 });
    expect(entries()).toEqual([{ time: expect.stringMatching(/^\d{4}-\d\d-\d\dT/), level: "info", node: "n1", msg: "hello", a: 1 }]);
  });

  it("drops lines below its level", () => {
    const { log, entries } = capture("warn");
    log.debug("d");
    log.info("i");
    log.warn("w");
    log.error("e");
    expect(entries().map((e) => e.msg)).toEqual(["w", "e"]);
    const debug = capture("debug");
    debug.log.debug("d");
    expect(debug.entries().map((e) => e.level)).toEqual(["debug"]);
  });

  it("never writes a secret, whatever field carries it", () => {
    const { log, text } = capture();
    log.warn("request refused", {
      headers: { authorization: "Bearer tok-123456", "x-dynamo-cluster-secret": "s3cret-value", host: "example" },
      clusterSecret: "s3cret-value",
      nested: { deeper: { token: "tok-123456" } },
    });
    expect(text()).not.toContain("s3cret-value");
    expect(text()).not.toContain("tok-123456");
    expect(text()).toContain('"host":"example"');
  });

  it("tags every line of a request with its id: the client's when sane, else one made up", () => {
    const { log, entries } = capture();
    withRequestScope("client-id-1", () => log.info("a"));
    withRequestScope('forged","level":"error', () => {
      log.info("b");
      log.info("c");
    });
    log.info("outside");
    const [a, b, c, outside] = entries();
    expect(a!.requestId).toBe("client-id-1");
    expect(b!.requestId).toMatch(/^[0-9a-f]{16}$/);
    expect(c!.requestId).toBe(b!.requestId);
    expect(outside!.requestId).toBeUndefined();
  });

  it("keeps the request id across awaits", async () => {
    const { log, entries } = capture();
    await withRequestScope("async-1", async () => {
      await new Promise((r) => setTimeout(r, 1));
      log.info("later");
    });
    expect(entries()[0]!.requestId).toBe("async-1");
  });

  it("is rate-limited per message, debug included", () => {
    const { log, entries } = capture("debug");
    const limited = rateLimited(log, { burst: 2, windowMs: 1000 }, () => 0);
    for (let i = 0; i < 5; i++) limited.debug("same");
    expect(entries()).toHaveLength(2);
  });
});
