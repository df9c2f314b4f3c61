// Fuzzing of what the store reads back from LevelDB: data keys (parseDataKey) and stored records
// (get, scan, update over whatever bytes sit under a data key). Inputs are arbitrary bytes and valid
// encodings damaged by bit flips, byte changes, truncations, insertions, deletions and appends.
//
// The contract, for every input: either a valid value (a key that dataKey() writes back to exactly
// the same bytes, under its own token; a sibling set that re-encodes to exactly the stored bytes)
// or a StorageCorruptionError. Never another kind of error, never a crash of the process.
import { hashKey } from "@dynamo-ts/ring";
import { encodeSiblingSet, update } from "@dynamo-ts/vclock";
import type { SiblingSet } from "@dynamo-ts/vclock";
import { ClassicLevel } from "classic-level";
import fc from "fast-check";
import { afterAll, describe, expect, it } from "vitest";
import { StorageCorruptionError } from "./errors.js";
import { DATA_END, DATA_START, dataKey, parseDataKey } from "./layout.js";
import { Storage } from "./storage.js";
import { TempDirs } from "./test-support/temp-dirs.js";

/** Fixed seed: a failure reproduces (fast-check prints the counterexample path too). */
const SEED = 0x5eed_da7a;

const tempDirs = new TempDirs();
afterAll(() => tempDirs.cleanup());

const equalBytes = (a: Uint8Array, b: Uint8Array): boolean => Buffer.compare(Buffer.from(a), Buffer.from(b)) === 0;

type Mutation = (bytes: Uint8Array) => Uint8Array;

/** One damaging edit; positions are taken modulo the length so that any input can take any edit. */
const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ at: fc.nat(), bit: fc.integer({ min: 0, max: 7 }) }).map(({ at, bit }): Mutation => (bytes) => {
    if (bytes.length === 0) return bytes;
    const out = Uint8Array.from(bytes);
    out[at % out.length]! ^= 1 << bit;
    return out;
  }),
  fc.record({ at: fc.nat(), value: fc.integer({ min: 0, max: 255 }) }).map(({ at, value }): Mutation => (bytes) => {
    if (bytes.length === 0) return bytes;
    const out = Uint8Array.from(bytes);
    out[at % out.length] = value;
    return out;
  }),
  fc.nat().map(
    (length): Mutation =>
      (bytes) =>
        bytes.slice(0, length % (bytes.length + 1)),
  ),
  fc.record({ at: fc.nat(), inserted: fc.uint8Array({ minLength: 1, maxLength: 8 }) }).map(({ at, inserted }): Mutation => (bytes) => {
    const i = at % (bytes.length + 1);
    return Uint8Array.from([...bytes.subarray(0, i), ...inserted, ...bytes.subarray(i)]);
  }),
  fc.record({ at: fc.nat(), count: fc.integer({ min: 1, max: 8 }) }).map(({ at, count }): Mutation => (bytes) => {
    const i = at % (bytes.length + 1);
    return Uint8Array.from([...bytes.subarray(0, i), ...bytes.subarray(i + count)]);
  }),
  fc.uint8Array({ minLength: 1, maxLength: 8 }).map(
    (tail): Mutation =>
      (bytes) =>
        Uint8Array.from([...bytes, ...tail]),
  ),
);

/** A valid input damaged by one to three edits. */
function mutated(valid: fc.Arbitrary<Uint8Array>): fc.Arbitrary<Uint8Array> {
  return fc.tuple(valid, fc.array(mutation, { minLength: 1, maxLength: 3 })).map(([bytes, edits]) => edits.reduce((b, edit) => edit(b), bytes));
}

/** Keys as clients send them: ASCII, any well-formed Unicode, the empty key. */
const keyArbitrary = fc.oneof(
  fc.string({ maxLength: 12 }),
  fc.string({ maxLength: 8, unit: "grapheme" }),
  fc.string({ maxLength: 6, unit: "binary" }).filter((k) => k.isWellFormed()),
);

const validDataKey = keyArbitrary.map((key) => dataKey(hashKey(key), key));

/** Sibling sets built by real writes (blind or with the current context, values and deletes) from a few coordinators. */
const siblingSetArbitrary: fc.Arbitrary<SiblingSet> = fc
  .array(
    fc.record({
      node: fc.constantFrom("n1", "n2", "node-3"),
      value: fc.option(fc.uint8Array({ maxLength: 12 }), { nil: null, freq: 4 }),
      withContext: fc.boolean(),
      timestamp: fc.nat({ max: 2 ** 40 }),
    }),
    { minLength: 1, maxLength: 5 },
  )
  .map(
    (writes) =>
      writes.reduce<SiblingSet | undefined>(
        (current, w) => update(current, w.withContext ? (current?.clock ?? new Map()) : new Map(), w.node, w.value, w.timestamp),
        undefined,
      ) as SiblingSet,
  );

const validRecord = siblingSetArbitrary.map(encodeSiblingSet);

/** What parseDataKey may do with `bytes`: return the exact key and token they encode, or throw StorageCorruptionError. */
function checkParse(bytes: Uint8Array): "valid" | "corrupt" {
  let parsed: { key: string; token: number };
  try {
    parsed = parseDataKey(bytes);
  } catch (error) {
    expect(error).toBeInstanceOf(StorageCorruptionError);
    return "corrupt";
  }
  expect(parsed.token).toBe(hashKey(parsed.key));
  expect(equalBytes(dataKey(parsed.token, parsed.key), bytes)).toBe(true);
  return "valid";
}

describe("parseDataKey", () => {
  it("parses every key that dataKey writes back to the same key and token", () => {
    fc.assert(
      fc.property(keyArbitrary, (key) => {
        expect(parseDataKey(dataKey(hashKey(key), key))).toEqual({ key, token: hashKey(key) });
      }),
      { numRuns: 1000, seed: SEED },
    );
  });

  it("returns an exact key or throws StorageCorruptionError for arbitrary and damaged bytes", () => {
    const outcomes = { valid: 0, corrupt: 0 };
    fc.assert(
      fc.property(
        fc.oneof(
          fc.uint8Array({ maxLength: 40 }),
          mutated(validDataKey),
          fc.uint8Array({ maxLength: 8 }).map((b) => Uint8Array.of(0x64, ...b)),
        ),
        (bytes) => {
          outcomes[checkParse(bytes)]++;
        },
      ),
      { numRuns: 3000, seed: SEED },
    );
    // Both branches were exercised (a mutation can hit a byte that leaves the key valid, e.g. truncation to its full length).
    console.log(`parseDataKey fuzz outcomes: ${JSON.stringify(outcomes)}`);
    expect(outcomes.corrupt).toBeGreaterThan(1000);
    expect(outcomes.valid).toBeGreaterThan(0);
  });
});

interface RawRecord {
  readonly dbKey: Uint8Array;
  readonly value: Uint8Array;
}

/** Back into the data namespace: keys elsewhere are never read as data (and must not overwrite the format marker). */
const inDataNamespace = (bytes: Uint8Array): Uint8Array => Uint8Array.of(0x64, ...bytes.subarray(1));

/** A record under a data key: a valid key with a valid, damaged or arbitrary value, or a damaged key. */
const rawRecord: fc.Arbitrary<RawRecord> = fc.oneof(
  fc.record({ dbKey: validDataKey, value: fc.oneof(validRecord, mutated(validRecord), fc.uint8Array({ maxLength: 48 })) }),
  fc.record({ dbKey: fc.oneof(mutated(validDataKey), fc.uint8Array({ maxLength: 12 })).map(inDataNamespace), value: validRecord }),
);

describe("stored records that do not decode", () => {
  it("get, scan, update and count return valid values or throw StorageCorruptionError, whatever bytes sit under data keys", { timeout: 60_000 }, async () => {
    const dir = tempDirs.create();
    await (await Storage.open(dir)).close();
    const outcomes = { valid: 0, corrupt: 0, scansEndedByCorruption: 0 };

    await fc.assert(
      fc.asyncProperty(fc.array(rawRecord, { minLength: 1, maxLength: 4 }), async (records) => {
        const raw = new ClassicLevel<Uint8Array, Uint8Array>(dir, { keyEncoding: "view", valueEncoding: "view" });
        await raw.open();
        // Only the data namespace: the format marker stays.
        await raw.clear({ gte: DATA_START, lt: DATA_END });
        await raw.batch(records.map(({ dbKey, value }) => ({ type: "put" as const, key: dbKey, value })));
        await raw.close();

        // What LevelDB holds now (a later record under the same key replaced an earlier one).
        const stored = new Map<string, RawRecord>();
        for (const record of records) stored.set(Buffer.from(record.dbKey).toString("hex"), record);

        const store = await Storage.open(dir);
        try {
          let allValid = true;
          for (const { dbKey, value } of stored.values()) {
            let key: string;
            try {
              key = parseDataKey(dbKey).key;
            } catch {
              allValid = false;
              continue; // not a key get() can ask for
            }
            let set: SiblingSet | undefined;
            try {
              set = await store.get(key);
            } catch (error) {
              expect(error).toBeInstanceOf(StorageCorruptionError);
              outcomes.corrupt++;
              allValid = false;
              // A read-modify-write of that key cannot build on it either.
              await expect(store.merge(key, { clock: new Map(), siblings: [] })).rejects.toThrow(StorageCorruptionError);
              continue;
            }
            expect(set).toBeDefined();
            expect(equalBytes(encodeSiblingSet(set as SiblingSet), value)).toBe(true);
            outcomes.valid++;
          }

          const scanned: string[] = [];
          try {
            for await (const entry of store.scan()) {
              const record = stored.get(Buffer.from(dataKey(entry.token, entry.key)).toString("hex"));
              expect(record, `scan yielded ${JSON.stringify(entry.key)}, which was not stored`).toBeDefined();
              expect(equalBytes(encodeSiblingSet(entry.set), (record as RawRecord).value)).toBe(true);
              scanned.push(entry.key);
            }
            expect(allValid).toBe(true);
            expect(scanned).toHaveLength(stored.size);
          } catch (error) {
            expect(error).toBeInstanceOf(StorageCorruptionError);
            expect(allValid).toBe(false);
            outcomes.scansEndedByCorruption++;
          }
          expect(await store.count()).toBe(stored.size);
        } finally {
          await store.close();
        }
      }),
      { numRuns: 80, seed: SEED },
    );
    expect(outcomes.valid).toBeGreaterThan(0);
    expect(outcomes.corrupt).toBeGreaterThan(0);
    expect(outcomes.scansEndedByCorruption).toBeGreaterThan(0);
    console.log(`stored-record fuzz outcomes: ${JSON.stringify(outcomes)}`);
  });
});
