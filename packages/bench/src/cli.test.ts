import { createServer } from "node:net";
import { describe, expect, it } from "vitest";
import { DEFAULT_OPTIONS, httpVersionOf, reportedOptions } from "./bench.js";
import { BenchUsageError, EXIT, parseCommand, parseDuration, run } from "./cli.js";

function io() {
  const out: string[] = [];
  const err: string[] = [];
  return { out, err, io: { out: (s: string) => out.push(s), err: (s: string) => err.push(s), errIsTty: false } };
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

describe("parseCommand", () => {
  it("fills in the defaults", () => {
    const { options, json, quiet, help } = parseCommand([]);
    expect(options).toMatchObject({
      nodes: DEFAULT_OPTIONS.nodes,
      records: 10_000,
      concurrency: 64,
      valueSize: 100,
      seed: 1,
      workloads: ["A", "B", "C", "D", "F"],
      protocol: "connect",
      leanClient: true,
      ceilings: ["transport", "storage"],
      warmupMs: 1_000,
      ceilingDurationMs: 5_000,
      storageBatchSize: 100,
    });
    expect(options.durationMs).toBeUndefined();
    expect(options.operations).toBeUndefined();
    expect(options.keyPrefix).toMatch(/^bench-[0-9a-f]{8}:$/);
    expect(parseCommand([]).options.keyPrefix).not.toBe(options.keyPrefix);
    expect([json, quiet, help]).toEqual([false, false, false]);
  });

  it("reads every option", () => {
    const { options, json, quiet } = parseCommand(
      [
        "--nodes",
        "127.0.0.1:7201, 127.0.0.1:7202",
        "--records",
        "500",
        "--operations",
        "1000",
        "--duration",
        "2s",
        "--warmup",
        "250ms",
        "--concurrency",
        "8",
        "--rate",
        "1500.5",
        "--value-size",
        "0",
        "--distribution",
        "uniform",
        "--r",
        "1",
        "--w=3",
        "--seed",
        "42",
        "--workloads",
        "c,A, f",
        "--protocol",
        "grpc",
        "--http-version",
        "2",
        "--lean-client",
        "false",
        "--timeout-ms",
        "900",
        "--key-prefix",
        "k:",
        "--no-ceilings",
        "--ceiling-duration",
        "1.5",
        "--ceiling-node",
        "127.0.0.1:7203",
        "--storage-batch",
        "50",
        "--storage-dir",
        "/tmp/x",
        "--json",
        "--quiet",
      ],
      { DYNAMO_TOKEN: "bench-token-0123456789" },
    );
    expect(options).toEqual({
      nodes: ["127.0.0.1:7201", "127.0.0.1:7202"],
      records: 500,
      operations: 1000,
      durationMs: 2000,
      warmupMs: 250,
      concurrency: 8,
      rate: 1500.5,
      valueSize: 0,
      distribution: "uniform",
      r: 1,
      w: 3,
      seed: 42,
      workloads: ["C", "A", "F"],
      protocol: "grpc",
      httpVersion: "2",
      leanClient: false,
      timeoutMs: 900,
      keyPrefix: "k:",
      ceilings: [],
      ceilingDurationMs: 1500,
      ceilingNode: "127.0.0.1:7203",
      storageBatchSize: 50,
      storageDir: "/tmp/x",
      credentials: { token: "bench-token-0123456789" },
    });
    expect(json).toBe(true);
    expect(quiet).toBe(true);
    expect(parseCommand(["-h"]).help).toBe(true);
    expect(parseCommand(["--ceilings", "storage"]).options.ceilings).toEqual(["storage"]);
    expect(parseCommand(["--ceilings", "storage,transport,storage"]).options.ceilings).toEqual(["storage", "transport"]);
    expect(parseCommand(["--ceilings", "none"]).options.ceilings).toEqual([]);
    expect(parseCommand(["--http-version", "1.1"]).options.httpVersion).toBe("1.1");
  });

  it("runs Connect and gRPC-Web over HTTP/1.1 and gRPC over HTTP/2 unless told otherwise", () => {
    const versionOf = (args: string[]) => httpVersionOf(parseCommand(args).options);
    expect(versionOf([])).toBe("1.1");
    expect(versionOf(["--protocol", "grpc-web"])).toBe("1.1");
    expect(versionOf(["--protocol", "grpc"])).toBe("2");
    expect(versionOf(["--http-version", "2"])).toBe("2");
    expect(reportedOptions(parseCommand([]).options).httpVersion).toBe("1.1");
  });

  it.each([
    [["--frobnicate"], /frobnicate/],
    [["extra"], /unexpected argument/],
    [["--workloads", "a,e"], /unknown workload 'e'.*scans/],
    [["--workloads", ","], /at least one workload/],
    [["--distribution", "pareto"], /--distribution must be one of/],
    [["--protocol", "http3"], /--protocol/],
    [["--lean-client", "yes"], /--lean-client must be true or false/],
    [["--http-version", "3"], /--http-version must be 1.1 or 2/],
    [["--protocol", "grpc", "--http-version", "1.1"], /--protocol grpc needs --http-version 2/],
    [["--records", "0"], /--records must be an integer of at least 1/],
    [["--concurrency", "-3"], /concurrency/],
    [["--rate", "0"], /--rate must be a positive number/],
    [["--rate", "fast"], /--rate must be a positive number/],
    [["--rate=-100"], /--rate must be a positive number/],
    [["--r", "two"], /--r must be an integer/],
    [["--duration", "soon"], /--duration must be a duration/],
    [["--nodes", "localhost"], /not host:port/],
    [["--nodes", ""], /at least one host:port/],
    [["--seed", "99999999999"], /--seed must be at most/],
    [["--key-prefix", ""], /must not be empty/],
    [["--ceilings", "network"], /--ceilings takes transport, storage or none/],
    [["--ceilings", "storage", "--no-ceilings"], /not both/],
  ])("rejects %j", (argv, message) => {
    expect(() => parseCommand(argv)).toThrow(BenchUsageError);
    expect(() => parseCommand(argv)).toThrow(message);
  });
});

describe("parseDuration", () => {
  it("takes seconds by default and ms, s or m suffixes", () => {
    expect(parseDuration("30", "d")).toBe(30_000);
    expect(parseDuration("1.5s", "d")).toBe(1_500);
    expect(parseDuration("250ms", "d")).toBe(250);
    expect(parseDuration("2m", "d")).toBe(120_000);
    expect(() => parseDuration("-1", "d")).toThrow(BenchUsageError);
  });
});

describe("run", () => {
  it("prints help and exits 0", async () => {
    const a = io();
    expect(await run(["--help"], a.io)).toBe(EXIT.ok);
    expect(a.out.join("")).toContain("Usage: dynamo-bench");
  });

  it("prints --version and exits 0", async () => {
    const a = io();
    expect(await run(["--version"], a.io)).toBe(EXIT.ok);
    expect(a.out.join("")).toMatch(/^dynamo-bench \d+\.\d+\.\d+\n$/);
  });

  it("exits 2 with the reason and the help on a usage error", async () => {
    const a = io();
    expect(await run(["--records", "x"], a.io)).toBe(EXIT.usage);
    expect(a.err.join("")).toMatch(/--records must be an integer[\s\S]*Usage: dynamo-bench/);
    expect(a.out).toEqual([]);
  });

  it("exits 1 and names the node when the cluster does not answer", async () => {
    const port = await closedPort();
    const a = io();
    expect(await run(["--nodes", `127.0.0.1:${port}`, "--timeout-ms", "2000", "--quiet"], a.io)).toBe(EXIT.failed);
    expect(a.err.join("")).toContain(`node 127.0.0.1:${port} does not answer its status call`);
    expect(a.out).toEqual([]);
  });
});
