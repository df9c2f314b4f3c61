import { describe, expect, it } from "vitest";
import { ConfigError, envName, helpText, parseConfig } from "./config.js";

const SECRET = ["--cluster-secret", "0123456789abcdef-config-test"];

describe("parseConfig", () => {
  it("applies defaults and adds this node to the peers", () => {
    const c = parseConfig(["--node-id", "a", ...SECRET], {});
    expect(c).toMatchObject({
      nodeId: "a",
      listen: "127.0.0.1:7001",
      advertise: "127.0.0.1:7001",
      n: 3,
      r: 2,
      w: 2,
      vnodes: 256,
      sync: false,
      dataDir: "./data/a",
    });
    expect(c.peers).toEqual([{ id: "a", address: "127.0.0.1:7001" }]);
  });

  it("reads environment variables of the same names, flags winning", () => {
    const env = { DYNAMO_NODE_ID: "env-node", DYNAMO_CLUSTER_SECRET: "0123456789abcdef-config-test", DYNAMO_N: "5", DYNAMO_SYNC: "true", DYNAMO_W: "3" };
    const c = parseConfig(["--w=4"], env);
    expect(c).toMatchObject({ nodeId: "env-node", n: 5, w: 4, sync: true });
    expect(envName("request-timeout-ms")).toBe("DYNAMO_REQUEST_TIMEOUT_MS");
  });

  it("parses read repair as on, off or a probability", () => {
    expect(parseConfig(["--node-id", "a", ...SECRET], {}).readRepair).toBe(1);
    expect(parseConfig(["--node-id", "a", ...SECRET, "--read-repair", "off"], {}).readRepair).toBe(0);
    expect(parseConfig(["--node-id", "a", ...SECRET, "--read-repair", "0.25"], {}).readRepair).toBe(0.25);
    expect(parseConfig(["--node-id", "a", ...SECRET, "--hinted-handoff", "false"], {}).hintedHandoff).toBe(false);
  });

  it("parses static peers", () => {
    const c = parseConfig(["--node-id", "b", "--listen", "127.0.0.1:7002", "--peers", "a@127.0.0.1:7001, b@127.0.0.1:7002", ...SECRET], {});
    expect(c.peers.map((p) => p.id)).toEqual(["a", "b"]);
  });

  const bad: Array<[string[], RegExp]> = [
    [[...SECRET], /--node-id is required/],
    [["--node-id", "-x", ...SECRET], /--node-id must be/],
    [["--node-id", "a"], /a cluster secret is required/],
    [["--node-id", "a", "--cluster-secret", "short"], /too weak: it is 5 characters; use at least 24/],
    [["--node-id", "a", "--cluster-secret", "a".repeat(40)], /too weak: it uses only 1 distinct characters/],
    [["--node-id", "a", "--cluster-secret", "abcdefgh" + "x".repeat(30)], /too weak: one character makes up more than a third/],
    [["--node-id", "a", ...SECRET, "--cluster-secret-file", "/nonexistent"], /not both/],
    [["--node-id", "a", "--cluster-secret-file", "/nonexistent/secret"], /cannot read --cluster-secret-file/],
    [["--node-id", "a", ...SECRET, "--require-client-auth"], /--require-client-auth needs --tokens-file/],
    [["--node-id", "a", ...SECRET, "--allowed-hosts", "a b"], /--allowed-hosts: 'a b' is not a host/],
    [["--node-id", "a", ...SECRET, "--log-level", "loud"], /--log-level must be one of debug, info, warn, error, silent/],
    [["--node-id", "a", ...SECRET, "--n", "0"], /--n must be between 1 and 16/],
    [["--node-id", "a", ...SECRET, "--r", "4"], /--r \(4\) cannot exceed --n \(3\)/],
    [["--node-id", "a", ...SECRET, "--w", "x"], /--w must be an integer/],
    [["--node-id", "a", ...SECRET, "--listen", "nope"], /--listen must be host:port/],
    [["--node-id", "a", ...SECRET, "--listen", "0.0.0.0:7001"], /--advertise must be an address others can reach/],
    [["--node-id", "a", ...SECRET, "--peers", "a@127.0.0.1:7001,a@127.0.0.1:7002"], /names node 'a' twice/],
    [["--node-id", "a", ...SECRET, "--peers", "127.0.0.1:7001"], /id@host:port/],
    [["--node-id", "a", ...SECRET, "--peers", "a@127.0.0.1:9999"], /advertises 127.0.0.1:7001/],
    [["--node-id", "a", ...SECRET, "--sync=maybe"], /--sync must be true or false/],
    [["--node-id", "a", ...SECRET, "--resolution", "random"], /--resolution must be/],
    [["--node-id", "a", ...SECRET, "--bogus", "1"], /unknown option --bogus/],
    [["--node-id", "a", ...SECRET, "stray"], /unexpected argument 'stray'/],
    [["--node-id"], /--node-id needs a value/],
    [["--node-id", "a", ...SECRET, "--read-repair", "sometimes"], /--read-repair must be/],
    [["--node-id", "a", ...SECRET, "--read-repair", "1.5"], /--read-repair must be/],
    [["--node-id", "a", ...SECRET, "--hint-ttl-ms", "10000", "--tombstone-grace-ms", "5000"], /must exceed --hint-ttl-ms/],
  ];
  it.each(bad)("rejects %j with a one-line reason", (argv, reason) => {
    expect(() => parseConfig(argv, {})).toThrow(ConfigError);
    expect(() => parseConfig(argv, {})).toThrow(reason);
  });

  it("documents every option with its environment variable", () => {
    const help = helpText();
    expect(help).toContain("--cluster-secret");
    expect(help).toContain("DYNAMO_CLUSTER_SECRET");
  });
});
