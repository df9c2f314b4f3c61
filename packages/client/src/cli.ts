// The `dynamo` command-line tool. Exit codes: 0 success, 1 failure reported by the cluster,
// 2 usage error or invalid request (InvalidArgument, ResourceExhausted), 3 key not found,
// 4 cluster unavailable or deadline exceeded.
import { type DescMessage, type MessageShape, toJson } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import {
  AntiEntropyStatusResponseSchema,
  ListHintsResponseSchema,
  RepairKeyResponseSchema,
  RepairResponseSchema,
  type StatusResponse,
  StatusResponseSchema,
} from "@dynamo-ts/proto";
import { DynamoClient } from "./client.js";
import { CredentialsError, type ResolvedCredentials, resolveCredentials } from "./credentials.js";
import { refusedStream } from "./errors.js";
import { runExport, runImport } from "./export-import.js";
import type { Protocol } from "./transport.js";
import { VERSION } from "./version.js";

export const EXIT = { ok: 0, failed: 1, usage: 2, notFound: 3, unavailable: 4 } as const;

const HELP = `Usage: dynamo <command> [options]

Commands:
  get KEY                 Read a key: its value on stdout, exactly as stored (several values,
                          siblings, each followed by a newline); the context on stderr
  put KEY VALUE           Write a value (VALUE '-' reads standard input)
  delete KEY              Delete a key
  status                  Show the node's view of the cluster
  hints                   Show the hints the node holds for nodes that were down
  leave                   Make the node leave the cluster for good, then stop, WITHOUT handing its
                          data over first (anti-entropy repairs it later); prefer decommission
  decommission            Stream every range the node holds to the nodes that gain it, then make it
                          leave and stop; waits, showing progress (--no-wait: return once started).
                          Its data dir is kept; delete it yourself (needs the secret)
  remove-node NODE_ID     Remove a dead member: the node asked streams its ranges from the surviving
                          replicas to their new owners, then marks it removed; waits, showing
                          progress (--no-wait: return once started) (needs the secret)
  repair [--range S:E]    Run anti-entropy now with the node's co-replicas (needs the secret)
  ranges                  Show the node's ranges and their anti-entropy state
  repair-key KEY          Rebuild one key whose version clock is damaged (writes to it fail with
                          "cannot take a new version"); every replica must be up (needs the secret)
  export [--out FILE]     Every key of the cluster as NDJSON lines, to stdout or FILE; progress on
                          stderr; --range S:E for part of the ring (needs the secret)
  import [--in FILE]      Merge an export (FILE or stdin) into the cluster; idempotent; failed
                          lines reported by number, then a summary (needs the secret)

Options:
  --node HOST:PORT[,...]  Node(s) to talk to (env DYNAMO_NODE, default 127.0.0.1:7001); with
                          several, get/put/delete fail over; other commands ask the first
  --r N                   Read quorum for this request (get)
  --w N                   Write quorum for this request (put, delete)
  --context BASE64        Context from an earlier get (put, delete); omit for a blind write
  --base64                VALUE is base64 (put); print each value base64, on a line (get)
  --show-context          Print the context on stdout, as the first line, not on stderr (get)
  --timeout-ms MS         Deadline of the request (default: the node's)
  --secret-file FILE      Cluster secret, for status, hints, ranges, leave, repair, repair-key,
                          export and import (env DYNAMO_CLUSTER_SECRET_FILE or DYNAMO_CLUSTER_SECRET;
                          default ./data/cluster-secret, the local cluster's). --secret S also
                          works but shows the secret to anyone running ps
  --token-file FILE       Bearer token for clusters that require client credentials, or an
                          admin token instead of the secret (env DYNAMO_TOKEN_FILE or DYNAMO_TOKEN)
  --ca-file FILE          PEM of the CA that signed the nodes' certificates, for a cluster with TLS
                          on: nodes given as host:port are reached over https (env DYNAMO_CA_FILE)
  --range START:END       Ring tokens START < t <= END (repair): only ranges overlapping it
  --out FILE, --in FILE   The file export writes, import reads (default stdout, stdin)
  --stop-on-error         import: stop at the first line that fails
  --no-wait               decommission, remove-node: return once the transfers have started
  --protocol P            connect (default), grpc or grpc-web
  --json                  One JSON document on stdout (proto3 JSON for status, hints, ranges,
                          repair, repair-key: 64-bit integers as strings, every field present)
  --version               Print the version
  -h, --help              Show this help

Exit codes:
  0  ok (get: found)
  1  the cluster refused or failed the request (FailedPrecondition, PermissionDenied, ...)
  2  usage error, or an invalid request: InvalidArgument (e.g. a value over the node's
     --max-value-bytes), ResourceExhausted (a request larger than the node reads at all)
  3  not found (get)
  4  unavailable or deadline exceeded (trying again later may succeed)

Examples:
  dynamo put greeting hello
  dynamo get greeting
  dynamo put greeting hi --context "$(dynamo get greeting --show-context | head -n1)"
  dynamo get photo > photo.jpg
`;

class UsageError extends Error {}

interface Parsed {
  readonly positional: string[];
  readonly flags: Map<string, string>;
}

const NEEDS_SECRET = "needs the cluster secret (--secret-file FILE or DYNAMO_CLUSTER_SECRET_FILE) or an admin token (--token-file FILE or DYNAMO_TOKEN_FILE)";
const VALUE_FLAGS = new Set(["node", "r", "w", "context", "timeout-ms", "protocol", "secret", "secret-file", "token-file", "ca-file", "range", "out", "in"]);
const BOOLEAN_FLAGS = new Set(["base64", "json", "help", "show-context", "version", "stop-on-error", "no-wait"]);

export function parseArgs(argv: readonly string[]): Parsed {
  const positional: string[] = [];
  const flags = new Map<string, string>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === "-h") {
      flags.set("help", "true");
    } else if (arg === "--") {
      positional.push(...argv.slice(i + 1));
      break;
    } else if (arg.startsWith("--")) {
      const eq = arg.indexOf("=");
      const name = eq === -1 ? arg.slice(2) : arg.slice(2, eq);
      if (BOOLEAN_FLAGS.has(name)) {
        flags.set(name, "true");
      } else if (VALUE_FLAGS.has(name)) {
        const value = eq === -1 ? argv[++i] : arg.slice(eq + 1);
        if (value === undefined) throw new UsageError(`--${name} needs a value`);
        flags.set(name, value);
      } else {
        throw new UsageError(`unknown option --${name}`);
      }
    } else {
      positional.push(arg);
    }
  }
  return { positional, flags };
}

function intFlag(flags: Map<string, string>, name: string): number | undefined {
  const text = flags.get(name);
  if (text === undefined) return undefined;
  if (!/^\d+$/.test(text)) throw new UsageError(`--${name} must be a positive integer, got '${text}'`);
  return Number(text);
}

/** `--range START:END`: two ring tokens (unsigned 32-bit integers). */
export function parseTokenRange(text: string): { start: number; end: number } {
  const m = /^(\d{1,10}):(\d{1,10})$/.exec(text);
  const [start, end] = m ? [Number(m[1]), Number(m[2])] : [NaN, NaN];
  if (!(start <= 0xffffffff && end <= 0xffffffff)) {
    throw new UsageError(`--range must be START:END with tokens in 0..${0xffffffff}, got '${text}'`);
  }
  return { start, end };
}

/** The transfers a node drives, one line each: the copies in flight first, then a count of those done. */
function transfersTable(s: StatusResponse): string {
  if (s.transfers.length === 0) return "";
  const active = s.transfers.filter((t) => !t.done);
  const done = s.transfers.filter((t) => t.done);
  const rows = active.map((t) => {
    const seconds = Math.max(0.001, Number(t.elapsedMs) / 1000);
    const rate = Number(t.bytes) / seconds;
    const eta = t.fraction > 0.001 ? formatAge(((1 - t.fraction) / t.fraction) * seconds * 1000) : "?";
    return [
      t.kind,
      `${t.rangeStart}:${t.rangeEnd}`,
      t.source,
      t.target,
      String(t.keys),
      formatBytes(Number(t.bytes)),
      `${formatBytes(rate)}/s`,
      `${(t.fraction * 100).toFixed(0)}%`,
      eta,
    ];
  });
  const kinds = [...new Set(done.map((t) => t.kind))].map((kind) => {
    const ofKind = done.filter((t) => t.kind === kind);
    return `${kind}: ${ofKind.length} copies, ${ofKind.reduce((sum, t) => sum + Number(t.keys), 0)} keys, ${formatBytes(ofKind.reduce((sum, t) => sum + Number(t.bytes), 0))}`;
  });
  return (
    `\ntransfers: ${active.length} in flight, ${done.length} done${kinds.length > 0 ? ` (${kinds.join("; ")})` : ""}\n` +
    (rows.length > 0 ? table([["KIND", "RANGE", "SOURCE", "TARGET", "KEYS", "BYTES", "RATE", "SCANNED", "ETA"], ...rows]) : "")
  );
}

function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KiB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}

const NEWLINE = new Uint8Array([0x0a]);

/**
 * What `dynamo get` prints on stdout: one value as its exact bytes (a newline added only on a
 * terminal, when the value does not end in one); several (siblings) each followed by a
 * newline; with --base64 every value base64-encoded, followed by a newline.
 */
export function formatValues(values: readonly Uint8Array[], base64: boolean, terminal: boolean): Uint8Array {
  return Buffer.concat(
    values.flatMap((value) => {
      const bytes = base64 ? Buffer.from(Buffer.from(value).toString("base64")) : value;
      return base64 || values.length > 1 || (terminal && bytes.at(-1) !== 0x0a) ? [bytes, NEWLINE] : [bytes];
    }),
  );
}

function decodeBase64(text: string, what: string): Uint8Array {
  if (!/^[A-Za-z0-9+/_-]*={0,2}$/.test(text)) throw new UsageError(`${what} is not base64`);
  return new Uint8Array(Buffer.from(text, text.includes("-") || text.includes("_") ? "base64url" : "base64"));
}

export interface Io {
  /** stdout: text, or bytes written as they are (values). */
  out(data: string | Uint8Array): void;
  err(line: string): void;
  /** stdout is a terminal. */
  readonly outIsTty?: boolean;
  stdin(): Uint8Array;
  env: NodeJS.ProcessEnv;
}

export async function run(argv: readonly string[], io: Io): Promise<number> {
  let parsed: Parsed;
  try {
    parsed = parseArgs(argv);
  } catch (err) {
    io.err(`dynamo: ${(err as Error).message}\n${HELP}`);
    return EXIT.usage;
  }
  const { positional, flags } = parsed;
  const [command, ...args] = positional;
  if (flags.has("version") && !flags.has("help")) {
    io.out(`dynamo ${VERSION}\n`);
    return EXIT.ok;
  }
  if (flags.has("help") || command === undefined || command === "help") {
    io.out(HELP);
    return command === undefined && !flags.has("help") ? EXIT.usage : EXIT.ok;
  }
  const json = flags.has("json");
  const base64 = flags.has("base64");
  let client: DynamoClient | undefined;
  try {
    const protocol = (flags.get("protocol") ?? "connect") as Protocol;
    if (!["connect", "grpc", "grpc-web"].includes(protocol)) throw new UsageError(`--protocol must be connect, grpc or grpc-web`);
    const timeoutMs = intFlag(flags, "timeout-ms");
    const context = flags.has("context") ? decodeBase64(flags.get("context")!, "--context") : undefined;
    const expectArgs = (n: number, usage: string) => {
      if (args.length !== n) throw new UsageError(`usage: dynamo ${usage}`);
    };
    const nodes = (flags.get("node") ?? io.env["DYNAMO_NODE"] ?? "127.0.0.1:7001")
      .split(",")
      .map((n) => n.trim())
      .filter((n) => n !== "");
    if (nodes.length === 0) throw new UsageError("--node needs HOST:PORT");
    let credentials: ResolvedCredentials;
    try {
      credentials = resolveCredentials(flags, io.env);
    } catch (err) {
      throw err instanceof CredentialsError ? new UsageError(err.message) : err;
    }
    const { clusterSecret } = credentials;
    try {
      client = new DynamoClient({ nodes, protocol, ...(timeoutMs !== undefined ? { timeoutMs } : {}), ...credentials });
    } catch (err) {
      throw err instanceof TypeError ? new UsageError(err.message) : err;
    }

    switch (command) {
      case "get": {
        expectArgs(1, "get KEY [--r N]");
        const result = await client.get(args[0]!, { r: intFlag(flags, "r") });
        if (!result) {
          if (json) io.out(JSON.stringify({ key: args[0], found: false }) + "\n");
          else io.err(`not found: ${args[0]}\n`);
          return EXIT.notFound;
        }
        const context = Buffer.from(result.context).toString("base64");
        if (json) {
          io.out(JSON.stringify({ key: args[0], found: true, values: result.values.map((v) => Buffer.from(v).toString("base64")), context }) + "\n");
          return EXIT.ok;
        }
        if (flags.has("show-context")) io.out(`${context}\n`);
        io.out(formatValues(result.values, base64, io.outIsTty === true));
        if (result.values.length > 1) io.err(`dynamo: ${result.values.length} siblings (concurrent writes); resolve them with put --context\n`);
        if (!flags.has("show-context")) io.err(`context: ${context}\n`);
        return EXIT.ok;
      }
      case "put": {
        expectArgs(2, "put KEY VALUE [--context C] [--w N]");
        const raw = args[1]!;
        const value = raw === "-" ? io.stdin() : base64 ? decodeBase64(raw, "VALUE") : new TextEncoder().encode(raw);
        const res = await client.put(args[0]!, value, { context, w: intFlag(flags, "w") });
        const ctx = Buffer.from(res.context).toString("base64");
        io.out(json ? JSON.stringify({ key: args[0], context: ctx }) + "\n" : `ok\ncontext: ${ctx}\n`);
        return EXIT.ok;
      }
      case "delete": {
        expectArgs(1, "delete KEY [--context C] [--w N]");
        await client.delete(args[0]!, { context, w: intFlag(flags, "w") });
        io.out(json ? JSON.stringify({ key: args[0], deleted: true }) + "\n" : "ok\n");
        return EXIT.ok;
      }
      case "status": {
        expectArgs(0, "status");
        const s = await client.status();
        if (json) {
          io.out(toJsonLine(StatusResponseSchema, s));
          return EXIT.ok;
        }
        const rows = s.members.map((m) => [
          m.nodeId + (m.nodeId === s.nodeId ? " *" : ""),
          m.address,
          m.state,
          m.ringStatus || "-",
          String(m.incarnation),
          m.nodeId === s.nodeId ? "-" : formatAge(Number(m.lastHeardMs)),
          `${(m.ownership * 100).toFixed(1)}%`,
          // Share once the joins and departures in progress complete; shown only when it differs.
          Math.abs(m.pendingOwnership - m.ownership) < 0.0005 ? "" : `-> ${(m.pendingOwnership * 100).toFixed(1)}%`,
        ]);
        io.out(
          `node ${s.nodeId} (dynamo-ts ${s.version}, up ${formatAge(Number(s.uptimeMs))}), N=${s.n} R=${s.r} W=${s.w}, ${s.vnodes} vnodes per node\n` +
            table([["NODE", "ADDRESS", "STATE", "RING", "INCARNATION", "LAST HEARD", "OWNS", ""], ...rows]) +
            transfersTable(s),
        );
        return EXIT.ok;
      }
      case "leave": {
        expectArgs(0, "leave");
        if (!clusterSecret && !credentials.token) throw new UsageError(`leave ${NEEDS_SECRET}`);
        await client.leave();
        io.out(json ? JSON.stringify({ left: true }) + "\n" : `${client.baseUrl} left the cluster and is shutting down\n`);
        return EXIT.ok;
      }
      case "decommission": {
        expectArgs(0, "decommission [--no-wait]");
        if (!clusterSecret && !credentials.token) throw new UsageError(`decommission ${NEEDS_SECRET}`);
        const transfers = await client.decommission();
        const before = await client.status();
        io.err(`${before.nodeId} is leaving: ${transfers} range transfer(s) to stream\n`);
        if (flags.has("no-wait")) {
          io.out(
            json
              ? JSON.stringify({ node: before.nodeId, leaving: true, transfers }) + "\n"
              : `${before.nodeId} is decommissioning; follow it with: dynamo status --node ${client.baseUrl.replace(/^https?:\/\//, "")}\n`,
          );
          return EXIT.ok;
        }
        // The node answers Status until it stops; a refused connection after that is the end.
        const last = await followTransfers(client, io, () => true);
        io.out(
          json
            ? JSON.stringify({ node: before.nodeId, left: true, keys: last.keys, bytes: last.bytes }) + "\n"
            : `${before.nodeId} streamed ${last.keys} keys (${formatBytes(last.bytes)}), left the cluster and stopped; its data dir is kept\n`,
        );
        return EXIT.ok;
      }
      case "remove-node": {
        expectArgs(1, "remove-node NODE_ID [--no-wait]");
        if (!clusterSecret && !credentials.token) throw new UsageError(`remove-node ${NEEDS_SECRET}`);
        const id = args[0]!;
        const transfers = await client.removeNode(id);
        io.err(`removing ${id}: ${transfers} range transfer(s) to stream from the surviving replicas\n`);
        if (flags.has("no-wait")) {
          io.out(json ? JSON.stringify({ node: id, removing: true, transfers }) + "\n" : `removing ${id}; follow it with: dynamo status\n`);
          return EXIT.ok;
        }
        const last = await followTransfers(client, io, (s) => s.members.find((m) => m.nodeId === id)?.ringStatus !== "removed");
        io.out(
          json
            ? JSON.stringify({ node: id, removed: true, keys: last.keys, bytes: last.bytes }) + "\n"
            : `${id} removed; ${last.keys} keys (${formatBytes(last.bytes)}) streamed to its ranges' new owners\n`,
        );
        return EXIT.ok;
      }
      case "repair": {
        expectArgs(0, "repair [--range START:END]");
        const range = flags.has("range") ? parseTokenRange(flags.get("range")!) : undefined;
        if (!clusterSecret && !credentials.token) throw new UsageError(`repair ${NEEDS_SECRET}`);
        const res = await client.repair(range);
        const failed = res.exchanges.filter((e) => e.outcome === "failed" || e.outcome === "refused");
        if (json) {
          io.out(toJsonLine(RepairResponseSchema, res));
          return failed.length > 0 ? EXIT.failed : EXIT.ok;
        }
        const sum = (field: "keysFetched" | "keysPushed" | "keysRepaired" | "bytesMoved" | "hashesCompared" | "keysWithheld") =>
          res.exchanges.reduce((total, e) => total + Number(e[field]), 0);
        const peers = [...new Set(res.exchanges.map((e) => e.peer))].sort();
        const ranges = new Set(res.exchanges.map((e) => `${e.range?.start}:${e.range?.end}`)).size;
        const inSync = res.exchanges.filter((e) => e.outcome === "in-sync").length;
        const rows = res.exchanges
          .filter((e) => e.outcome !== "in-sync")
          .map((e) => [
            `(${e.range?.start}, ${e.range?.end}]`,
            e.peer,
            e.outcome,
            String(e.hashesCompared),
            String(e.keysFetched),
            String(e.keysPushed),
            String(e.keysRepaired),
            formatBytes(Number(e.bytesMoved)),
            e.detail,
          ]);
        io.out(
          (res.exchanges.length === 0
            ? "this node replicates no range overlapping the one asked for (or has no co-replica)\n"
            : `${res.exchanges.length} exchanges over ${ranges} ranges with ${peers.join(", ")} in ${formatAge(Number(res.durationMs))}: ` +
              `${inSync} in sync, ${sum("keysRepaired")} keys repaired (${sum("keysFetched")} fetched, ${sum("keysPushed")} pushed), ` +
              `${formatBytes(sum("bytesMoved"))} moved, ${sum("hashesCompared")} hashes compared` +
              (sum("keysWithheld") > 0 ? `, ${sum("keysWithheld")} old keys withheld (held by one replica only)` : "") +
              "\n") + (rows.length ? table([["RANGE", "PEER", "OUTCOME", "HASHES", "FETCHED", "PUSHED", "REPAIRED", "BYTES", "DETAIL"], ...rows]) : ""),
        );
        return failed.length > 0 ? EXIT.failed : EXIT.ok;
      }
      case "repair-key": {
        expectArgs(1, "repair-key KEY");
        if (!clusterSecret && !credentials.token) throw new UsageError(`repair-key ${NEEDS_SECRET}`);
        const res = await client.repairKey(args[0]!);
        io.out(
          json
            ? toJsonLine(RepairKeyResponseSchema, res)
            : `repaired ${JSON.stringify(args[0])} on ${res.replicas.join(", ")}: ${res.siblings} sibling(s) kept under fresh versions; ` +
                `the old clock named ${res.clockEntriesBefore} node(s), highest counter ${res.highestCounterBefore}\n`,
        );
        return EXIT.ok;
      }
      case "ranges": {
        expectArgs(0, "ranges");
        const s = await client.antiEntropyStatus();
        if (json) {
          io.out(toJsonLine(AntiEntropyStatusResponseSchema, s));
          return EXIT.ok;
        }
        const rows = s.ranges.map((r) => [
          `(${r.range?.start}, ${r.range?.end}]`,
          r.peers.join(","),
          String(r.keys),
          r.lastOutcome ? `${formatAge(Number(r.lastExchangeAgeMs))} ago` : "never",
          r.lastOutcome ? `${r.lastOutcome} (${r.lastPeer})` : "-",
          String(r.exchanges),
          String(r.keysRepaired),
          formatBytes(Number(r.bytesMoved)),
        ]);
        io.out(
          `anti-entropy ${s.intervalMs > 0n ? `every ${formatAge(Number(s.intervalMs))}` : "rounds off (repair only)"}, ` +
            `at most ${s.keysPerSecond} keys/s and ${formatBytes(Number(s.bytesPerSecond))}/s${s.ready ? "" : "; trees are being built"}\n` +
            table([["RANGE", "PEERS", "KEYS", "LAST EXCHANGE", "OUTCOME", "EXCHANGES", "REPAIRED", "BYTES MOVED"], ...rows]),
        );
        return EXIT.ok;
      }
      case "hints": {
        expectArgs(0, "hints");
        const h = await client.hints();
        if (json) {
          io.out(toJsonLine(ListHintsResponseSchema, h));
          return EXIT.ok;
        }
        const rows = h.targets.map((t) => [
          t.nodeId,
          String(t.count),
          formatBytes(Number(t.bytes)),
          formatAge(Number(t.oldestAgeMs)),
          formatAge(Number(t.newestAgeMs)),
          String(t.consecutiveFailures),
          t.nextAttemptInMs > 0n ? `in ${formatAge(Number(t.nextAttemptInMs))}` : "due",
        ]);
        io.out(
          (rows.length ? table([["TARGET", "HINTS", "BYTES", "OLDEST", "NEWEST", "FAILURES", "NEXT TRY"], ...rows]) : "no pending hints\n") +
            `stored ${h.stored} (${h.merged} merged into a pending hint of the same key), delivered ${h.delivered}, expired ${h.expired}, ` +
            `refused at a cap ${h.refused}, rejected by the target ${h.rejected}, failed deliveries ${h.failed} (since start)\n`,
        );
        return EXIT.ok;
      }
      case "export":
      case "import": {
        expectArgs(0, `${command} [--${command === "export" ? "out" : "in"} FILE]`);
        if (!clusterSecret && !credentials.token) throw new UsageError(`${command} ${NEEDS_SECRET}`);
        const options = {
          node: nodes[0]!,
          protocol,
          secret: clusterSecret,
          token: credentials.token,
          timeoutMs,
          range: flags.has("range") ? parseTokenRange(flags.get("range")!) : undefined,
          file: flags.get(command === "export" ? "out" : "in"),
          stopOnError: flags.has("stop-on-error"),
          json,
        };
        return EXIT[await (command === "export" ? runExport : runImport)(options, io)];
      }
      default:
        throw new UsageError(`unknown command '${command}'`);
    }
  } catch (err) {
    if (err instanceof UsageError) {
      io.err(`dynamo: ${err.message}\n`);
      return EXIT.usage;
    }
    const ce = ConnectError.from(err);
    const tooLarge = ce.code === Code.ResourceExhausted ? " (the request is larger than the node reads; values may be at most its --max-value-bytes)" : "";
    io.err(`dynamo: ${Code[ce.code]}: ${ce.rawMessage}${tooLarge}\n`);
    if (ce.code === Code.InvalidArgument || ce.code === Code.ResourceExhausted) return EXIT.usage;
    if (ce.code === Code.Unavailable || ce.code === Code.DeadlineExceeded) return EXIT.unavailable;
    return EXIT.failed;
  } finally {
    client?.close();
  }
}

/** A node's answer as one line of proto3 JSON (as Connect's JSON protocol writes it), every field present. */
function toJsonLine<Desc extends DescMessage>(schema: Desc, message: MessageShape<Desc>): string {
  return JSON.stringify(toJson(schema, message, { alwaysEmitImplicit: true })) + "\n";
}

/**
 * Polls Status every second while `stillGoing` holds, printing the transfers' progress on stderr;
 * ends when it no longer holds or the node stops answering (a decommissioned node stops).
 */
async function followTransfers(client: DynamoClient, io: Io, stillGoing: (s: StatusResponse) => boolean): Promise<{ keys: number; bytes: number }> {
  let last = { keys: 0, bytes: 0 };
  for (;;) {
    let s: StatusResponse;
    try {
      s = await client.status();
    } catch (err) {
      if (stoppedAnswering(err)) return last;
      throw err;
    }
    const mine = s.transfers.filter((t) => t.kind !== "bootstrap");
    last = { keys: mine.reduce((sum, t) => sum + Number(t.keys), 0), bytes: mine.reduce((sum, t) => sum + Number(t.bytes), 0) };
    if (!stillGoing(s)) return last;
    const done = mine.filter((t) => t.done).length;
    io.err(
      mine.length === 0
        ? "  waiting for the change to reach every member before streaming\n"
        : `  ${done}/${mine.length} range copies done, ${last.keys} keys, ${formatBytes(last.bytes)}\n`,
    );
    await new Promise((resolve) => setTimeout(resolve, 1000));
  }
}

/**
 * The node is gone: it refused or dropped the connection, or its host is no longer reachable (a
 * container that stopped after leaving drops off its network: EHOSTUNREACH, which connect reports
 * as Internal), or it refused the call's stream because it is shutting down (REFUSED_STREAM,
 * which connect-node reports as Internal too), rather than answering with an error.
 */
export function stoppedAnswering(err: unknown): boolean {
  if (!(err instanceof ConnectError)) return false;
  if (err.code === Code.Unavailable || err.code === Code.Unknown || err.code === Code.Canceled || refusedStream(err)) return true;
  return /\b(ECONNREFUSED|ECONNRESET|EHOSTUNREACH|EHOSTDOWN|ENETUNREACH|ENOTFOUND|EPIPE)\b/.test(err.rawMessage);
}

function formatAge(ms: number): string {
  if (ms < 1000) return `${ms}ms`;
  if (ms < 120_000) return `${(ms / 1000).toFixed(1)}s`;
  if (ms < 7_200_000) return `${Math.round(ms / 60_000)}m`;
  return `${Math.round(ms / 3_600_000)}h`;
}

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
  return (
    rows
      .map((r) =>
        r
          .map((cell, c) => cell.padEnd(widths[c]!))
          .join("  ")
          .trimEnd(),
      )
      .join("\n") + "\n"
  );
}
