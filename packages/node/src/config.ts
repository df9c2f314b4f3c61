// Node configuration: command-line flags, each with an environment variable of the same name
// (`--request-timeout-ms` ↔ `DYNAMO_REQUEST_TIMEOUT_MS`) so containers can be configured by env.
// Flags win over the environment. Anything invalid stops start-up with a one-line reason.

import { defaultSwimConfig, type SwimConfig, validateSwimConfig } from "@dynamo-ts/gossip";
import { accessSync, constants as fsConstants, readFileSync } from "node:fs";
import { LOG_LEVELS, type LogLevel } from "./observability/log.js";
import { weakSecretReason } from "./rpc/credentials.js";

/** SWIM timings derived from the node's gossip flags (the ping timeout is 30% of a period). */
export function swimSettings(intervalMs: number, suspicionMs: number, syncIntervalMs: number): Partial<SwimConfig> {
  return { protocolPeriodMs: intervalMs, pingTimeoutMs: Math.max(10, Math.floor(intervalMs * 0.3)), suspicionTimeoutMs: suspicionMs, syncIntervalMs };
}

export type ConflictResolution = "siblings" | "lww";

export interface PeerAddress {
  readonly id: string;
  /** host:port */
  readonly address: string;
}

export interface NodeConfig {
  readonly nodeId: string;
  /** host:port the server binds. */
  readonly listen: string;
  /** host:port other nodes and clients use to reach this node. */
  readonly advertise: string;
  /** Members known from configuration, this one included; gossip learns the rest. */
  readonly peers: readonly PeerAddress[];
  /** host:port addresses to join the cluster through. */
  readonly seeds: readonly string[];
  readonly gossipIntervalMs: number;
  readonly gossipSuspicionMs: number;
  readonly gossipSyncIntervalMs: number;
  /** Announce a graceful departure (leave the ring) on SIGTERM, rather than a restart. */
  readonly leaveOnSigterm: boolean;
  readonly dataDir: string;
  readonly n: number;
  readonly r: number;
  readonly w: number;
  readonly vnodes: number;
  readonly clusterSecret: string;
  /** fsync every write batch before acknowledging it. */
  readonly sync: boolean;
  readonly requestTimeoutMs: number;
  readonly maxKeyBytes: number;
  readonly maxValueBytes: number;
  /** Most siblings a client write may leave a key with. */
  readonly maxSiblings: number;
  /** Largest record (a key's encoded sibling set) a client write may leave; at least two values' worth. */
  readonly maxRecordBytes: number;
  readonly resolution: ConflictResolution;
  readonly logLevel: LogLevel;
  /** --tls-cert-file, --tls-key-file, --tls-ca-file: TLS on the node's port and mutual TLS between nodes; undefined: plaintext. */
  readonly tls: TlsFiles | undefined;
  /** --tokens-file: client bearer tokens and their roles. */
  readonly tokensFile: string | undefined;
  /** The key API needs a token (read for Get, write for Put and Delete). */
  readonly requireClientAuth: boolean;
  /** Host header values requests may carry (lower case); empty: any. */
  readonly allowedHosts: readonly string[];
  /** How long SIGTERM waits for in-flight requests before closing. */
  readonly shutdownGraceMs: number;
  /** A connection must complete a request's headers this soon after it opens (0: no limit). */
  readonly firstRequestTimeoutMs: number;
  /** A connection with no request in progress is closed after this long (0: never). */
  readonly idleConnectionTimeoutMs: number;
  /** A request body nothing arrived on for this long is reset, unless it carries the cluster secret (0: never). */
  readonly streamIdleTimeoutMs: number;
  /** Connections open at once; more are refused (HTTP/1.1 503, HTTP/2 GOAWAY). */
  readonly maxConnections: number;
  /** Replay hints to their targets (hinted handoff). Off only for repair experiments. */
  readonly hintedHandoff: boolean;
  /** Serve KVService Get/Put/Delete (Connect unary, gRPC unary) on the lean path (rpc/lean-unary.ts). */
  readonly leanUnary: boolean;
  readonly hintIntervalMs: number;
  readonly hintTtlMs: number;
  /** Bytes of hints this node keeps, for all targets together and for one target. */
  readonly maxHintBytes: number;
  readonly maxHintBytesPerTarget: number;
  /** How often the stores are probed for writability (a read-only disk shows before a write fails). */
  readonly diskProbeIntervalMs: number;
  /** Probability (0..1) that a Get repairs stale replicas. */
  readonly readRepair: number;
  readonly tombstoneGraceMs: number;
  readonly tombstoneSweepIntervalMs: number;
  /** How long the ring must stay unchanged before keys this node no longer owns are removed; 0: never. */
  readonly cleanupDelayMs: number;
  /** Pause between anti-entropy rounds; 0 turns periodic rounds off (admin Repair still runs). */
  readonly antiEntropyIntervalMs: number;
  /** Keys, and record bytes, anti-entropy may move per second (fetched + pushed). */
  readonly antiEntropyKeysPerSecond: number;
  readonly antiEntropyBytesPerSecond: number;
  /** Record bytes a joining node copies per second (bootstrap). */
  readonly streamBytesPerSecond: number;
}

/** Room in a record for its clock and per-sibling framing, beyond the values themselves. */
export const RECORD_OVERHEAD_BYTES = 64 * 1024;

export class ConfigError extends Error {
  override name = "ConfigError";
}

interface OptionSpec {
  readonly flag: string;
  readonly help: string;
  readonly default?: string;
  readonly boolean?: boolean;
}

export const OPTIONS: readonly OptionSpec[] = [
  { flag: "node-id", help: "Unique id of this node (letters, digits, . _ -)" },
  { flag: "listen", help: "host:port to bind", default: "127.0.0.1:7001" },
  { flag: "advertise", help: "host:port other nodes and clients reach this node at (default: --listen)" },
  { flag: "seeds", help: "Comma-separated host:port of nodes to join through; gossip learns the rest" },
  { flag: "peers", help: "Members known up front: comma-separated id@host:port (also used as seeds)" },
  { flag: "gossip-interval-ms", help: "SWIM protocol period: how often each node probes one member", default: "1000" },
  { flag: "gossip-suspicion-ms", help: "How long a suspected node has to refute before it is declared dead", default: "5000" },
  { flag: "gossip-sync-interval-ms", help: "How often a node exchanges its full membership with another (push-pull)", default: "10000" },
  { flag: "leave-on-sigterm", help: "On SIGTERM, leave the cluster for good (removed from the ring) instead of restarting", boolean: true },
  { flag: "data-dir", help: "Directory for data and hints (default: ./data/<node-id>)" },
  { flag: "n", help: "Replicas per key (N)", default: "3" },
  { flag: "r", help: "Default read quorum (R)", default: "2" },
  { flag: "w", help: "Default write quorum (W)", default: "2" },
  { flag: "vnodes", help: "Virtual nodes per physical node", default: "256" },
  {
    flag: "cluster-secret",
    help: "Shared secret that node-to-node and admin calls must carry (24+ random characters); prefer --cluster-secret-file or the env var: argv is visible to ps",
  },
  { flag: "cluster-secret-file", help: "File holding the cluster secret (trailing newline ignored); instead of --cluster-secret" },
  {
    flag: "tls-cert-file",
    help: "PEM certificate (chain) of this node: turns on TLS for its port (HTTP/2 and HTTP/1.1 by ALPN) and for its calls to other nodes; reloaded when it changes",
  },
  { flag: "tls-key-file", help: "PEM private key of --tls-cert-file" },
  {
    flag: "tls-ca-file",
    help: "PEM certificate(s) of the cluster CA: other nodes' certificates must be signed by it (mutual TLS between nodes; internal calls without such a client certificate are refused)",
  },
  {
    flag: "tokens-file",
    help: "Client bearer tokens with roles: lines of 'TOKEN read,write,admin [expires=ISO-8601] [name=NAME]' (TOKEN may be sha256:<hex>); re-read when it changes",
  },
  {
    flag: "require-client-auth",
    help: "Get needs a token with the read role, Put and Delete one with write (admin calls always need admin or the secret)",
    boolean: true,
  },
  {
    flag: "allowed-hosts",
    help: "Comma-separated Host header values (host or host:port) requests may carry; others get 421 (guards against DNS rebinding). Default: any",
  },
  { flag: "sync", help: "fsync each write batch before acknowledging it", boolean: true },
  { flag: "request-timeout-ms", help: "Default deadline of a client request", default: "5000" },
  { flag: "max-key-bytes", help: "Largest key, in UTF-8 bytes", default: "256" },
  { flag: "max-value-bytes", help: "Largest value, in bytes", default: String(1024 * 1024) },
  {
    flag: "max-siblings",
    help: "Most siblings a write may leave a key with; more is refused (FailedPrecondition: resolve them). Warns at a quarter",
    default: "100",
  },
  {
    flag: "max-record-bytes",
    help: "Largest a write may make a key's record (all its siblings); at least twice --max-value-bytes plus 64 KiB. Warns at half",
    default: String(4 * 1024 * 1024),
  },
  { flag: "log-level", help: "Least severe log lines written: debug (adds a line per request), info, warn, error or silent", default: "info" },
  { flag: "resolution", help: "Concurrent writes: 'siblings' (clients resolve) or 'lww' (last write wins)", default: "siblings" },
  { flag: "shutdown-grace-ms", help: "How long SIGTERM waits for in-flight requests", default: "10000" },
  { flag: "first-request-timeout-ms", help: "A new connection must send a request's headers within this time or is closed (0: no limit)", default: "30000" },
  { flag: "idle-connection-timeout-ms", help: "A connection with no request in progress is closed after this long (0: never)", default: "60000" },
  {
    flag: "stream-idle-timeout-ms",
    help: "A request whose body stalls this long is reset; node-to-node streams (with the cluster secret) are exempt (0: never)",
    default: "30000",
  },
  { flag: "max-connections", help: "Most connections open at once; more are refused with a reason (HTTP/1.1 503, HTTP/2 GOAWAY)", default: "4096" },
  { flag: "hinted-handoff", help: "Replay hints to nodes that come back: true or false", default: "true" },
  {
    flag: "lean-unary",
    help: "Serve KVService Get/Put/Delete (Connect and gRPC unary) and both ends of the replica streams between nodes without connect-node's and connect-es's machinery: true or false (false: every call through connect-node and connect-es)",
    default: "true",
  },
  { flag: "hint-interval-ms", help: "How often pending hints are retried", default: "1000" },
  { flag: "hint-ttl-ms", help: "Hints older than this are dropped (anti-entropy repairs their keys)", default: String(3 * 3600_000) },
  {
    flag: "max-hint-bytes",
    help: "Most bytes of hints kept for all targets together; further hints are refused (anti-entropy repairs their keys)",
    default: String(1024 ** 3),
  },
  { flag: "max-hint-bytes-per-target", help: "Most bytes of hints kept for one target", default: String(256 * 1024 ** 2) },
  { flag: "disk-probe-interval-ms", help: "How often the node checks that its data directory takes writes (0: only when a write fails)", default: "10000" },
  { flag: "read-repair", help: "Repair stale replicas after a Get: on, off, or a probability 0..1", default: "on" },
  { flag: "tombstone-grace-ms", help: "Age before a delete's tombstone may be purged; must exceed --hint-ttl-ms", default: String(6 * 3600_000) },
  {
    flag: "tombstone-sweep-interval-ms",
    help: "How often tombstones are looked at for purging (and keys this node no longer owns for removal)",
    default: "600000",
  },
  {
    flag: "cleanup-delay-ms",
    help: "How long the ring must stay unchanged (no join, decommission or removal in progress) before a node removes keys it no longer owns; 0: keep them",
    default: "120000",
  },
  { flag: "anti-entropy-interval-ms", help: "Pause between anti-entropy rounds (Merkle tree exchanges with co-replicas); 0 turns them off", default: "30000" },
  { flag: "anti-entropy-keys-per-second", help: "Most keys anti-entropy fetches and pushes per second", default: "2000" },
  { flag: "anti-entropy-bytes-per-second", help: "Most record bytes anti-entropy fetches and pushes per second", default: String(16 * 1024 * 1024) },
  {
    flag: "stream-bytes-per-second",
    help: "Most record bytes a joining node copies per second from the owners of its ranges",
    default: String(32 * 1024 * 1024),
  },
];

export function envName(flag: string): string {
  return "DYNAMO_" + flag.toUpperCase().replaceAll("-", "_");
}

export function helpText(): string {
  const lines = ["Usage: dynamo-node [options]", "", "Every option can also be set by its environment variable.", ""];
  for (const o of OPTIONS) {
    const name = o.boolean ? `--${o.flag}` : `--${o.flag} <value>`;
    const def = o.default !== undefined && !o.boolean ? ` (default ${o.default})` : "";
    lines.push(`  ${name.padEnd(30)} ${o.help}${def}  [${envName(o.flag)}]`);
  }
  lines.push(`  ${"--version".padEnd(30)} Print the version`);
  lines.push(`  ${"--help".padEnd(30)} Show this help`);
  return lines.join("\n");
}

/** Reads raw option values from argv (`--flag value`, `--flag=value`, bare booleans) then env. */
export function readRawOptions(argv: readonly string[], env: NodeJS.ProcessEnv): Map<string, string> {
  const specs = new Map(OPTIONS.map((o) => [o.flag, o]));
  const raw = new Map<string, string>();
  for (const o of OPTIONS) {
    const fromEnv = env[envName(o.flag)];
    if (fromEnv !== undefined && fromEnv !== "") raw.set(o.flag, fromEnv);
  }
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (!arg.startsWith("--")) throw new ConfigError(`unexpected argument '${arg}' (options start with --; see --help)`);
    const eq = arg.indexOf("=");
    const flag = eq === -1 ? arg.slice(2) : arg.slice(2, eq);
    const spec = specs.get(flag);
    if (!spec) throw new ConfigError(`unknown option --${flag} (see --help)`);
    if (eq !== -1) {
      raw.set(flag, arg.slice(eq + 1));
    } else if (spec.boolean) {
      raw.set(flag, "true");
    } else {
      const value = argv[i + 1];
      if (value === undefined || value.startsWith("--")) throw new ConfigError(`--${flag} needs a value`);
      raw.set(flag, value);
      i++;
    }
  }
  return raw;
}

/** What a node id may be (--node-id, --peers); also the ids an imported record's clock may name. */
export const NODE_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

export function parseHostPort(value: string, what: string): string {
  const m = /^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/.exec(value);
  const port = m ? Number(m[2]) : NaN;
  if (!m || port < 1 || port > 65535) throw new ConfigError(`${what} must be host:port, got '${value}'`);
  return value;
}

function parseInteger(raw: Map<string, string>, flag: string, min: number, max: number): number {
  const text = raw.get(flag) ?? OPTIONS.find((o) => o.flag === flag)?.default;
  if (text === undefined) throw new ConfigError(`--${flag} is required`);
  if (!/^\d+$/.test(text.trim())) throw new ConfigError(`--${flag} must be an integer, got '${text}'`);
  const value = Number(text.trim());
  if (value < min || value > max) throw new ConfigError(`--${flag} must be between ${min} and ${max}, got ${value}`);
  return value;
}

function parseBoolean(raw: Map<string, string>, flag: string): boolean {
  const text = (raw.get(flag) ?? OPTIONS.find((o) => o.flag === flag)?.default ?? "false").toLowerCase();
  if (["true", "1", "yes", "on"].includes(text)) return true;
  if (["false", "0", "no", "off"].includes(text)) return false;
  throw new ConfigError(`--${flag} must be true or false, got '${text}'`);
}

export function parsePeers(text: string): PeerAddress[] {
  const peers: PeerAddress[] = [];
  const ids = new Set<string>();
  for (const item of text
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean)) {
    const at = item.indexOf("@");
    if (at <= 0) throw new ConfigError(`--peers entries must be id@host:port, got '${item}'`);
    const id = item.slice(0, at);
    if (!NODE_ID.test(id)) throw new ConfigError(`--peers has an invalid node id '${id}'`);
    if (ids.has(id)) throw new ConfigError(`--peers names node '${id}' twice`);
    ids.add(id);
    peers.push({ id, address: parseHostPort(item.slice(at + 1), `--peers address of '${id}'`) });
  }
  return peers;
}

/** The secret from --cluster-secret or --cluster-secret-file (one, not both), refused when weak. */
function readClusterSecret(raw: Map<string, string>): string {
  const inline = raw.get("cluster-secret");
  const file = raw.get("cluster-secret-file");
  if (inline !== undefined && file !== undefined) throw new ConfigError("give --cluster-secret or --cluster-secret-file, not both");
  let secret = inline ?? "";
  if (file !== undefined) {
    try {
      secret = readFileSync(file, "utf8").replace(/\r?\n$/, "");
    } catch (err) {
      throw new ConfigError(`cannot read --cluster-secret-file ${file}: ${(err as Error).message}`);
    }
  }
  if (secret === "")
    throw new ConfigError("a cluster secret is required: --cluster-secret-file FILE or DYNAMO_CLUSTER_SECRET (node-to-node and admin calls carry it)");
  const weak = weakSecretReason(secret);
  if (weak) throw new ConfigError(`the cluster secret is too weak: ${weak}`);
  return secret;
}

export function parseConfig(argv: readonly string[], env: NodeJS.ProcessEnv = process.env): NodeConfig {
  const raw = readRawOptions(argv, env);
  const nodeId = raw.get("node-id");
  if (!nodeId) throw new ConfigError("--node-id is required");
  if (!NODE_ID.test(nodeId))
    throw new ConfigError(`--node-id must be 1-64 of letters, digits, '.', '_', '-' and start with a letter or digit, got '${nodeId}'`);
  const listen = parseHostPort(raw.get("listen") ?? "127.0.0.1:7001", "--listen");
  const advertise = parseHostPort(raw.get("advertise") ?? listen, "--advertise");
  if (/^(0\.0\.0\.0|\[::\]):/.test(advertise)) {
    throw new ConfigError(`--advertise must be an address others can reach, not '${advertise}' (set --advertise when --listen binds all interfaces)`);
  }
  const n = parseInteger(raw, "n", 1, 16);
  const r = parseInteger(raw, "r", 1, 16);
  const w = parseInteger(raw, "w", 1, 16);
  if (r > n) throw new ConfigError(`--r (${r}) cannot exceed --n (${n})`);
  if (w > n) throw new ConfigError(`--w (${w}) cannot exceed --n (${n})`);

  let peers = parsePeers(raw.get("peers") ?? "");
  const self = peers.find((p) => p.id === nodeId);
  if (!self) {
    peers = [...peers, { id: nodeId, address: advertise }];
  } else if (self.address !== advertise) {
    throw new ConfigError(`--peers lists ${nodeId}@${self.address} but this node advertises ${advertise}`);
  }
  const addresses = new Set<string>();
  for (const p of peers) {
    if (addresses.has(p.address)) throw new ConfigError(`--peers has two nodes at ${p.address}`);
    addresses.add(p.address);
  }

  const seeds = (raw.get("seeds") ?? "")
    .split(",")
    .map((x) => x.trim())
    .filter(Boolean)
    .map((x) => parseHostPort(x, "--seeds entries"));
  const gossipIntervalMs = parseInteger(raw, "gossip-interval-ms", 50, 60_000);
  const gossipSuspicionMs = parseInteger(raw, "gossip-suspicion-ms", 100, 600_000);
  const gossipSyncIntervalMs = parseInteger(raw, "gossip-sync-interval-ms", 100, 3_600_000);
  try {
    validateSwimConfig({ ...defaultSwimConfig, ...swimSettings(gossipIntervalMs, gossipSuspicionMs, gossipSyncIntervalMs) });
  } catch (err) {
    throw new ConfigError(`gossip settings: ${(err as Error).message}`);
  }

  const clusterSecret = readClusterSecret(raw);
  const tls = readTlsFiles(raw);
  const tokensFile = raw.get("tokens-file") || undefined;
  const requireClientAuth = parseBoolean(raw, "require-client-auth");
  if (requireClientAuth && !tokensFile) throw new ConfigError("--require-client-auth needs --tokens-file (the tokens clients may use)");
  const allowedHosts = (raw.get("allowed-hosts") ?? "")
    .split(",")
    .map((h) => h.trim().toLowerCase())
    .filter((h) => h !== "");
  for (const h of allowedHosts) if (!/^[a-z0-9.[\]:-]+$/.test(h)) throw new ConfigError(`--allowed-hosts: '${h}' is not a host or host:port`);
  const logLevel = raw.get("log-level") ?? "info";
  if (!(LOG_LEVELS as readonly string[]).includes(logLevel)) {
    throw new ConfigError(`--log-level must be one of ${LOG_LEVELS.join(", ")}, got '${logLevel}'`);
  }
  const resolution = raw.get("resolution") ?? "siblings";
  if (resolution !== "siblings" && resolution !== "lww") {
    throw new ConfigError(`--resolution must be 'siblings' or 'lww', got '${resolution}'`);
  }
  const readRepairText = (raw.get("read-repair") ?? "on").toLowerCase();
  const readRepair = readRepairText === "on" ? 1 : readRepairText === "off" ? 0 : Number(readRepairText);
  if (!/^(on|off|0|1|0?\.\d+|1\.0*)$/.test(readRepairText) || !(readRepair >= 0 && readRepair <= 1)) {
    throw new ConfigError(`--read-repair must be on, off or a probability between 0 and 1, got '${readRepairText}'`);
  }
  const hintTtlMs = parseInteger(raw, "hint-ttl-ms", 1000, 30 * 24 * 3600_000);
  const tombstoneGraceMs = parseInteger(raw, "tombstone-grace-ms", 1000, 365 * 24 * 3600_000);
  if (tombstoneGraceMs <= hintTtlMs) {
    throw new ConfigError(`--tombstone-grace-ms (${tombstoneGraceMs}) must exceed --hint-ttl-ms (${hintTtlMs}), or a late hint could bring a deleted key back`);
  }
  const maxKeyBytes = parseInteger(raw, "max-key-bytes", 1, 65_536);
  const maxValueBytes = parseInteger(raw, "max-value-bytes", 0, 64 * 1024 * 1024);
  const maxRecordBytes = parseInteger(raw, "max-record-bytes", 1024, 256 * 1024 * 1024);
  // Two concurrent writes of the largest value must fit, as siblings, in one record.
  const minRecordBytes = 2 * maxValueBytes + RECORD_OVERHEAD_BYTES;
  if (maxRecordBytes < minRecordBytes) {
    throw new ConfigError(
      `--max-record-bytes (${maxRecordBytes}) must be at least twice --max-value-bytes plus 64 KiB (${minRecordBytes}), so two concurrent values of the largest size fit`,
    );
  }
  const antiEntropyIntervalMs = parseInteger(raw, "anti-entropy-interval-ms", 0, 24 * 3600_000);
  if (antiEntropyIntervalMs > 0 && antiEntropyIntervalMs < 100) {
    throw new ConfigError(`--anti-entropy-interval-ms must be 0 (off) or at least 100, got ${antiEntropyIntervalMs}`);
  }
  return {
    nodeId,
    listen,
    advertise,
    peers,
    seeds,
    gossipIntervalMs,
    gossipSuspicionMs,
    gossipSyncIntervalMs,
    leaveOnSigterm: parseBoolean(raw, "leave-on-sigterm"),
    dataDir: raw.get("data-dir") ?? `./data/${nodeId}`,
    n,
    r,
    w,
    vnodes: parseInteger(raw, "vnodes", 1, 4096),
    clusterSecret,
    sync: parseBoolean(raw, "sync"),
    requestTimeoutMs: parseInteger(raw, "request-timeout-ms", 1, 600_000),
    maxKeyBytes,
    maxValueBytes,
    maxSiblings: parseInteger(raw, "max-siblings", 1, 10_000),
    maxRecordBytes,
    resolution,
    logLevel: logLevel as LogLevel,
    tls,
    tokensFile,
    requireClientAuth,
    allowedHosts,
    shutdownGraceMs: parseInteger(raw, "shutdown-grace-ms", 0, 600_000),
    firstRequestTimeoutMs: parseInteger(raw, "first-request-timeout-ms", 0, 3600_000),
    idleConnectionTimeoutMs: parseInteger(raw, "idle-connection-timeout-ms", 0, 24 * 3600_000),
    streamIdleTimeoutMs: parseInteger(raw, "stream-idle-timeout-ms", 0, 3600_000),
    maxConnections: parseInteger(raw, "max-connections", 16, 1_000_000),
    hintedHandoff: parseBoolean(raw, "hinted-handoff"),
    leanUnary: parseBoolean(raw, "lean-unary"),
    hintIntervalMs: parseInteger(raw, "hint-interval-ms", 10, 3600_000),
    hintTtlMs,
    maxHintBytes: parseInteger(raw, "max-hint-bytes", 1024 * 1024, 2 ** 50),
    maxHintBytesPerTarget: parseInteger(raw, "max-hint-bytes-per-target", 1024 * 1024, 2 ** 50),
    diskProbeIntervalMs: parseInteger(raw, "disk-probe-interval-ms", 0, 3600_000),
    readRepair,
    tombstoneGraceMs,
    tombstoneSweepIntervalMs: parseInteger(raw, "tombstone-sweep-interval-ms", 100, 24 * 3600_000),
    cleanupDelayMs: parseInteger(raw, "cleanup-delay-ms", 0, 30 * 24 * 3600_000),
    antiEntropyIntervalMs,
    antiEntropyKeysPerSecond: parseInteger(raw, "anti-entropy-keys-per-second", 1, 10_000_000),
    antiEntropyBytesPerSecond: parseInteger(raw, "anti-entropy-bytes-per-second", 1024, 2 ** 40),
    streamBytesPerSecond: parseInteger(raw, "stream-bytes-per-second", 1024, 2 ** 40),
  };
}

export interface TlsFiles {
  readonly certFile: string;
  readonly keyFile: string;
  readonly caFile: string;
}

/** The three TLS files, all or none; each must be readable now (contents are checked when loaded). */
function readTlsFiles(raw: Map<string, string>): TlsFiles | undefined {
  const certFile = raw.get("tls-cert-file") || undefined;
  const keyFile = raw.get("tls-key-file") || undefined;
  const caFile = raw.get("tls-ca-file") || undefined;
  if (!certFile && !keyFile && !caFile) return undefined;
  if (!certFile || !keyFile || !caFile) {
    const missing = [!certFile && "--tls-cert-file", !keyFile && "--tls-key-file", !caFile && "--tls-ca-file"].filter(Boolean).join(", ");
    throw new ConfigError(`TLS needs --tls-cert-file, --tls-key-file and --tls-ca-file together (missing: ${missing}); see docs/security.md`);
  }
  for (const [flag, file] of [
    ["tls-cert-file", certFile],
    ["tls-key-file", keyFile],
    ["tls-ca-file", caFile],
  ] as const) {
    try {
      accessSync(file, fsConstants.R_OK);
    } catch (err) {
      throw new ConfigError(`--${flag}: cannot read ${file}: ${(err as Error).message}`);
    }
  }
  return { certFile, keyFile, caFile };
}
