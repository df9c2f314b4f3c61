import fc from "fast-check";
import { afterEach, describe, expect, it } from "vitest";
import { HintStoreFullError } from "./errors.js";
import { HintStore, type HintCounters, type HintStoreOptions, type TargetSummary } from "./hint-store.js";
import { unionOfBytes } from "./test-support/merges.js";
import { FakeClock, TempDirs } from "./test-support/temp-dirs.js";

const TARGETS = ["a", "b", "a@b", "c"];
const KEYS = ["k0", "k1", "k2"];
const TTL_MS = 100;
// Small caps, so that random sequences run into each of them.
const CAPS = { maxHints: 7, maxBytes: 36, maxBytesPerTarget: 16, maxRecordBytes: 6 };

type Operation =
  | { kind: "enqueue"; target: number; key: number; bytes: number[] }
  | { kind: "ack"; pick: number }
  | { kind: "expire" }
  | { kind: "dropTarget"; target: number }
  | { kind: "reopen" };

type Command =
  | { kind: "tick"; ms: number }
  /** Operations called in the same tick, without awaiting in between: they race in the write pipeline. */
  | { kind: "burst"; operations: Operation[] }
  | { kind: "ack"; picks: number[] }
  | { kind: "recordFailure"; target: number }
  | { kind: "closeAndOpen" };

const targetIndex = fc.nat({ max: TARGETS.length - 1 });
const operationArb: fc.Arbitrary<Operation> = fc.oneof(
  {
    weight: 8,
    arbitrary: fc.record({
      kind: fc.constant("enqueue" as const),
      target: targetIndex,
      key: fc.nat({ max: KEYS.length - 1 }),
      bytes: fc.uniqueArray(fc.nat({ max: 15 }), { minLength: 1, maxLength: 3 }),
    }),
  },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant("ack" as const), pick: fc.nat() }) },
  { weight: 1, arbitrary: fc.constant({ kind: "expire" as const }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("dropTarget" as const), target: targetIndex }) },
  { weight: 1, arbitrary: fc.constant({ kind: "reopen" as const }) },
);
const commandArb: fc.Arbitrary<Command> = fc.oneof(
  { weight: 3, arbitrary: fc.record({ kind: fc.constant("tick" as const), ms: fc.integer({ min: -30, max: 60 }) }) },
  { weight: 8, arbitrary: fc.record({ kind: fc.constant("burst" as const), operations: fc.array(operationArb, { minLength: 1, maxLength: 6, size: "max" }) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant("ack" as const), picks: fc.array(fc.nat(), { maxLength: 4 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("recordFailure" as const), target: targetIndex }) },
  { weight: 1, arbitrary: fc.constant({ kind: "closeAndOpen" as const }) },
);

interface ModelHint {
  /** Filled in when the enqueue resolves (nothing in the same burst refers to it before). */
  id: string;
  readonly target: string;
  readonly key: string;
  readonly record: Uint8Array;
  readonly createdAt: number;
}

const bytesOf = (hint: ModelHint) => Buffer.byteLength(hint.key) + hint.record.length;
const sum = (values: number[]) => values.reduce((total, value) => total + value, 0);

/**
 * The obvious sequential implementation the store must agree with: one hint per (target, key), every
 * operation applied at the moment it is called.
 */
class Model {
  live: ModelHint[] = [];
  issuedIds: string[] = [];
  lastCreatedAt = Number.NEGATIVE_INFINITY;
  counters: HintCounters = Model.zeroCounters();

  static zeroCounters(): HintCounters {
    return { stored: 0, merged: 0, delivered: 0, expired: 0, failed: 0, dropped: 0, refused: 0 };
  }

  /** Returns the hint the enqueue stores, or the cap that refuses it. */
  enqueue(target: string, key: string, record: Uint8Array, now: number): ModelHint | keyof typeof CAPS {
    const createdAt = Math.max(now, this.lastCreatedAt);
    this.lastCreatedAt = createdAt;
    const existing = this.live.find((hint) => hint.target === target && hint.key === key);
    const hint: ModelHint = { id: "", target, key, record: existing ? unionOfBytes(existing.record, record) : record, createdAt };
    const growth = bytesOf(hint) - (existing ? bytesOf(existing) : 0);
    const refusal =
      hint.record.length > CAPS.maxRecordBytes
        ? "maxRecordBytes"
        : !existing && this.live.length >= CAPS.maxHints
          ? "maxHints"
          : growth > 0 && sum(this.live.map(bytesOf)) + growth > CAPS.maxBytes
            ? "maxBytes"
            : growth > 0 && sum(this.live.filter((h) => h.target === target).map(bytesOf)) + growth > CAPS.maxBytesPerTarget
              ? "maxBytesPerTarget"
              : null;
    if (refusal !== null) {
      this.counters.refused++;
      return refusal;
    }
    this.live = this.live.filter((h) => h !== existing);
    this.live.push(hint);
    this.counters.stored++;
    if (existing) {
      this.counters.merged++;
    }
    return hint;
  }

  remove(reason: "delivered" | "expired" | "dropped", predicate: (hint: ModelHint) => boolean): number {
    const before = this.live.length;
    this.live = this.live.filter((hint) => !predicate(hint));
    const removed = before - this.live.length;
    this.counters[reason] += removed;
    return removed;
  }

  closeAndOpen(): void {
    this.counters = Model.zeroCounters();
    this.lastCreatedAt = Math.max(Number.NEGATIVE_INFINITY, ...this.live.map((hint) => hint.createdAt));
  }

  summaries(): TargetSummary[] {
    return [...new Set(this.live.map((hint) => hint.target))].sort().map((target) => {
      const hints = this.live.filter((hint) => hint.target === target);
      return {
        target,
        count: hints.length,
        bytes: sum(hints.map(bytesOf)),
        oldestCreatedAt: Math.min(...hints.map((hint) => hint.createdAt)),
        newestCreatedAt: Math.max(...hints.map((hint) => hint.createdAt)),
      };
    });
  }
}

const tempDirs = new TempDirs();
afterEach(() => tempDirs.cleanup());

describe("HintStore against an in-memory model", () => {
  it("agrees on lists, records, summaries, sizes, bytes and counters over random operation sequences", { timeout: 60_000 }, async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(commandArb, { minLength: 1, maxLength: 40, size: "max" }), fc.nat(), async (commands, listSeed) => {
        const dir = tempDirs.create();
        const clock = new FakeClock(1_000);
        const options: HintStoreOptions = { now: clock.now, ttlMs: TTL_MS, merge: unionOfBytes, ...CAPS };
        const model = new Model();
        let store = await HintStore.open(dir, options);
        try {
          for (const command of commands) {
            if (command.kind === "closeAndOpen") {
              await store.close();
              model.closeAndOpen();
              store = await HintStore.open(dir, options);
            } else {
              await step(store, model, clock, command);
            }
            await expectAgreement(store, model, listSeed);
          }
        } finally {
          await store.close();
        }
      }),
      { seed: 20240601, numRuns: 60 },
    );
  });
});

async function step(store: HintStore, model: Model, clock: FakeClock, command: Exclude<Command, { kind: "closeAndOpen" }>): Promise<void> {
  switch (command.kind) {
    case "tick":
      clock.advance(command.ms);
      return;
    case "ack": {
      const ids = model.issuedIds.length === 0 ? [] : command.picks.map((pick) => model.issuedIds[pick % model.issuedIds.length]!);
      const expected = model.remove("delivered", (hint) => ids.includes(hint.id));
      expect(await store.ack(ids)).toBe(expected);
      return;
    }
    case "recordFailure":
      store.recordFailure(TARGETS[command.target]!);
      model.counters.failed++;
      return;
    case "burst":
      // Every call is made before any is awaited; each outcome is checked against the model applied in call order.
      await Promise.all(command.operations.map((operation) => call(store, model, clock, operation)));
      return;
  }
}

function call(store: HintStore, model: Model, clock: FakeClock, operation: Operation): Promise<void> {
  switch (operation.kind) {
    case "enqueue": {
      const target = TARGETS[operation.target]!;
      const key = KEYS[operation.key]!;
      const record = Uint8Array.from(operation.bytes).sort();
      const pending = store.enqueue(target, key, record);
      const expected = model.enqueue(target, key, record, clock.now());
      if (typeof expected === "string") {
        return pending.then(
          () => expect.unreachable(`enqueue should have been refused by ${expected}`),
          (error: unknown) => {
            expect(error).toBeInstanceOf(HintStoreFullError);
            expect((error as HintStoreFullError).cap).toBe(expected);
          },
        );
      }
      return pending.then((hint) => {
        expect(hint).toMatchObject({ target, key, record: expected.record, createdAt: expected.createdAt });
        expect(model.issuedIds).not.toContain(hint.id);
        expected.id = hint.id;
        model.issuedIds.push(hint.id);
      });
    }
    case "ack": {
      if (model.issuedIds.length === 0) {
        return Promise.resolve();
      }
      const id = model.issuedIds[operation.pick % model.issuedIds.length]!;
      const expected = model.remove("delivered", (hint) => hint.id === id);
      return store.ack([id]).then((removed) => expect(removed, `ack ${id}`).toBe(expected));
    }
    case "expire": {
      const cutoff = clock.now() - TTL_MS;
      const pending = store.expire();
      const expected = model.remove("expired", (hint) => hint.createdAt < cutoff);
      return pending.then((removed) => expect(removed).toBe(expected));
    }
    case "dropTarget": {
      const target = TARGETS[operation.target]!;
      const pending = store.dropTarget(target);
      const expected = model.remove("dropped", (hint) => hint.target === target);
      return pending.then((removed) => expect(removed).toBe(expected));
    }
    case "reopen":
      // Rebuilds the index from disk: what follows must see exactly what the model holds.
      return store.reopen();
  }
}

async function expectAgreement(store: HintStore, model: Model, listSeed: number): Promise<void> {
  expect(store.targets()).toEqual(model.summaries());
  expect(store.size()).toBe(model.live.length);
  expect(store.bytes()).toBe(sum(model.live.map(bytesOf)));
  expect(store.counters()).toEqual(model.counters);
  expect(store.lastWriteError()).toBeUndefined();
  for (const [i, target] of TARGETS.entries()) {
    const expected = model.live.filter((hint) => hint.target === target);
    const listed = await store.list(target, 1000);
    expect(listed.map(({ id, key, record, createdAt }) => ({ id, target, key, record, createdAt }))).toEqual(expected);
    expect(new Set(listed.map((hint) => hint.key)).size).toBe(listed.length);

    // A bounded listing is the prefix that stops at `limit` hints, or once the records reach `maxBytes`.
    const limit = 1 + ((listSeed + i) % 4);
    const maxBytes = 1 + (((listSeed >> 2) + i * 3) % 20);
    const bounded = await store.list(target, limit, maxBytes);
    let count = 0;
    let recordBytes = 0;
    while (count < expected.length && count < limit && (count === 0 || recordBytes < maxBytes)) {
      recordBytes += expected[count]!.record.length;
      count++;
    }
    expect(bounded.map((hint) => hint.id)).toEqual(expected.slice(0, count).map((hint) => hint.id));
  }
}
