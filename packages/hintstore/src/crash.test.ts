import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { afterEach, describe, expect, it } from "vitest";
import { HintStore } from "./hint-store.js";
import { recordFor, TempDirs } from "./test-support/temp-dirs.js";

const tempDirs = new TempDirs();
afterEach(() => tempDirs.cleanup());

const childScript = fileURLToPath(new URL("./test-support/enqueue-until-killed.ts", import.meta.url));

interface AcknowledgedHint {
  id: string;
  target: string;
  key: string;
  createdAt: number;
}

/**
 * Runs the child until it has printed `wanted` acknowledged enqueues, then SIGKILLs it mid-stream
 * (more enqueues are in flight at that moment) and returns every line it managed to print.
 */
function runChildAndKill(dir: string, wanted: number): Promise<AcknowledgedHint[]> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [childScript, dir, "8"], { stdio: ["ignore", "pipe", "pipe"] });
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
