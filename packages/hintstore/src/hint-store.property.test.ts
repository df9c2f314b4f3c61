import fc from "fast-check";
import { afterEach, describe, expect, it } from "vitest";
import { HintStoreFullError } from "./errors.js";
import { HintStore, type HintCounters, type TargetSummary } from "./hint-store.js";
import { FakeClock, recordFor, TempDirs } from "./test-support/temp-dirs.js";

const TARGETS = ["a", "b", "a@b", "c"];
const TTL_MS = 100;
const MAX_HINTS = 12;

type Command =
  | { kind: "enqueue"; target: number; tick: number }
  | { kind: "burst"; targets: number[]; ackPick: number }
  | { kind: "ack"; picks: number[] }
  | { kind: "expire"; tick: number }
  | { kind: "dropTarget"; target: number }
  | { kind: "recordFailure"; target: number }
  | { kind: "reopen" };

const targetIndex = fc.nat({ max: TARGETS.length - 1 });
const commandArb: fc.Arbitrary<Command> = fc.oneof(
  { weight: 5, arbitrary: fc.record({ kind: fc.constant("enqueue" as const), target: targetIndex, tick: fc.integer({ min: -30, max: 60 }) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant("burst" as const), targets: fc.array(targetIndex, { minLength: 1, maxLength: 5 }), ackPick: fc.nat() }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant("ack" as const), picks: fc.array(fc.nat(), { maxLength: 4 }) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant("expire" as const), tick: fc.integer({ min: 0, max: 80 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("dropTarget" as const), target: targetIndex }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("recordFailure" as const), target: targetIndex }) },
  { weight: 1, arbitrary: fc.constant({ kind: "reopen" as const }) },
);

interface ModelHint {
  readonly id: string;
  readonly target: string;
  readonly key: string;
  readonly createdAt: number;
}

/** The obvious in-memory implementation the store must agree with. */
class Model {
  live: ModelHint[] = [];
  issuedIds: string[] = [];
  lastCreatedAt = Number.NEGATIVE_INFINITY;
  counters: HintCounters = Model.zeroCounters();
  nextKey = 0;
  /** Enqueues accepted but not yet resolved: they count against maxHints. */
  pendingEnqueues = 0;

  static zeroCounters(): HintCounters {
    return { stored: 0, delivered: 0, expired: 0, failed: 0, dropped: 0 };
  }

  reopen(): void {
    this.counters = Model.zeroCounters();
    this.lastCreatedAt = Math.max(Number.NEGATIVE_INFINITY, ...this.live.map((hint) => hint.createdAt));
  }

  nextCreatedAt(now: number): number {
    return Math.max(now, this.lastCreatedAt);
  }

  remove(ids: ReadonlySet<string>): number {
    const before = this.live.length;
    this.live = this.live.filter((hint) => !ids.has(hint.id));
    return before - this.live.length;
  }

  summaries(): TargetSummary[] {
    return [...new Set(this.live.map((hint) => hint.target))].sort().map((target) => {
      const hints = this.live.filter((hint) => hint.target === target);
      return {
        target,
        count: hints.length,
        oldestCreatedAt: Math.min(...hints.map((hint) => hint.createdAt)),
        newestCreatedAt: Math.max(...hints.map((hint) => hint.createdAt)),
      };
    });
  }
}

const tempDirs = new TempDirs();
afterEach(() => tempDirs.cleanup());

describe("HintStore against an in-memory model", () => {
  it("agrees on lists, summaries, sizes and counters over random operation sequences", { timeout: 20_000 }, async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(commandArb, { minLength: 1, maxLength: 40 }), async (commands) => {
        const dir = tempDirs.create();
        const clock = new FakeClock(1_000);
        const options = { now: clock.now, ttlMs: TTL_MS, maxHints: MAX_HINTS };
        const model = new Model();
        let store = await HintStore.open(dir, options);
        try {
          for (const command of commands) {
            store = await step(store, model, clock, command, () => HintStore.open(dir, options));
            await expectAgreement(store, model);
          }
        } finally {
          await store.close();
        }
      }),
      { seed: 20240601, numRuns: 40 },
    );
  });
});

async function step(
  store: HintStore,
  model: Model,
  clock: FakeClock,
  command: Command,
  reopen: () => Promise<HintStore>,
): Promise<HintStore> {
  switch (command.kind) {
    case "enqueue": {
      clock.advance(command.tick);
      await enqueueOne(store, model, clock, TARGETS[command.target]!);
      return store;
    }
    case "burst": {
      // Concurrent enqueues plus an ack racing them: the store must behave as if applied in call order.
      const ackId = model.issuedIds.length > 0 ? model.issuedIds[command.ackPick % model.issuedIds.length]! : null;
      const expectedAck = ackId !== null && model.live.some((hint) => hint.id === ackId) ? 1 : 0;
      const enqueues = command.targets.map((index) => enqueueOne(store, model, clock, TARGETS[index]!));
      const acked = ackId === null ? Promise.resolve(0) : store.ack([ackId]);
      await Promise.all(enqueues);
      expect(await acked).toBe(expectedAck);
      if (ackId !== null) {
        model.remove(new Set([ackId]));
        model.counters.delivered += expectedAck;
      }
      return store;
    }
    case "ack": {
      if (model.issuedIds.length === 0) {
        expect(await store.ack([])).toBe(0);
        return store;
      }
      const ids = command.picks.map((pick) => model.issuedIds[pick % model.issuedIds.length]!);
      const expected = model.remove(new Set(ids));
      expect(await store.ack(ids)).toBe(expected);
      model.counters.delivered += expected;
      return store;
    }
    case "expire": {
      clock.advance(command.tick);
      const cutoff = clock.now() - TTL_MS;
      const expected = model.remove(new Set(model.live.filter((hint) => hint.createdAt < cutoff).map((hint) => hint.id)));
      expect(await store.expire()).toBe(expected);
      model.counters.expired += expected;
      return store;
    }
    case "dropTarget": {
      const target = TARGETS[command.target]!;
      const expected = model.remove(new Set(model.live.filter((hint) => hint.target === target).map((hint) => hint.id)));
      expect(await store.dropTarget(target)).toBe(expected);
      model.counters.dropped += expected;
      return store;
    }
    case "recordFailure": {
      store.recordFailure(TARGETS[command.target]!);
      model.counters.failed++;
      return store;
    }
    case "reopen": {
      await store.close();
      model.reopen();
      return reopen();
    }
  }
}

/** Calls enqueue synchronously (so concurrent calls keep their order) and checks the outcome against the model. */
function enqueueOne(store: HintStore, model: Model, clock: FakeClock, target: string): Promise<void> {
  const key = `key-${model.nextKey++}`;
  const pending = store.enqueue(target, key, recordFor(key));
  if (model.live.length + model.pendingEnqueues >= MAX_HINTS) {
    return expect(pending).rejects.toBeInstanceOf(HintStoreFullError);
  }
  const createdAt = model.nextCreatedAt(clock.now());
  model.lastCreatedAt = createdAt;
  model.pendingEnqueues++;
  return pending.then((hint) => {
    model.pendingEnqueues--;
    expect(hint).toMatchObject({ target, key, createdAt });
    expect(model.issuedIds).not.toContain(hint.id);
    for (const earlier of model.live.filter((h) => h.target === target)) {
      expect(earlier.id < hint.id).toBe(true);
    }
    model.issuedIds.push(hint.id);
    model.live.push({ id: hint.id, target, key, createdAt });
    model.counters.stored++;
  });
}

async function expectAgreement(store: HintStore, model: Model): Promise<void> {
  expect(store.targets()).toEqual(model.summaries());
  expect(store.size()).toBe(model.live.length);
  expect(store.counters()).toEqual(model.counters);
  for (const target of TARGETS) {
    const listed = await store.list(target, 1000);
    const expected = model.live.filter((hint) => hint.target === target);
    expect(listed.map(({ id, key, createdAt }) => ({ id, target, key, createdAt }))).toEqual(expected);
    for (const hint of listed) {
      expect(hint.record).toEqual(recordFor(hint.key));
    }
  }
}
