// DYNAMO_EXIT_WITH_PARENT=1: a node whose parent is killed with SIGKILL (a test runner killed by a
// timeout, a script killed by the OOM killer) stops by itself instead of living on as an orphan
// that holds its port and data directory. Without the variable it keeps running, as a node under
// a supervisor should.
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { freePort, TEST_SECRET } from "../test-support/cluster.js";

const MAIN = join(import.meta.dirname, "../../dist/main.js");

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

const cleanup: Array<() => void> = [];
afterEach(() => {
  for (const f of cleanup.splice(0)) f();
});

/** Starts a parent process that starts one node and prints the node's pid. */
async function nodeUnderParent(exitWithParent: boolean): Promise<{ parent: ChildProcess; nodePid: number; port: number; dir: string }> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), "dynamo-orphan-"));
  const args = ["--node-id", "n1", "--listen", `127.0.0.1:${port}`, "--data-dir", join(dir, "n1"), "--n", "1", "--r", "1", "--w", "1"];
  const env = { ...process.env, DYNAMO_CLUSTER_SECRET: TEST_SECRET, DYNAMO_EXIT_WITH_PARENT: exitWithParent ? "1" : "" };
  const script = `const c = require("node:child_process").spawn(process.execPath, ${JSON.stringify([MAIN, ...args])}, { stdio: "ignore" }); process.stdout.write(c.pid + "\\n"); setInterval(() => {}, 1000);`;
  // Its own process group (the node joins it): cleanup can kill whatever is left of the group.
  // No inherited stdio: a leftover process must not hold the test runner's output open (the
  // task runner waits for that pipe to close, so one orphan stalls the whole CI run).
  const parent = spawn(process.execPath, ["-e", script], { env, stdio: ["ignore", "pipe", "ignore"], detached: true });
  // Registered before anything can fail, so a failed start still leaves nothing running.
  cleanup.push(() => {
    try {
      process.kill(-parent.pid!, "SIGKILL");
    } catch {
      // the group is already gone
    }
    rmSync(dir, { recursive: true, force: true });
  });
  const nodePid = await new Promise<number>((resolve, reject) => {
    parent.stdout!.once("data", (d: Buffer) => {
      const pid = Number(d.toString().trim());
      if (Number.isInteger(pid) && pid > 0) {
        cleanup.push(() => {
          if (alive(pid)) process.kill(pid, "SIGKILL");
        });
        resolve(pid);
      } else reject(new Error(`the parent printed ${JSON.stringify(d.toString())}, not the node's pid`));
    });
    parent.once("exit", () => reject(new Error("the parent exited before starting the node")));
  });
  for (let i = 0; i < 300; i++) {
    const ok = await fetch(`http://127.0.0.1:${port}/healthz`).then(
      (r) => r.ok,
      () => false,
    );
    if (ok) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  return { parent, nodePid, port, dir };
}

describe("DYNAMO_EXIT_WITH_PARENT", () => {
  it("stops a node whose parent was killed with SIGKILL, and only with the variable set", async () => {
    const watched = await nodeUnderParent(true);
    const free = await nodeUnderParent(false);
    for (const started of [watched, free]) {
      expect(await fetch(`http://127.0.0.1:${started.port}/healthz`).then((r) => r.status)).toBe(200);
      started.parent.kill("SIGKILL");
    }
    // An upper bound for the node to notice (it checks every second), not a timing assertion.
    for (let i = 0; i < 200 && alive(watched.nodePid); i++) await new Promise((r) => setTimeout(r, 100));
    expect(alive(watched.nodePid)).toBe(false);
    // The node without the variable outlived its parent by as long: it is still serving.
    expect(await fetch(`http://127.0.0.1:${free.port}/healthz`).then((r) => r.status)).toBe(200);
  }, 60_000);
});
