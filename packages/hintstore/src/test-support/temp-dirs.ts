import fs from "node:fs";
import os from "node:os";
import path from "node:path";

/** Temp directories for one test file; call cleanup() in afterEach. */
export class TempDirs {
  private readonly dirs: string[] = [];

  create(): string {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "hintstore-test-"));
    this.dirs.push(dir);
    return dir;
  }

  cleanup(): void {
    for (const dir of this.dirs.splice(0)) {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }
}

/** A controllable clock for HintStoreOptions.now. */
export class FakeClock {
  time: number;

  constructor(start = 1_700_000_000_000) {
    this.time = start;
  }

  readonly now = (): number => this.time;

  advance(ms: number): void {
    this.time += ms;
  }
}

/** The record bytes the tests store for a key, so a listed hint can be checked without remembering it. */
export function recordFor(key: string): Uint8Array {
  return new TextEncoder().encode(`siblings-of:${key}`);
}

/** What the byte caps count for the hints of these keys stored with recordFor(): UTF-8 key plus record bytes. */
export function hintBytes(...keys: string[]): number {
  return keys.reduce((sum, key) => sum + Buffer.byteLength(key, "utf8") + recordFor(key).length, 0);
}
