// The wire side of export and import in process: ReplicaService.Scan pages over a real store,
// Export's batches and its end when the call's time is up, Import's per-record outcomes.
import { createHash } from "node:crypto";
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import type { HintStore } from "@dynamo-ts/hintstore";
import { ExportRequestSchema, ImportRequestSchema, ScanRequestSchema, ScanResponseSchema } from "@dynamo-ts/proto";
import { hashKey, Ring } from "@dynamo-ts/ring";
import type { Storage } from "@dynamo-ts/storage";
import { emptySet, encodeSiblingSet, liveValues, type SiblingSet, update } from "@dynamo-ts/vclock";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LocalReplica } from "../local/replica.js";
import { ReplicaRebuild } from "../local/rebuild.js";
import { Metrics } from "../observability/metrics.js";
import { comparePositions, ExportWalk, type ScannedRecord } from "../requests/export.js";
import { versionedRecord } from "../requests/replicas.js";
import {
  checkListedValues,
  type ExportImportSources,
  exportResponses,
  importResponse,
  MAX_IMPORT_RECORDS,
  pageLimits,
  scanPageChecksum,
  scanResponse,
} from "./export-import.js";
import { openTempReplica, type TempReplica } from "../test-support/temp-replica.js";

const utf8 = new TextEncoder();
const version = (value: string | null, node = "n1"): SiblingSet => update(emptySet(), new Map(), node, value === null ? null : utf8.encode(value), 1000);
/** Two keys with the same token (found by search): the store orders them by their bytes. */
const SAME_TOKEN = ["c100368", "c119089"] as const;

describe("ReplicaService.Scan over a real store", () => {
  let temp: TempReplica;
  let storage: Storage;
  let hints: HintStore;
  let replica: LocalReplica;
  const keys = [...Array.from({ length: 50 }, (_, i) => `key-${i}`), ...SAME_TOKEN];

  beforeAll(async () => {
    temp = await openTempReplica({ nodeId: "n1", prefix: "dynamo-scan-" });
    ({ storage, hints, replica } = temp);
    for (const key of keys) await replica.apply(key, version(`value of ${key}`));
  });

  afterAll(async () => temp?.close());

  const page = async (afterToken: number, afterKey: string, lastToken: number, maxKeys = 0, maxBytes = 0) =>
    create(ScanResponseSchema, await scanResponse(replica, create(ScanRequestSchema, { afterToken, afterKey, lastToken, maxKeys, maxBytes })));

  it("pages through every key in storage order, one key at a time, across keys that share a token", async () => {
    expect(hashKey(SAME_TOKEN[0])).toBe(hashKey(SAME_TOKEN[1]));
    const seen: string[] = [];
    let after = { token: 0, key: "" };
    for (;;) {
      const res = await page(after.token, after.key, 0xffff_ffff, 1);
      for (const k of res.keys) {
        seen.push(k.key);
        expect(liveValues((await storage.get(k.key))!)).toEqual(liveValues(versionedRecord(version(`value of ${k.key}`)).set));
        after = { token: k.token, key: k.key };
      }
      if (res.done) break;
      expect(res.keys).toHaveLength(1);
    }
    const expected = [...keys].sort((a, b) => comparePositions({ token: hashKey(a), key: a }, { token: hashKey(b), key: b }));
    expect(seen).toEqual(expected);
    expect(seen.indexOf(SAME_TOKEN[1])).toBe(seen.indexOf(SAME_TOKEN[0]) + 1);
  });

  it("stops at last_token, at max_bytes past the first key, and says when it is done", async () => {
    const all = await page(0, "", 0xffff_ffff, 4096);
    expect(all.done).toBe(true);
    expect(all.keys).toHaveLength(keys.length);
    const middle = all.keys[20]!;
    const upTo = await page(0, "", middle.token, 4096);
    expect(upTo.keys.map((k) => k.key)).toEqual(all.keys.filter((k) => k.token <= middle.token).map((k) => k.key));
    const small = await page(0, "", 0xffff_ffff, 4096, 1);
    expect(small.keys).toHaveLength(1);
    expect(small.done).toBe(false);
    expect((await page(middle.token, "", middle.token - 1)).done).toBe(true);
  });

  it("refuses while the node rebuilds, and refuses pages over the limits", async () => {
    const rebuilding = new LocalReplica("n1", storage, hints, "siblings", new Metrics(), new ReplicaRebuild(true));
    const err = await scanResponse(rebuilding, create(ScanRequestSchema, { lastToken: 10 })).catch((e: unknown) => ConnectError.from(e));
    expect((err as ConnectError).code).toBe(Code.FailedPrecondition);
    expect(() => pageLimits(4097, 0)).toThrow(/at most 4096 keys/);
    expect(() => pageLimits(0, 17 * 1024 * 1024)).toThrow(/at most 16777216 bytes/);
    expect(pageLimits(0, 0)).toEqual({ maxKeys: 256, maxBytes: 1024 * 1024 });
  });
});

/** Export and Import sources over an in-memory list of records; imports are recorded. */
function sources(records: ScannedRecord[], clock = { now: 0 }): ExportImportSources & { imported: string[] } {
  const imported: string[] = [];
  return {
    imported,
    defaultTimeoutMs: 1000,
    draining: new AbortController().signal,
    now: () => clock.now,
    exportWalk: (options) =>
      new ExportWalk(
        {
          ring: () => new Ring(["n1"], { vnodes: 4 }),
          n: 1,
          r: 1,
          resolve: (set) => set,
          scan: async (_node, after, lastToken) => ({ entries: records.filter((r) => comparePositions(r, after) > 0 && r.token <= lastToken), done: true }),
        },
        options,
      ),
    contextOf: (key) => utf8.encode(`ctx:${key}`),
    importRecord: async (key) => {
      if (key === "too-big") throw new ConnectError("over the record limit", Code.FailedPrecondition);
      if (key === "no-quorum") throw new ConnectError("quorum not reached", Code.Unavailable);
      imported.push(key);
      return key === "same" ? "unchanged" : "imported";
    },
  };
}

const scanned = (key: string, set: SiblingSet): ScannedRecord => ({ key, token: hashKey(key), record: versionedRecord(set) });

describe("AdminService.Export batches", () => {
  const records = Array.from({ length: 10 }, (_, i) => scanned(`k${i}`, version(i === 3 ? null : `v${i}`))).sort(comparePositions);
  const signal = new AbortController().signal;

  it("sends keys in batches of max_batch_keys, values and deletion as a Get sees them, then done", async () => {
    const out = [];
    for await (const batch of exportResponses(sources(records), create(ExportRequestSchema, { maxBatchKeys: 4 }), { signal })) out.push(batch);
    expect(out.map((b) => b.keys!.length)).toEqual([4, 4, 2]);
    expect(out.map((b) => b.done)).toEqual([false, false, true]);
    const keys = out.flatMap((b) => b.keys!);
    expect(keys.map((k) => k.key)).toEqual(records.map((r) => r.key));
    const deleted = keys.find((k) => k.key === "k3")!;
    expect(deleted.deleted).toBe(true);
    expect(deleted.values).toEqual([]);
    const live = keys.find((k) => k.key === "k5")!;
    expect(live.values).toEqual([{ value: utf8.encode("v5"), contentType: "" }]);
    expect(live.context).toEqual(utf8.encode("ctx:k5"));
    expect(live.record).toEqual(encodeSiblingSet(version("v5")));
    expect(out.at(-1)!.cursor).toEqual({ token: records.at(-1)!.token, key: records.at(-1)!.key });
  });

  it("ends with done = false once the call's time is up, and goes on from the cursor", async () => {
    const clock = { now: 0 };
    const src = sources(records, clock);
    const first = [];
    for await (const batch of exportResponses(src, create(ExportRequestSchema, { timeoutMs: 10 }), { signal })) {
      first.push(batch);
      clock.now += 100;
    }
    // The clock moved only after the first batch was taken: the whole export fit in it.
    expect(first.map((b) => b.done)).toEqual([true]);
    const clock2 = { now: 0 };
    const src2 = sources(records, clock2);
    const gen = exportResponses(src2, create(ExportRequestSchema, { timeoutMs: 10, maxBatchKeys: 3 }), { signal });
    const a = await gen.next();
    clock2.now = 50;
    const b = await gen.next();
    expect(a.value!.done).toBe(false);
    expect(b.value!.done).toBe(false);
    expect(b.value!.keys).toHaveLength(1);
    expect((await gen.next()).done).toBe(true);
    const cursor = b.value!.cursor!;
    const rest = [];
    for await (const batch of exportResponses(sources(records), create(ExportRequestSchema, { after: cursor }), { signal })) rest.push(...batch.keys!);
    expect(rest.map((k) => k.key)).toEqual(records.slice(4).map((r) => r.key));
  });

  it("refuses a timeout over the maximum", async () => {
    const gen = exportResponses(sources(records), create(ExportRequestSchema, { timeoutMs: 600_001 }), { signal });
    await expect(gen.next()).rejects.toThrow(/timeout_ms must be between 1 and 600000/);
  });
});

describe("AdminService.Import results", () => {
  const digest = (value: string) => createHash("sha256").update(value).digest();
  const rec = (
    line: number,
    key: string,
    set: SiblingSet,
    values = liveValues(set).map((v) => ({ sha256: createHash("sha256").update(v).digest(), contentType: "" })),
  ) => ({
    line: BigInt(line),
    key,
    record: encodeSiblingSet(set),
    values,
    deleted: liveValues(set).length === 0,
  });
  const ctx = { signal: new AbortController().signal, timeoutMs: () => undefined };

  it("answers every record in order: imported, unchanged, invalid, refused, failed", async () => {
    const src = sources([]);
    const req = create(ImportRequestSchema, {
      records: [
        rec(1, "a", version("x")),
        rec(2, "same", version("y")),
        { line: 3n, key: "bad", record: utf8.encode("garbage"), values: [], deleted: false },
        rec(4, "edited", version("x"), [{ sha256: digest("not x"), contentType: "" }]),
        rec(5, "too-big", version("z")),
        rec(6, "no-quorum", version("z")),
        rec(7, "gone", version(null)),
      ],
    });
    const res = await importResponse(src, req, ctx);
    expect(res.results!.map((r) => [Number(r.line), r.outcome])).toEqual([
      [1, "imported"],
      [2, "unchanged"],
      [3, "invalid"],
      [4, "invalid"],
      [5, "refused"],
      [6, "failed"],
      [7, "imported"],
    ]);
    expect(res.results![2]!.message).toMatch(/record does not decode/);
    expect(res.results![3]!.message).toMatch(/not the 1 the file lists/);
    expect(res.results![4]!.code).toBe(Code.FailedPrecondition);
    expect(src.imported).toEqual(["a", "same", "no-quorum", "gone"].filter((k) => k !== "no-quorum"));
  });

  it("refuses more records than a call may carry", async () => {
    const req = create(ImportRequestSchema, { records: Array.from({ length: MAX_IMPORT_RECORDS + 1 }, (_, i) => rec(i, `k${i}`, version("v"))) });
    await expect(importResponse(sources([]), req, ctx)).rejects.toThrow(/at most 1024 records/);
  });

  it("checks the listed values against the record: digests, content types, order, deletion", () => {
    const set = update(version("a"), new Map(), "n2", utf8.encode("b"), 1000, "text/plain");
    const listed = [
      { sha256: digest("a"), contentType: "" },
      { sha256: digest("b"), contentType: "text/plain" },
    ].map((v) => ({ ...v, $typeName: "dynamo.v1.ValueDigest" as const }));
    expect(() => checkListedValues(set, listed, false)).not.toThrow();
    expect(() => checkListedValues(set, [...listed].reverse(), false)).toThrow(/value\(s\) are not/);
    expect(() => checkListedValues(set, [listed[0]!, { ...listed[1]!, contentType: "" }], false)).toThrow(/value\(s\) are not/);
    expect(() => checkListedValues(set, listed, true)).toThrow(/not deleted, the file says it is/);
    expect(() => checkListedValues(version(null), [], false)).toThrow(/is deleted, the file says it is not/);
  });
});

describe("ScanResponse checksum", () => {
  const page = [
    { key: "a", token: 1, record: Uint8Array.of(1, 2, 3) },
    { key: "b", token: 2, record: Uint8Array.of(4) },
  ];
  const hex = (keys: typeof page) => Buffer.from(scanPageChecksum(keys)).toString("hex");

  it("changes with any byte of a record, a key, a token, the order, or a key moved across the record boundary", () => {
    const base = hex(page);
    expect(hex([{ ...page[0]!, record: Uint8Array.of(1, 2, 4) }, page[1]!])).not.toBe(base);
    expect(hex([{ ...page[0]!, key: "c" }, page[1]!])).not.toBe(base);
    expect(hex([{ ...page[0]!, token: 7 }, page[1]!])).not.toBe(base);
    expect(hex([page[1]!, page[0]!])).not.toBe(base);
    expect(hex([page[0]!])).not.toBe(base);
    // Length prefixes: "ab" + record [] is not "a" + record [0x62...].
    expect(hex([{ key: "ab", token: 1, record: new Uint8Array() }])).not.toBe(hex([{ key: "a", token: 1, record: Uint8Array.of(0x62) }]));
    expect(hex(page)).toBe(base);
  });
});
