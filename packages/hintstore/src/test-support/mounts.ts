import { execFileSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";

/**
 * Small tmpfs mounts for tests of a full or read-only disk. Needs root (CI runs tests as root); see
 * mountUnavailableReason() for skipping elsewhere. Call cleanup() in afterEach, after closing the stores
 * that use the mounts.
 */
export class TmpfsMounts {
  private readonly mounted: string[] = [];

  /** Mounts a tmpfs of `sizeBytes` on `dir`. */
  mount(dir: string, sizeBytes: number): void {
    run("mount", ["-t", "tmpfs", "-o", `size=${sizeBytes}`, "tmpfs", dir]);
    this.mounted.push(dir);
  }

  /**
   * Remounts read-only or read-write. Linux refuses read-only (EBUSY) while a file on the mount is open for
   * writing, e.g. by an open LevelDB.
   */
  remount(dir: string, mode: "ro" | "rw"): void {
    run("mount", ["-o", `remount,${mode}`, dir]);
  }

  /** Fills the mount's free space with a file; returns its path (delete it to free the space). */
  fill(dir: string): string {
    const filler = path.join(dir, "filler");
    const { bavail, bsize } = fs.statfsSync(dir);
    fs.writeFileSync(filler, Buffer.alloc(bavail * bsize));
    return filler;
  }

  cleanup(): void {
    for (const dir of this.mounted.splice(0).reverse()) {
      try {
        run("umount", [dir]);
      } catch {
        // Still busy (a test failed before closing its store): detach it so the directory can be removed.
        run("umount", ["-l", dir]);
      }
    }
  }
}

/** Why tmpfs cannot be mounted here (not root, no mount binary, no privilege), or null if it can. */
export function mountUnavailableReason(): string | null {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "hintstore-mount-probe-"));
  try {
    run("mount", ["-t", "tmpfs", "-o", "size=65536", "tmpfs", dir]);
    run("umount", [dir]);
    return null;
  } catch (error) {
    return error instanceof Error ? error.message.split("\n")[0]! : String(error);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

function run(command: string, args: string[]): void {
  try {
    execFileSync(command, args, { stdio: ["ignore", "ignore", "pipe"] });
  } catch (error) {
    const stderr = (error as { stderr?: Buffer }).stderr?.toString().trim();
    throw new Error(`${command} ${args.join(" ")} failed${stderr ? `: ${stderr}` : ""}`, { cause: error });
  }
}
