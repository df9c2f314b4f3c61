// The wire side of `dynamo export` / `dynamo import`: AdminService.Export (a server stream of
// merged records, in bounded batches, written only as fast as the caller reads: connect-node
// waits for the HTTP/2 stream to drain before it asks the generator for the next batch),
// AdminService.Import (per-record outcomes) and ReplicaService.Scan (one page of a store). The
// request logic is in requests/export.ts and Coordinator.importRecord.
import { createHash } from "node:crypto";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { Code, ConnectError, type HandlerContext } from "@connectrpc/connect";
import type {
  ExportedKeySchema,
  ExportRequest,
  ExportResponseSchema,
  ImportRecord,
  ImportRequest,
  ImportResponseSchema,
  ImportResultSchema,
  ScanRequest,
  ScanResponseSchema,
  ValueDigest,
} from "@dynamo-ts/proto";
import { isDeleted, type SiblingSet } from "@dynamo-ts/vclock";
import type { Deadline } from "../requests/deadline.js";
import type { ExportOptions, ExportWalk } from "../requests/export.js";
import type { LocalReplica } from "../local/replica.js";
import { deadlineFor, MAX_TIMEOUT_MS } from "./call-context.js";
import { decodeRecord } from "./replica-stream/server.js";

type ExportResponseInit = MessageInitShape<typeof ExportResponseSchema>;
type ImportResultInit = MessageInitShape<typeof ImportResultSchema>;

export const DEFAULT_PAGE_KEYS = 256;
export const MAX_PAGE_KEYS = 4096;
export const DEFAULT_PAGE_BYTES = 1024 * 1024;
export const MAX_PAGE_BYTES = 16 * 1024 * 1024;
/** How long one Export call runs by default before it ends with done = false. */
export const DEFAULT_EXPORT_CALL_MS = 60_000;
/** Records per Import call, at most. */
export const MAX_IMPORT_RECORDS = 1024;
/** Records of one Import call being merged at once. */
const IMPORT_CONCURRENCY = 16;

export interface PageLimits {
  readonly maxKeys: number;
  readonly maxBytes: number;
}

/** A page's or a batch's size limits (0: the default), InvalidArgument past the maximum. */
export function pageLimits(maxKeys: number, maxBytes: number): PageLimits {
  if (maxKeys > MAX_PAGE_KEYS) throw new ConnectError(`at most ${MAX_PAGE_KEYS} keys per page, got ${maxKeys}`, Code.InvalidArgument);
  if (maxBytes > MAX_PAGE_BYTES) throw new ConnectError(`at most ${MAX_PAGE_BYTES} bytes per page, got ${maxBytes}`, Code.InvalidArgument);
  return { maxKeys: maxKeys || DEFAULT_PAGE_KEYS, maxBytes: maxBytes || DEFAULT_PAGE_BYTES };
}

/** ReplicaService.Scan: a page of this node's store. */
export async function scanResponse(replica: Pick<LocalReplica, "scan">, req: ScanRequest): Promise<MessageInitShape<typeof ScanResponseSchema>> {
  const page = await replica.scan({ token: req.afterToken, key: req.afterKey }, req.lastToken, pageLimits(req.maxKeys, req.maxBytes));
  const keys = page.entries.map(({ key, token, record }) => ({ key, token, record: record.encoded }));
  return { keys, done: page.done, checksum: scanPageChecksum(keys) };
}

/** ScanResponse.checksum: SHA-256 over each key's length-prefixed UTF-8, token and length-prefixed record, in order. */
export function scanPageChecksum(keys: ReadonlyArray<{ readonly key: string; readonly token: number; readonly record: Uint8Array }>): Uint8Array {
  const hash = createHash("sha256");
  const word = Buffer.alloc(4);
  for (const { key, token, record } of keys) {
    const keyBytes = Buffer.from(key, "utf8");
    word.writeUInt32BE(keyBytes.byteLength);
    hash.update(word).update(keyBytes);
    word.writeUInt32BE(token >>> 0);
    hash.update(word);
    word.writeUInt32BE(record.byteLength);
    hash.update(word).update(record);
  }
  return hash.digest();
}

/** What Export and Import need of the node. */
export interface ExportImportSources {
  readonly defaultTimeoutMs: number;
  /** Fires when the node starts to stop: an Export call then ends (done = false) so that the caller can go on elsewhere. */
  readonly draining: AbortSignal;
  now(): number;
  exportWalk(options: ExportOptions): ExportWalk;
  /** The sealed context a Get returns for a key whose replicas hold `set`. */
  contextOf(key: string, set: SiblingSet): Uint8Array;
  importRecord(key: string, set: SiblingSet, deadline: Deadline): Promise<"imported" | "unchanged">;
}

/**
 * AdminService.Export: merged records in batches of at most max_batch_keys keys and about
 * max_batch_bytes bytes. Ends with done = true at the end of the export, or done = false once the
 * call's time is up or the node starts to stop (the caller goes on from `cursor`).
 */
export async function* exportResponses(src: ExportImportSources, req: ExportRequest, ctx: Pick<HandlerContext, "signal">): AsyncGenerator<ExportResponseInit> {
  const limits = pageLimits(req.maxBatchKeys, req.maxBatchBytes);
  const callMs = req.timeoutMs ?? DEFAULT_EXPORT_CALL_MS;
  if (callMs < 1 || callMs > MAX_TIMEOUT_MS) throw new ConnectError(`timeout_ms must be between 1 and ${MAX_TIMEOUT_MS}, got ${callMs}`, Code.InvalidArgument);
  const endAt = src.now() + callMs;
  const after = req.after === undefined ? undefined : { token: req.after.token, key: req.after.key };
  const walk = src.exportWalk({ range: req.range, after, signal: ctx.signal });
  let cursor = after ?? { token: 0, key: "" };
  let keys: Array<MessageInitShape<typeof ExportedKeySchema>> = [];
  let bytes = 0;
  const batch = (done: boolean): ExportResponseInit => {
    const out = { keys, cursor, done, unreadable: [...walk.unreadable].map(([nodeId, reason]) => ({ nodeId, reason })) };
    keys = [];
    bytes = 0;
    return out;
  };
  for await (const { key, token, record } of walk.records()) {
    const values = record.set.siblings.flatMap((s) => (s.value === null ? [] : [{ value: s.value, contentType: s.contentType ?? "" }]));
    keys.push({ key, values, deleted: isDeleted(record.set), context: src.contextOf(key, record.set), record: record.encoded });
    cursor = { token, key };
    bytes += key.length + 2 * record.encoded.byteLength;
    const timeUp = src.now() >= endAt || src.draining.aborted;
    if (timeUp) {
      yield batch(false);
      return;
    }
    if (keys.length >= limits.maxKeys || bytes >= limits.maxBytes) yield batch(false);
  }
  yield batch(true);
}

/** AdminService.Import: every record merged (a few at a time), one result each, in order. */
export async function importResponse(
  src: ExportImportSources,
  req: ImportRequest,
  ctx: Pick<HandlerContext, "signal" | "timeoutMs">,
): Promise<MessageInitShape<typeof ImportResponseSchema>> {
  if (req.records.length > MAX_IMPORT_RECORDS) {
    throw new ConnectError(`at most ${MAX_IMPORT_RECORDS} records per import call, got ${req.records.length}`, Code.InvalidArgument);
  }
  const results: ImportResultInit[] = new Array<ImportResultInit>(req.records.length);
  let next = 0;
  const worker = async () => {
    while (next < req.records.length) {
      const i = next++;
      results[i] = await importOne(src, req.records[i]!, ctx);
    }
  };
  await Promise.all(Array.from({ length: Math.min(IMPORT_CONCURRENCY, req.records.length) }, worker));
  return { results };
}

async function importOne(src: ExportImportSources, rec: ImportRecord, ctx: Pick<HandlerContext, "signal" | "timeoutMs">): Promise<ImportResultInit> {
  try {
    const set = decodeRecord(rec.record);
    checkListedValues(set, rec.values, rec.deleted);
    const outcome = await src.importRecord(rec.key, set, deadlineFor(undefined, src.defaultTimeoutMs, ctx));
    return { line: rec.line, outcome };
  } catch (err) {
    const ce = ConnectError.from(err);
    const outcome = ce.code === Code.InvalidArgument ? "invalid" : ce.code === Code.FailedPrecondition ? "refused" : "failed";
    return { line: rec.line, outcome, message: ce.rawMessage, code: ce.code };
  }
}

/** InvalidArgument unless the record holds exactly the live values (digests, content types, order) and deletion the file lists. */
export function checkListedValues(set: SiblingSet, listed: readonly ValueDigest[], deleted: boolean): void {
  const live = set.siblings.filter((s) => s.value !== null);
  if (isDeleted(set) !== deleted) {
    throw new ConnectError(`the record is ${isDeleted(set) ? "" : "not "}deleted, the file says it is${deleted ? "" : " not"}`, Code.InvalidArgument);
  }
  const matches =
    live.length === listed.length &&
    live.every((s, i) => {
      const digest = createHash("sha256").update(s.value!).digest();
      return digest.equals(listed[i]!.sha256) && (s.contentType ?? "") === listed[i]!.contentType;
    });
  if (!matches) {
    throw new ConnectError(`the record's ${live.length} value(s) are not the ${listed.length} the file lists (was the file edited?)`, Code.InvalidArgument);
  }
}
