import { createServer } from "node:net";
import { describe, expect, it } from "vitest";
import { EXIT, parseArgs, run } from "./cli.js";
import { normalizeNodeUrl } from "./transport.js";

function io() {
  const out: string[] = [];
  const err: string[] = [];
  return { out, err, io: { out: (s: string) => out.push(s), err: (s: string) => err.push(s), stdin: () => new Uint8Array(), env: {} } };
}

async function closedPort(): Promise<number> {
  return new Promise((resolve) => {
    const server = createServer();
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

describe("dynamo CLI", () => {
  it("parses flags in both forms", () => {
    const p = parseArgs(["put", "k", "v", "--w", "2", "--node=127.0.0.1:7002", "--json"]);
    expect(p.positional).toEqual(["put", "k", "v"]);
    expect(p.flags.get("w")).toBe("2");
    expect(p.flags.get("node")).toBe("127.0.0.1:7002");
    expect(p.flags.get("json")).toBe("true");
    expect(parseArgs(["put", "--", "--key", "-v"]).positional).toEqual(["put", "--key", "-v"]);
  });

  it("prints help and exits 0 for --help, 2 with no command", async () => {
    const a = io();
    expect(await run(["--help"], a.io)).toBe(EXIT.ok);
    expect(a.out.join("")).toContain("Usage: dynamo");
    expect(await run([], io().io)).toBe(EXIT.usage);
  });

  it.each([
    [["frobnicate"], /unknown command/],
    [["get"], /usage: dynamo get/],
    [["put", "k"], /usage: dynamo put/],
    [["get", "k", "--r", "two"], /--r must be a positive integer/],
    [["get", "k", "--bogus"], /unknown option --bogus/],
    [["put", "k", "v", "--context", "not base64!"], /--context is not base64/],
    [["get", "k", "--protocol", "smtp"], /--protocol must be/],
  ])("rejects %j with exit code 2", async (argv, message) => {
    const a = io();
    expect(await run(argv, a.io)).toBe(EXIT.usage);
    expect(a.err.join("")).toMatch(message);
  });

  it("exits 4 when the node cannot be reached", async () => {
    const port = await closedPort();
    const a = io();
    expect(await run(["get", "k", "--node", `127.0.0.1:${port}`, "--timeout-ms", "2000"], a.io)).toBe(EXIT.unavailable);
    expect(a.err.join("")).toMatch(/Unavailable/);
  });

  it("normalizes node addresses", () => {
    expect(normalizeNodeUrl("127.0.0.1:7001")).toBe("http://127.0.0.1:7001");
    expect(normalizeNodeUrl("http://localhost:7002/")).toBe("http://localhost:7002");
    expect(() => normalizeNodeUrl("http://")).toThrow(/not a node address/);
  });
});
