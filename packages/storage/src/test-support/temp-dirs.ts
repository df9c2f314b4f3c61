import fs from "node:fs";
import os from "node:os";
import path from "node:path";

/** Temp directories for one test file; call cleanup() in afterEach. */
export class TempDirs {
  private readonly dirs: string[] = [];

  create(): string {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "storage-test-"));
    this.dirs.push(dir);
    return dir;
  }

  cleanup(): void {
    for (const dir of this.dirs.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
  }
}
