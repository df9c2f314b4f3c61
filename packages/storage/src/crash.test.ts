import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { liveValues } from "@dynamo-ts/vclock";
import { afterEach, describe, expect, it } from "vitest";
import { Storage } from "./storage.js";
import { TempDirs } from "./test-support/temp-dirs.js";

const tempDirs = new TempDirs();
afterEach(() => tempDirs.cleanup());

const childScript = fileURLToPath(new URL("./test-support/write-until-killed.ts", import.meta.url));

/** Runs the child until it has acknowledged `wanted` writes, SIGKILLs it with more in flight, and returns the acknowledged keys. */
function runChildAndKill(dir: string, wanted: number): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [childScript, dir, "16"], { stdio: ["ignore", "pipe", "pipe"] });
    const acknowledged: string[] = [];
    let buffered = "";
    let stderr = "";
    let killed = false;
    child.stdout.setEncoding("utf8");
    child.stdout.on("data", (chunk: string) => {
      buffered += chunk;
      const lines = buffered.split("\n");
      buffered = lines.pop() ?? ""; // a partly printed last line is not counted
      acknowledged.push(...lines);
      if (!killed && acknowledged.length >= wanted) {
        killed = true;
        child.kill("SIGKILL");
      }
    });
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    child.on("error", reject);
    child.on("close", (code, signal) => {
      if (signal === "SIGKILL") resolve(acknowledged);
      else reject(new Error(`child exited with code ${code} before being killed: ${stderr}`));
    });
  });
}

describe("kill -9 while writing (sync: false)", () => {
  it("keeps every acknowledged write", { timeout: 20_000 }, async () => {
    const dir = tempDirs.create();
    const acknowledged = await runChildAndKill(dir, 2000);
    expect(acknowledged.length).toBeGreaterThanOrEqual(2000);

    const store = await Storage.open(dir);
    try {
      const decoder = new TextDecoder();
      for (const key of acknowledged) {
        const set = await store.get(key);
        expect(set, `acknowledged key ${key} is missing`).toBeDefined();
        expect(liveValues(set!).map((v) => decoder.decode(v))).toEqual([`v${key.slice(1)}`]);
      }
      // Writes in flight at the kill may or may not have landed, but nothing else appeared.
      expect(await store.count()).toBeGreaterThanOrEqual(acknowledged.length);
      expect(store.stats().batches).toBe(0);
    } finally {
      await store.close();
    }
  });
});
