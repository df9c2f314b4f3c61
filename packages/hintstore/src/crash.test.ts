import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { afterEach, describe, expect, it } from "vitest";
import { HintStore } from "./hint-store.js";
import { tokensOf, unionOfTokens } from "./test-support/merges.js";
import { recordFor, TempDirs } from "./test-support/temp-dirs.js";

const tempDirs = new TempDirs();
afterEach(() => tempDirs.cleanup());

/** The targets the child enqueues for, round-robin: enqueue n goes to CHILD_TARGETS[n % 3]. */
const CHILD_TARGETS = ["node-a", "node-b", "node-c"];
const childScript = fileURLToPath(new URL("./test-support/enqueue-until-killed.ts", import.meta.url));

interface AcknowledgedHint {
  id: string;
  target: string;
  key: string;
  /** The enqueue's number; in merge mode its record is token(n). */
  n: number;
  createdAt: number;
}

/**
 * Runs the child until it has printed `wanted` acknowledged enqueues, then SIGKILLs it mid-stream
 * (more enqueues are in flight at that moment) and returns every line it managed to print.
 */
function runChildAndKill(dir: string, wanted: number, keys?: number): Promise<AcknowledgedHint[]> {
  return new Promise((resolve, reject) => {
    const args = [childScript, dir, "8", ...(keys === undefined ? [] : [String(keys)])];
    const child = spawn(process.execPath, args, { stdio: ["ignore", "pipe", "pipe"] });
    const acknowledged: AcknowledgedHint[] = [];
    let buffered = "";
    let stderr = "";
    let killed = false;
    child.stdout.setEncoding("utf8");
    child.stdout.on("data", (chunk: string) => {
      buffered += chunk;
      const lines = buffered.split("\n");
      buffered = lines.pop()!; // a partial last line was not fully printed: not counted
      for (const line of lines) {
        acknowledged.push(JSON.parse(line) as AcknowledgedHint);
      }
      if (!killed && acknowledged.length >= wanted) {
        killed = true;
        child.kill("SIGKILL");
      }
    });
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    child.on("error", reject);
    child.on("close", (code, signal) => {
      if (signal !== "SIGKILL") {
        reject(new Error(`child exited with code ${code} before being killed: ${stderr}`));
      } else {
        resolve(acknowledged);
      }
    });
  });
}

describe("kill -9 while enqueueing", () => {
  it("keeps every acknowledged hint, in order, and acks after restart remove them", { timeout: 20_000 }, async () => {
    const dir = tempDirs.create();
    const acknowledged = await runChildAndKill(dir, 500);
    expect(acknowledged.length).toBeGreaterThanOrEqual(500);

    const store = await HintStore.open(dir);
    try {
      const byTarget = Map.groupBy(acknowledged, (hint) => hint.target);
      for (const [target, hints] of byTarget) {
        const listed = await store.list(target, 1_000_000);
        const listedById = new Map(listed.map((hint) => [hint.id, hint]));
        for (const hint of hints) {
          const stored = listedById.get(hint.id);
          expect(stored, `acknowledged hint ${hint.id} was lost`).toBeDefined();
          expect(stored).toMatchObject({ target, key: hint.key, createdAt: hint.createdAt });
          expect(stored!.record).toEqual(recordFor(hint.key));
        }
        // Acknowledged hints appear in the order they were acknowledged, which is enqueue order.
        const acknowledgedIds = new Set(hints.map((hint) => hint.id));
        expect(listed.map((hint) => hint.id).filter((id) => acknowledgedIds.has(id))).toEqual(hints.map((h) => h.id));
      }
      const summaryCount = store.targets().reduce((sum, summary) => sum + summary.count, 0);
      expect(summaryCount).toBe(store.size());
      expect(store.size()).toBeGreaterThanOrEqual(acknowledged.length);

      const ids = acknowledged.map((hint) => hint.id);
      expect(await store.ack(ids)).toBe(ids.length);
      expect(await store.ack(ids)).toBe(0);
      expect(store.counters().delivered).toBe(ids.length);
      for (const target of byTarget.keys()) {
        const remaining = await store.list(target, 1_000_000);
        expect(remaining.filter((hint) => ids.includes(hint.id))).toEqual([]);
      }
    } finally {
      await store.close();
    }

    // The child's hints were enqueued by a process that never closed the store; a new writer continues
    // past them without reusing an id.
    const again = await HintStore.open(dir);
    try {
      const fresh = await again.enqueue("node-a", "after-crash", recordFor("after-crash"));
      expect(acknowledged.every((hint) => hint.id.slice(0, 16) < fresh.id.slice(0, 16))).toBe(true);
    } finally {
      await again.close();
    }
  });
});

describe("kill -9 while enqueueing into a few keys (every enqueue after the first of a key merges)", () => {
  it("keeps one hint per (target, key) holding every acknowledged record", { timeout: 20_000 }, async () => {
    const dir = tempDirs.create();
    const keys = 5;
    const acknowledged = await runChildAndKill(dir, 500, keys);
    expect(acknowledged.length).toBeGreaterThanOrEqual(500);

    const store = await HintStore.open(dir, { merge: unionOfTokens });
    const listedIds = new Set<string>();
    try {
      const byTarget = Map.groupBy(acknowledged, (hint) => hint.target);
      for (const [target, hints] of byTarget) {
        const listed = await store.list(target, 1_000_000);
        listed.forEach((hint) => listedIds.add(hint.id));
        expect(new Set(listed.map((hint) => hint.key)).size, `one hint per key of ${target}`).toBe(listed.length);
        for (const [key, acknowledgedForKey] of Map.groupBy(hints, (hint) => hint.key)) {
          const stored = listed.find((hint) => hint.key === key);
          expect(stored, `the hint of ${target}/${key} was lost`).toBeDefined();
          const tokens = new Set(tokensOf(stored!.record));
          for (const hint of acknowledgedForKey) {
            expect(tokens.has(hint.n), `acknowledged enqueue ${hint.n} is missing from ${target}/${key}`).toBe(true);
          }
          // Only this key's own enqueues (acknowledged or still in flight at the kill) were merged into it.
          for (const n of tokens) {
            expect([CHILD_TARGETS[n % CHILD_TARGETS.length], `key-${n % keys}`]).toEqual([target, key]);
          }
          // The stored hint is the newest version of the key: no older id the child saw is still there.
          expect(stored!.id >= acknowledgedForKey.at(-1)!.id).toBe(true);
        }
      }
      expect(store.targets().reduce((sum, summary) => sum + summary.count, 0)).toBe(store.size());
      expect(store.size()).toBeLessThanOrEqual(3 * keys);
      // Every id the child saw that is not listed was merged away: acknowledging it removes nothing.
      const stale = acknowledged.map((hint) => hint.id).filter((id) => !listedIds.has(id));
      expect(stale.length).toBeGreaterThan(0);
      expect(await store.ack(stale)).toBe(0);
      expect(await store.ack([...listedIds])).toBe(listedIds.size);
    } finally {
      await store.close();
    }
  });
});
