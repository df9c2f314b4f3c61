import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { TargetQueue } from "./target-queue.js";

type Command = { kind: "append"; gap: number; age: number } | { kind: "remove"; pick: number };

describe("TargetQueue", () => {
  it("tracks count, oldest and newest exactly under appends and out-of-order removals", () => {
    const commandArb = fc.oneof(
      fc.record({ kind: fc.constant("append" as const), gap: fc.integer({ min: 1, max: 3 }), age: fc.integer({ min: 0, max: 5 }) }),
      fc.record({ kind: fc.constant("remove" as const), pick: fc.nat() }),
    );
    fc.assert(
      fc.property(fc.array(commandArb, { maxLength: 3000 }), (commands: Command[]) => {
        const queue = new TargetQueue();
        const model: { seq: number; createdAt: number }[] = [];
        let seq = 0;
        let createdAt = 0;
        for (const command of commands) {
          if (command.kind === "append") {
            seq += command.gap;
            createdAt += command.age;
            // Keys repeat only after their hint was removed (the one-hint-per-key rule), sizes vary with seq.
            queue.append(seq, createdAt, `k${seq}`, 2, seq % 7);
            model.push({ seq, createdAt });
          } else if (model.length > 0) {
            const [removed] = model.splice(command.pick % model.length, 1);
            expect(queue.remove(removed!.seq)).toMatchObject({ seq: removed!.seq, key: `k${removed!.seq}` });
            expect(queue.remove(removed!.seq)).toBeUndefined();
            expect(queue.entryForKey(`k${removed!.seq}`)).toBeUndefined();
          } else {
            expect(queue.remove(command.pick)).toBeUndefined();
          }
          expect(queue.count).toBe(model.length);
          expect(queue.bytes).toBe(model.reduce((sum, entry) => sum + 2 + (entry.seq % 7), 0));
          expect(queue.liveSeqs()).toEqual(model.map((entry) => entry.seq));
          if (model.length > 0) {
            expect(queue.oldestCreatedAt).toBe(model[0]!.createdAt);
            expect(queue.newestCreatedAt).toBe(model[model.length - 1]!.createdAt);
            const last = model[model.length - 1]!;
            expect(queue.entryForKey(`k${last.seq}`)).toEqual({ ...last, key: `k${last.seq}`, bytes: 2 + (last.seq % 7), recordBytes: last.seq % 7 });
          } else {
            expect(queue.oldestCreatedAt).toBeNaN();
          }
        }
        const cutoff = createdAt / 2;
        expect(queue.seqsCreatedBefore(cutoff)).toEqual(model.filter((e) => e.createdAt < cutoff).map((e) => e.seq));
      }),
      { seed: 7, numRuns: 60 },
    );
  });

  it("compacts after removing most of a large queue and stays correct", () => {
    const queue = new TargetQueue();
    for (let seq = 1; seq <= 5000; seq++) {
      queue.append(seq, seq * 10, `k${seq}`, 2, 8);
    }
    for (let seq = 2; seq <= 5000; seq += 1) {
      if (seq % 100 !== 0) {
        queue.remove(seq);
      }
    }
    expect(queue.count).toBe(51);
    expect(queue.oldestCreatedAt).toBe(10);
    expect(queue.newestCreatedAt).toBe(50000);
    expect(queue.has(300)).toBe(true);
    expect(queue.has(301)).toBe(false);
    expect(queue.bytes).toBe(51 * 10);
    expect(queue.entryForKey("k4900")).toMatchObject({ seq: 4900, createdAt: 49000 });
    expect(queue.entryForKey("k4901")).toBeUndefined();
    queue.remove(1);
    expect(queue.oldestCreatedAt).toBe(1000);
    expect([...queue.entries()].map((entry) => entry.key).slice(0, 2)).toEqual(["k100", "k200"]);
  });

  it("refuses appends out of sequence or time order, or for a key that has a hint (internal invariants)", () => {
    const queue = new TargetQueue();
    queue.append(5, 100, "k", 1, 1);
    expect(() => queue.append(5, 100, "other", 5, 1)).toThrow(RangeError);
    expect(() => queue.append(6, 99, "other", 5, 1)).toThrow(RangeError);
    expect(() => queue.append(6, 100, "k", 1, 1)).toThrow(/already has hint 5/);
    queue.remove(5);
    queue.append(6, 100, "k", 1, 1);
    expect(queue.entryForKey("k")?.seq).toBe(6);
  });
});
