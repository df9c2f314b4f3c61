// `dynamo export` and `dynamo import`: every key of a cluster as NDJSON, and back.
//
// One line per key (UTF-8, `\n`-terminated; fields in this order, `contentType` only when the
// value has one):
//
//   {"key":"cart","siblings":[{"value":"YXBwbGVz","contentType":"text/plain"}],"deleted":false,
//    "context":"wQEC...","record":"AgEC..."}
//
// - key: the key. siblings: its live values (base64), in canonical order: one, or several
//   written concurrently; none when deleted. deleted: only tombstones are left (a Get answers
//   NotFound). context: the sealed context a Get returns (base64; valid only in the cluster it
//   came from). record: the key's merged sibling set in @dynamo-ts/vclock's encoding (base64):
//   values, tombstones and the causal clock. Import merges `record`; `siblings` and `deleted` are
//   for people and tools, and the node checks that they match it.
//
// Export: AdminService.Export from one node, which reads every member's store and merges each
// key's copies (see the node's requests/export.ts); each key is a snapshot of that key, not of
// the cluster at one instant. A call ends after --timeout-ms (default 60 s); the export goes on
// from the call's cursor, also after an interruption. With --out the file is written under a
// temporary name and renamed once the export is complete.
//
// Import: lines in batches to AdminService.Import, which merges each record causally into the
// key's replicas (idempotent: importing the same file again changes nothing). A line that is not
// a valid export line, or that the node refuses, is reported with its line number; the others
// go on (unless --stop-on-error). Exit status 1 when any line failed.
import { once } from "node:events";
import { createHash } from "node:crypto";
import { createReadStream, createWriteStream, renameSync, rmSync } from "node:fs";
import { createInterface } from "node:readline";
import type { Readable } from "node:stream";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { AdminService, CLUSTER_SECRET_HEADER, type ExportCursor, type ExportedKey, type ImportResponse } from "@dynamo-ts/proto";
import { createDynamoTransport, type Protocol } from "./transport.js";

// --- the line codec ------------------------------------------------------------------------------

export interface ExportedValue {
  readonly value: Uint8Array;
  /** The content type the value was written with, if any. */
  readonly contentType?: string;
}

/** One line of an export file. */
export interface ExportLine {
  readonly key: string;
  readonly siblings: readonly ExportedValue[];
  readonly deleted: boolean;
  readonly context: Uint8Array;
  readonly record: Uint8Array;
}

/** A line that is not a valid export line: its (1-based) number and why. */
export class ExportLineError extends Error {
  override name = "ExportLineError";
  constructor(
    readonly line: number,
    readonly reason: string,
  ) {
    super(`line ${line}: ${reason}`);
  }
}

const FIELDS = ["key", "siblings", "deleted", "context", "record"] as const;
const VALUE_FIELDS = ["value", "contentType"];
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

const base64 = (bytes: Uint8Array) => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("base64");

/** The line (with its `\n`) for one exported key. */
export function encodeExportLine(line: ExportLine): string {
  return (
    JSON.stringify({
      key: line.key,
      siblings: line.siblings.map((s) => (s.contentType === undefined ? { value: base64(s.value) } : { value: base64(s.value), contentType: s.contentType })),
      deleted: line.deleted,
      context: base64(line.context),
      record: base64(line.record),
    }) + "\n"
  );
}

/** Parses one line of an export file (without its newline); ExportLineError, with `line`, for anything else. */
export function decodeExportLine(text: string, line: number): ExportLine {
  const fail = (reason: string): never => {
    throw new ExportLineError(line, reason);
  };
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    return fail(`not JSON (${(err as Error).message})`);
  }
  const object = (value: unknown, what: string): Record<string, unknown> =>
    typeof value === "object" && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : fail(`${what} must be a JSON object`);
  const fields = object(parsed, "the line");
  for (const name of Object.keys(fields)) if (!(FIELDS as readonly string[]).includes(name)) fail(`unknown field ${JSON.stringify(name)}`);
  for (const name of FIELDS) if (!(name in fields)) fail(`missing field "${name}"`);
  const bytes = (value: unknown, what: string): Uint8Array =>
    typeof value === "string" && BASE64.test(value) ? new Uint8Array(Buffer.from(value, "base64")) : fail(`${what} must be a base64 string`);

  const key = fields["key"];
  if (typeof key !== "string" || key.length === 0) return fail(`"key" must be a non-empty string`);
  if (!key.isWellFormed()) fail(`"key" is not well-formed Unicode (a lone surrogate)`);
  const deleted = fields["deleted"];
  if (typeof deleted !== "boolean") return fail(`"deleted" must be true or false`);
  const list = fields["siblings"];
  if (!Array.isArray(list)) return fail(`"siblings" must be an array`);
  const siblings = list.map((item: unknown, i): ExportedValue => {
    const sibling = object(item, `siblings[${i}]`);
    for (const name of Object.keys(sibling)) if (!VALUE_FIELDS.includes(name)) fail(`siblings[${i}] has an unknown field ${JSON.stringify(name)}`);
    const value = bytes(sibling["value"], `siblings[${i}].value`);
    const contentType = sibling["contentType"];
    if (contentType === undefined) return { value };
    if (typeof contentType !== "string" || contentType.length === 0) return fail(`siblings[${i}].contentType must be a non-empty string`);
    return { value, contentType };
  });
  if (deleted && siblings.length > 0) fail(`a deleted key has no siblings, this one lists ${siblings.length}`);
  if (!deleted && siblings.length === 0) fail(`a key that is not deleted has at least one sibling`);
  const context = bytes(fields["context"], `"context"`);
  const record = bytes(fields["record"], `"record"`);
  if (record.byteLength === 0) fail(`"record" is empty`);
  return { key, siblings, deleted, context, record };
}

// --- the commands --------------------------------------------------------------------------------

export interface ExportImportOptions {
  /** The node to talk to. */
  readonly node: string;
  readonly protocol: Protocol;
  /** The cluster secret, or an admin `token`: one of them. */
  readonly secret?: string | undefined;
  readonly token?: string | undefined;
  /** export: how long each Export call may run; import: the deadline of each Import call. */
  readonly timeoutMs?: number | undefined;
  /** export: only the keys whose token lies in (start, end]. */
  readonly range?: { readonly start: number; readonly end: number } | undefined;
  /** export: --out; import: --in. Standard output / input when unset. */
  readonly file?: string | undefined;
  readonly stopOnError: boolean;
  readonly json: boolean;
}

/** What the commands write with (the CLI's Io). */
export interface ExportImportIo {
  out(text: string): void;
  err(text: string): void;
}

/** How the command ended; the CLI maps it to its exit code. */
export type Outcome = "ok" | "failed";

/** Interruptions of an export call that are worth going on after (from the cursor). */
const RESUMABLE = new Set([Code.Unavailable, Code.DeadlineExceeded, Code.Aborted, Code.Internal, Code.Unknown]);
const MAX_RESUMES_WITHOUT_PROGRESS = 3;
const PROGRESS_EVERY_MS = 2_000;
const IMPORT_BATCH_RECORDS = 256;
const IMPORT_BATCH_BYTES = 1024 * 1024;
const IMPORT_CALLS_IN_FLIGHT = 4;
const IMPORT_CALL_TIMEOUT_MS = 120_000;
const IMPORT_CALL_ATTEMPTS = 3;

function formatBytes(bytes: number): string {
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KiB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}

/** Progress lines on stderr every few seconds: keys (or lines), bytes, rate. */
class Progress {
  private readonly startedAt = Date.now();
  private readonly timer: NodeJS.Timeout;
  private shown = -1;
  count = 0;
  bytes = 0;

  constructor(
    private readonly verb: string,
    private readonly io: ExportImportIo,
  ) {
    this.timer = setInterval(() => {
      if (this.count !== this.shown) this.io.err(`dynamo: ${this.line()}\n`);
      this.shown = this.count;
    }, PROGRESS_EVERY_MS);
    this.timer.unref();
  }

  seconds(): number {
    return (Date.now() - this.startedAt) / 1000;
  }

  line(): string {
    const s = this.seconds();
    return `${this.verb} ${this.count} keys, ${formatBytes(this.bytes)} in ${s.toFixed(1)}s (${Math.round(this.count / Math.max(s, 0.001))} keys/s)`;
  }

  stop(): void {
    clearInterval(this.timer);
  }
}

/** Where export lines go: a file written under a temporary name and renamed when complete, or stdout. */
interface Sink {
  write(text: string): Promise<void>;
  commit(): Promise<void>;
  abort(): void;
}

function fileSink(path: string): Sink {
  const partial = `${path}.partial`;
  const stream = createWriteStream(partial);
  let failure: Error | undefined;
  stream.on("error", (err) => (failure = err));
  const check = () => {
    if (failure) throw new Error(`cannot write ${partial}: ${failure.message}`);
  };
  return {
    async write(text) {
      check();
      if (!stream.write(text)) await Promise.race([once(stream, "drain"), once(stream, "error")]);
      check();
    },
    async commit() {
      stream.end();
      await Promise.race([once(stream, "finish"), once(stream, "error")]);
      check();
      renameSync(partial, path);
    },
    abort() {
      stream.destroy();
      rmSync(partial, { force: true });
    },
  };
}

function stdoutSink(io: ExportImportIo): Sink {
  return {
    async write(text) {
      io.out(text);
      // The CLI's out() writes to process.stdout: wait for it to drain before asking for more.
      if (process.stdout.writableNeedDrain) await once(process.stdout, "drain");
    },
    async commit() {},
    abort() {},
  };
}

function adminClient(options: ExportImportOptions) {
  const { transport, close } = createDynamoTransport({ node: options.node, protocol: options.protocol });
  return {
    admin: createClient(AdminService, transport),
    close,
    headers: options.secret ? { [CLUSTER_SECRET_HEADER]: options.secret } : { authorization: `Bearer ${options.token ?? ""}` },
  };
}

function exportLineOf(k: ExportedKey): string {
  return encodeExportLine({
    key: k.key,
    siblings: k.values.map((v) => (v.contentType === "" ? { value: v.value } : { value: v.value, contentType: v.contentType })),
    deleted: k.deleted,
    context: k.context,
    record: k.record,
  });
}

/** `dynamo export`: every key of the cluster, one NDJSON line each, to --out or stdout. */
export async function runExport(options: ExportImportOptions, io: ExportImportIo): Promise<Outcome> {
  const { admin, close, headers } = adminClient(options);
  const sink = options.file === undefined ? stdoutSink(io) : fileSink(options.file);
  const progress = new Progress("exported", io);
  const unreadable = new Set<string>();
  let deleted = 0;
  let withSiblings = 0;
  let cursor: ExportCursor | undefined;
  let resumes = 0;
  try {
    for (;;) {
      let progressed = false;
      try {
        const request = { range: options.range, after: cursor, timeoutMs: options.timeoutMs };
        for await (const res of admin.export(request, { headers })) {
          let text = "";
          for (const k of res.keys) {
            text += exportLineOf(k);
            if (k.deleted) deleted++;
            if (k.values.length > 1) withSiblings++;
          }
          if (text !== "") await sink.write(text);
          progress.count += res.keys.length;
          progress.bytes += Buffer.byteLength(text);
          if (res.keys.length > 0) progressed = true;
          if (res.cursor) cursor = res.cursor;
          for (const member of res.unreadable) {
            if (unreadable.has(member.nodeId)) continue;
            unreadable.add(member.nodeId);
            io.err(`dynamo: ${member.nodeId} could not be read (${member.reason}); its keys come from the other replicas\n`);
          }
          if (res.done) {
            await sink.commit();
            const summary = { keys: progress.count, deleted, withSiblings, bytes: progress.bytes, seconds: progress.seconds(), unreadable: [...unreadable] };
            const text = `${progress.line()}: ${deleted} deleted, ${withSiblings} with siblings${options.file ? ` -> ${options.file}` : ""}\n`;
            if (options.json && options.file !== undefined) io.out(JSON.stringify(summary) + "\n");
            else io.err(`dynamo: ${text}`);
            return "ok";
          }
        }
        // The call's time was up: the next one goes on from the cursor.
      } catch (err) {
        const ce = ConnectError.from(err);
        if (!RESUMABLE.has(ce.code)) throw ce;
        resumes = progressed ? 1 : resumes + 1;
        if (resumes > MAX_RESUMES_WITHOUT_PROGRESS) throw ce;
        io.err(`dynamo: the export was interrupted (${Code[ce.code]}: ${ce.rawMessage}); going on after key ${JSON.stringify(cursor?.key ?? "")}\n`);
        await new Promise((resolve) => setTimeout(resolve, 1000 * resumes));
      }
    }
  } catch (err) {
    sink.abort();
    throw err;
  } finally {
    progress.stop();
    close();
  }
}

interface Tally {
  imported: number;
  unchanged: number;
  refused: number;
  invalid: number;
  failed: number;
}

interface PendingRecord {
  readonly line: bigint;
  readonly key: string;
  readonly record: Uint8Array;
  readonly values: Array<{ sha256: Uint8Array; contentType: string }>;
  readonly deleted: boolean;
}

/** `dynamo import`: the lines of --in (or stdin) merged into the cluster; a summary; "failed" when any line failed. */
export async function runImport(options: ExportImportOptions, io: ExportImportIo): Promise<Outcome> {
  const { admin, close, headers } = adminClient(options);
  const progress = new Progress("sent", io);
  const tally: Tally = { imported: 0, unchanged: 0, refused: 0, invalid: 0, failed: 0 };
  let stop = false;
  const lineFailed = (line: bigint | number, outcome: "refused" | "invalid" | "failed", message: string) => {
    tally[outcome]++;
    io.err(`dynamo: line ${line}: ${outcome}: ${message}\n`);
    if (options.stopOnError) stop = true;
  };
  const tallyResults = (res: ImportResponse) => {
    for (const r of res.results) {
      if (r.outcome === "imported" || r.outcome === "unchanged") tally[r.outcome]++;
      else lineFailed(r.line, r.outcome === "refused" || r.outcome === "invalid" ? r.outcome : "failed", r.message);
    }
  };
  const send = async (records: PendingRecord[]): Promise<void> => {
    for (let attempt = 1; ; attempt++) {
      try {
        tallyResults(await admin.import({ records }, { headers, timeoutMs: options.timeoutMs ?? IMPORT_CALL_TIMEOUT_MS }));
        break;
      } catch (err) {
        const ce = ConnectError.from(err);
        if (ce.code === Code.PermissionDenied || ce.code === Code.Unimplemented) throw ce;
        if (ce.code === Code.ResourceExhausted && records.length > 1) {
          // Larger than the node reads (its limit follows --max-record-bytes): halves, down to one record.
          const half = Math.ceil(records.length / 2);
          await send(records.slice(0, half));
          await send(records.slice(half));
          return;
        }
        if (RESUMABLE.has(ce.code) && attempt < IMPORT_CALL_ATTEMPTS) {
          await new Promise((resolve) => setTimeout(resolve, 500 * attempt));
          continue;
        }
        for (const r of records) lineFailed(r.line, ce.code === Code.ResourceExhausted ? "invalid" : "failed", `${Code[ce.code]}: ${ce.rawMessage}`);
        break;
      }
    }
    progress.count += records.length;
  };

  const input: Readable = options.file === undefined ? process.stdin : createReadStream(options.file);
  const opened =
    options.file === undefined ? Promise.resolve() : Promise.race([once(input, "open"), once(input, "error").then(([err]) => Promise.reject(err as Error))]);
  const inFlight = new Set<Promise<void>>();
  let batch: PendingRecord[] = [];
  let batchBytes = 0;
  const flush = async () => {
    if (batch.length === 0) return;
    const call = send(batch).finally(() => inFlight.delete(call));
    inFlight.add(call);
    batch = [];
    batchBytes = 0;
    if (inFlight.size >= IMPORT_CALLS_IN_FLIGHT) await Promise.race(inFlight);
  };
  let lineNumber = 0;
  try {
    try {
      await opened;
    } catch (err) {
      io.err(`dynamo: cannot read ${options.file}: ${(err as Error).message}\n`);
      return "failed";
    }
    const lines = createInterface({ input, crlfDelay: Infinity });
    for await (const text of lines) {
      lineNumber++;
      progress.bytes += Buffer.byteLength(text) + 1;
      if (text.trim() === "") continue;
      let line: ExportLine;
      try {
        line = decodeExportLine(text, lineNumber);
      } catch (err) {
        if (!(err instanceof ExportLineError)) throw err;
        lineFailed(lineNumber, "invalid", err.reason);
        if (stop) break;
        continue;
      }
      batch.push({
        line: BigInt(lineNumber),
        key: line.key,
        record: line.record,
        values: line.siblings.map((s) => ({ sha256: createHash("sha256").update(s.value).digest(), contentType: s.contentType ?? "" })),
        deleted: line.deleted,
      });
      batchBytes += line.record.byteLength + Buffer.byteLength(line.key) + 40 * line.siblings.length;
      if (batch.length >= IMPORT_BATCH_RECORDS || batchBytes >= IMPORT_BATCH_BYTES) await flush();
      if (stop) break;
    }
    lines.close();
    if (!stop) await flush();
    await Promise.all(inFlight);
  } finally {
    progress.stop();
    close();
    if (input !== process.stdin) input.destroy();
  }
  const failed = tally.refused + tally.invalid + tally.failed;
  const summary = `${tally.imported} imported, ${tally.unchanged} unchanged, ${tally.refused} refused, ${tally.invalid} invalid, ${tally.failed} failed (${lineNumber} lines, ${formatBytes(progress.bytes)} in ${progress.seconds().toFixed(1)}s)${stop ? "; stopped at the first failed line (--stop-on-error)" : ""}\n`;
  io.out(options.json ? JSON.stringify({ ...tally, lines: lineNumber, seconds: progress.seconds(), stopped: stop }) + "\n" : summary);
  return failed > 0 ? "failed" : "ok";
}
