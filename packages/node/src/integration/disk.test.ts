// A node whose disk fails, with real processes and a real small file system (tmpfs, mounted by
// the test: needs root, as CI runs): not ready while it can't write, client writes through it
// still succeed (another replica coordinates), and it recovers by itself once space returns.
import { execFileSync } from "node:child_process";
import { cpSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Code, ConnectError } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { eventually, TestCluster } from "../test-support/cluster.js";

function mountAllowed(): string | undefined {
  if (process.getuid?.() !== 0) return "not root";
  const probe = mkdtempSync(join(tmpdir(), "dynamo-mount-probe-"));
  try {
    execFileSync("mount", ["-t", "tmpfs", "-o", "size=1m", "tmpfs", probe]);
    execFileSync("umount", [probe]);
    return undefined;
  } catch (err) {
    return `mount is not permitted here (${(err as Error).message.split("\n")[0]})`;
  } finally {
    rmSync(probe, { recursive: true, force: true });
  }
}

const cannotMount = mountAllowed();
if (cannotMount) console.warn(`[disk.test] skipping the disk failure tests: ${cannotMount}`);

/** Moves a stopped node's data directory onto a fresh tmpfs of `size` mounted in its place. */
function onTmpfs(dir: string, size: string): void {
  const saved = mkdtempSync(join(tmpdir(), "dynamo-disk-save-"));
  cpSync(dir, saved, { recursive: true });
  execFileSync("mount", ["-t", "tmpfs", "-o", `size=${size}`, "tmpfs", dir]);
  cpSync(saved, dir, { recursive: true });
  rmSync(saved, { recursive: true, force: true });
}

async function healthz(address: string): Promise<{ status: number; body: string }> {
  const res = await fetch(`http://${address}/healthz`);
  return { status: res.status, body: await res.text() };
}

describe.skipIf(cannotMount !== undefined)("3 nodes, N=3: a node whose disk fills up or turns read-only", () => {
  let cluster: TestCluster;
  const mounts: string[] = [];
  beforeAll(async () => {
    cluster = await TestCluster.start({ nodes: 3, args: ["--disk-probe-interval-ms", "200", "--anti-entropy-interval-ms", "1000"] });
  }, 30_000);
  afterAll(async () => {
    await cluster?.stop().catch(() => undefined);
    for (const dir of mounts.reverse()) {
      try {
        execFileSync("umount", ["-l", dir]);
      } catch {
        // already gone
      }
    }
  });

  it("is not ready while its disk is full, forwards client writes, and recovers without a restart once space returns", async () => {
    const n3 = cluster.node("n3");
    await n3.kill();
    onTmpfs(n3.dataDir, "6m");
    mounts.push(n3.dataDir);
    await n3.start();
    await cluster.waitAllAlive();

    // Fill n3's disk through ordinary replication: 100 KB values written at W=2 via n1.
    const writer = cluster.client("n1");
    const value = new Uint8Array(100_000).fill(7);
    let written = 0;
    await eventually(
      async () => {
        await writer.put(`fill-${written++}`, value);
        expect((await healthz(n3.address)).status).toBe(503);
      },
      60_000,
      0,
    );
    const health = await healthz(n3.address);
    expect(health.body).toMatch(/data store is not writable since .*(No space left|ENOSPC)/i);
    expect((await cluster.status("n3")).notReadyReason).toMatch(/not writable/);

    // A replica write to it answers Unavailable (coordinators then use fallbacks and hints), not internal.
    const record = (await cluster.readReplica("n1", "fill-0"))!;
    const refused = await cluster.writeReplica("n3", "direct", record).then(
      () => undefined,
      (err: unknown) => ConnectError.from(err),
    );
    expect(refused?.code).toBe(Code.Unavailable);
    expect(refused?.rawMessage).toMatch(/n3 cannot write to its data store/);

    // A client of n3 is still served: another replica coordinates the write.
    await cluster.client("n3").put("through-n3", "while-n3-is-full");
    expect((await cluster.client("n2").get("through-n3"))?.values.map((v) => Buffer.from(v).toString())).toEqual(["while-n3-is-full"]);
    expect(Number((await cluster.status("n3")).counters["writes_forwarded_disk_failing"] ?? 0)).toBeGreaterThan(0);

    // Space returns: n3 reopens its store by itself and takes writes again.
    execFileSync("mount", ["-o", "remount,size=256m", n3.dataDir]);
    await eventually(async () => expect((await healthz(n3.address)).status).toBe(200), 40_000);
    await cluster.client("n3").put("after-recovery", "stored");
    await eventually(async () => expect(await cluster.readReplica("n3", "after-recovery")).toBeDefined());
    // Anti-entropy brings it what it missed while full.
    await eventually(async () => expect(await cluster.readReplica("n3", "through-n3")).toBeDefined(), 30_000);
  });

  it("is not ready while its data directory is read-only, and ready again once it is writable", async () => {
    const n3 = cluster.node("n3");
    // A read-only bind mount over the (tmpfs) directory: new files get EROFS.
    execFileSync("mount", ["--bind", n3.dataDir, n3.dataDir]);
    mounts.push(n3.dataDir);
    execFileSync("mount", ["-o", "remount,bind,ro", n3.dataDir]);
    await eventually(async () => expect((await healthz(n3.address)).status).toBe(503), 20_000);
    expect((await healthz(n3.address)).body).toMatch(/read-only|EROFS/i);
    // Replica writes to it answer Unavailable, so coordinators use fallbacks and hints; a direct client is still served.
    await cluster.client("n3").put("while-read-only", "ok");
    execFileSync("mount", ["-o", "remount,bind,rw", n3.dataDir]);
    await eventually(async () => expect((await healthz(n3.address)).status).toBe(200), 40_000);
    await eventually(async () => expect(await cluster.readReplica("n3", "while-read-only")).toBeDefined(), 30_000);
  });
});
