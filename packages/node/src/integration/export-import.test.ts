// `dynamo export` and `dynamo import` with real node processes and the real CLI: 10,000 keys
// (siblings, deletes, content types) exported from cluster A and imported into a fresh cluster B
// that has another secret; re-importing into A changes nothing; a key one replica lacks is
// exported with a replica down; bad lines are reported by number while the others import.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type Client, Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport, Http2SessionManager } from "@connectrpc/connect-node";
import { KVService } from "@dynamo-ts/proto";
import { emptySet, encodeSiblingSet, type SiblingSet, sync, update } from "@dynamo-ts/vclock";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { dynamo, TEST_SECRET, TestCluster } from "../test-support/cluster.js";

const OTHER_SECRET = "another-cluster-secret-9876543210";
const KEYS = 10_000;

interface Line {
  key: string;
  siblings: Array<{ value: string; contentType?: string }>;
  deleted: boolean;
  context: string;
  record: string;
}

function readExport(path: string): Map<string, Line> {
  const lines = readFileSync(path, "utf8")
    .split("\n")
    .filter((l) => l !== "");
  return new Map(lines.map((text) => JSON.parse(text) as Line).map((line) => [line.key, line]));
}

/** What key i was written as (see write()): its values, content types and whether it was deleted. */
function expected(i: number): { values: string[]; contentType?: string; deleted: boolean } {
  if (i % 100 === 0) return { values: [`v${i}-a`, `v${i}-b`, `v${i}-c`], deleted: false };
  if (i % 100 === 50) return { values: [`v${i}-a`, `v${i}-b`], deleted: false };
  if (i % 50 === 25) return { values: [], deleted: true };
  if (i % 50 === 10) return { values: [`v${i}`], contentType: `application/x-test-${i % 3}`, deleted: false };
  return { values: [`v${i}`], deleted: false };
}

/** Runs `work` on 0..count-1 with at most `parallel` in flight. */
async function forEachBounded(count: number, parallel: number, work: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: parallel }, async () => {
      while (next < count) await work(next++);
    }),
  );
}

/** TestCluster.start, tried again when a node was not healthy in time (a machine under heavy load). */
async function startCluster(options: Parameters<typeof TestCluster.start>[0]): Promise<TestCluster> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await TestCluster.start(options);
    } catch (err) {
      if (attempt === 3 || !/did not become healthy/.test(String(err))) throw err;
    }
  }
}

const text = (b64: string) => Buffer.from(b64, "base64").toString();
const str = (bytes: Uint8Array) => Buffer.from(bytes).toString();
const sessions: Http2SessionManager[] = [];

function kv(cluster: TestCluster, id: string): Client<typeof KVService> {
  const baseUrl = `http://${cluster.node(id).address}`;
  const sessionManager = new Http2SessionManager(baseUrl);
  sessions.push(sessionManager);
  return createClient(KVService, createConnectTransport({ baseUrl, httpVersion: "2", sessionManager }));
}

describe("dynamo export / dynamo import between two 3-node clusters", () => {
  let a: TestCluster;
  let b: TestCluster;
  let dir: string;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "dynamo-export-"));
    // One after the other: six node processes starting at once can take longer than a start may.
    // Generous request deadlines: these tests are about what moves, not how fast.
    const slow = ["--request-timeout-ms", "15000"];
    a = await startCluster({ nodes: 3, n: 3, args: slow });
    b = await startCluster({ nodes: 3, n: 3, args: [...slow, "--cluster-secret", OTHER_SECRET] });
  }, 240_000);

  afterAll(async () => {
    for (const session of sessions) session.abort();
    await Promise.all([a?.stop(), b?.stop()]);
    rmSync(dir, { recursive: true, force: true });
  });

  it(`round-trips ${KEYS} keys with siblings, deletes and content types into a fresh cluster with another secret; re-importing into the source changes nothing`, async () => {
    // Cluster A: plain values; blind writes of the same key (concurrent siblings); deletes;
    // values written through the HTTP key API with a content type.
    const writers = ["n1", "n2", "n3"].map((id) => kv(a, id));
    let started = Date.now();
    await forEachBounded(KEYS, 16, async (i) => {
      const key = `key-${i}`;
      const writer = writers[i % 3]!;
      const want = expected(i);
      if (want.contentType !== undefined) {
        const res = await fetch(`http://${a.node("n1").address}/kv/${key}`, {
          method: "PUT",
          body: want.values[0],
          headers: { "content-type": want.contentType },
        });
        expect(res.status).toBe(204);
        return;
      }
      if (want.deleted) {
        await writer.put({ key, value: Buffer.from(`v${i}`) });
        await writer.delete({ key });
        return;
      }
      // No context: each write is concurrent with the ones before it (siblings).
      for (const value of want.values) await writer.put({ key, value: Buffer.from(value) });
    });
    const writeSeconds = (Date.now() - started) / 1000;

    const fileA = join(dir, "a.ndjson");
    started = Date.now();
    const exported = await dynamo("export", "--out", fileA, "--node", a.node("n1").address, "--secret", TEST_SECRET);
    const exportSeconds = (Date.now() - started) / 1000;
    expect(exported.code, exported.stderr).toBe(0);
    expect(exported.stderr).toMatch(/exported 10000 keys, .* 200 deleted, 200 with siblings/);
    const linesA = readExport(fileA);
    expect(linesA.size).toBe(KEYS);
    for (let i = 0; i < KEYS; i++) {
      const line = linesA.get(`key-${i}`)!;
      const want = expected(i);
      expect(line.deleted).toBe(want.deleted);
      expect(line.siblings.map((s) => text(s.value)).sort()).toEqual(want.values);
      expect(line.siblings.map((s) => s.contentType)).toEqual(want.values.map(() => want.contentType));
    }

    // Cluster B, empty, another secret: import, then export B and compare.
    started = Date.now();
    const imported = await dynamo("import", "--in", fileA, "--node", b.node("n2").address, "--secret", OTHER_SECRET, "--json");
    const importSeconds = (Date.now() - started) / 1000;
    expect(imported.code, imported.stderr).toBe(0);
    expect(JSON.parse(imported.stdout)).toMatchObject({ imported: KEYS, unchanged: 0, refused: 0, invalid: 0, failed: 0, lines: KEYS });

    const fileB = join(dir, "b.ndjson");
    const exportedB = await dynamo("export", "--out", fileB, "--node", b.node("n3").address, "--secret", OTHER_SECRET);
    expect(exportedB.code, exportedB.stderr).toBe(0);
    const linesB = readExport(fileB);
    expect([...linesB.keys()]).toEqual([...linesA.keys()]);
    for (const [key, line] of linesA) {
      const other = linesB.get(key)!;
      // The same versions (values, siblings, tombstones, clocks), byte for byte; B's own context.
      expect({ ...other, context: "" }).toEqual({ ...line, context: "" });
      expect(other.context).not.toBe(line.context);
    }

    // What B's Get returns matches: values, content types, NotFound for deletes, B's context.
    const readerB = kv(b, "n1");
    for (let i = 0; i < KEYS; i += 7) {
      const key = `key-${i}`;
      const want = expected(i);
      if (want.deleted) {
        await expect(readerB.get({ key })).rejects.toMatchObject({ code: Code.NotFound });
        continue;
      }
      const res = await readerB.get({ key });
      expect(res.siblings.map((s) => str(s.value)).sort()).toEqual(want.values);
      expect(res.siblings.map((s) => s.contentType || undefined)).toEqual(want.values.map(() => want.contentType));
      expect(Buffer.from(res.context).toString("base64")).toBe(linesB.get(key)!.context);
    }
    // Contexts are sealed per cluster: A's is refused by B, B's own resolves the siblings.
    const err = await readerB
      .put({ key: "key-0", value: Buffer.from("x"), context: Buffer.from(linesA.get("key-0")!.context, "base64") })
      .catch((e: unknown) => ConnectError.from(e));
    expect((err as ConnectError).code).toBe(Code.InvalidArgument);
    await readerB.put({ key: "key-0", value: Buffer.from("resolved"), context: Buffer.from(linesB.get("key-0")!.context, "base64") });
    expect((await readerB.get({ key: "key-0" })).siblings.map((s) => str(s.value))).toEqual(["resolved"]);

    // Re-importing into A: every record is already there, nothing is written, nothing changes.
    started = Date.now();
    const again = await dynamo("import", "--in", fileA, "--node", a.node("n3").address, "--secret", TEST_SECRET, "--json");
    const reimportSeconds = (Date.now() - started) / 1000;
    expect(again.code, again.stderr).toBe(0);
    expect(JSON.parse(again.stdout)).toMatchObject({ imported: 0, unchanged: KEYS, refused: 0, invalid: 0, failed: 0 });
    const fileA2 = join(dir, "a2.ndjson");
    expect((await dynamo("export", "--out", fileA2, "--node", a.node("n2").address, "--secret", TEST_SECRET)).code).toBe(0);
    expect(readFileSync(fileA2, "utf8")).toBe(readFileSync(fileA, "utf8"));

    console.log(
      `export/import of ${KEYS} keys (${(readFileSync(fileA).byteLength / 1024 / 1024).toFixed(1)} MiB of NDJSON): ` +
        `written in ${writeSeconds.toFixed(1)}s, exported in ${exportSeconds.toFixed(1)}s, imported into B in ${importSeconds.toFixed(1)}s, ` +
        `re-imported into A (all unchanged) in ${reimportSeconds.toFixed(1)}s`,
    );
  }, 300_000);

  it("exports a key only one replica holds, with another replica down", async () => {
    const set = update(emptySet(), new Map(), "n1", Buffer.from("lonely"), Date.now());
    await a.writeReplica("n1", "only-on-n1", set);
    await a.node("n3").kill();
    try {
      const file = join(dir, "degraded.ndjson");
      const res = await dynamo("export", "--out", file, "--node", a.node("n2").address, "--secret", TEST_SECRET);
      expect(res.code, res.stderr).toBe(0);
      expect(res.stderr).toMatch(/n3 could not be read \(unavailable: .*\); its keys come from the other replicas/);
      const line = readExport(file).get("only-on-n1")!;
      expect(line.siblings.map((s) => text(s.value))).toEqual(["lonely"]);
      expect(readExport(file).size).toBe(KEYS + 1);
    } finally {
      await a.node("n3").start();
      await a.waitAllAlive();
    }
  }, 120_000);

  it("reports each bad line by its number and imports the others; --stop-on-error stops at the first", async () => {
    const good = [...readExport(join(dir, "a.ndjson")).values()].slice(0, 3).map((l) => JSON.stringify(l));
    const line = (
      key: string,
      set: SiblingSet,
      values = set.siblings.filter((s) => s.value).map((s) => ({ value: Buffer.from(s.value!).toString("base64") })),
    ) =>
      JSON.stringify({
        key,
        siblings: values,
        deleted: values.length === 0,
        context: "",
        record: encodeSiblingSet(set).length ? Buffer.from(encodeSiblingSet(set)).toString("base64") : "",
      });
    const v = (node: string, value: string, counter = 1): SiblingSet => ({
      clock: new Map([[node, counter]]),
      siblings: [{ dot: { node, counter }, value: Buffer.from(value), timestamp: Date.now() }],
    });
    let many = emptySet();
    for (let i = 0; i < 101; i++) many = sync(many, v(`w${i}`, `s${i}`));
    const file = join(dir, "bad.ndjson");
    writeFileSync(
      file,
      [
        good[0],
        "this is not json",
        good[1],
        line("huge-counter", v("n1", "x", 2 ** 50)),
        line("edited", v("n1", "x"), [{ value: Buffer.from("y").toString("base64") }]),
        line("too-many-siblings", many),
        good[2],
        line("fine", v("n7", "new")),
        "",
      ].join("\n"),
    );
    const res = await dynamo("import", "--in", file, "--node", b.node("n1").address, "--secret", OTHER_SECRET);
    expect(res.code).toBe(1);
    expect(res.stderr).toMatch(/line 2: invalid: not JSON/);
    expect(res.stderr).toMatch(/line 4: invalid: record refused: its clock has counter 1125899906842624 for n1, at or above 2\^48/);
    expect(res.stderr).toMatch(/line 5: invalid: the record's 1 value\(s\) are not the 1 the file lists/);
    expect(res.stderr).toMatch(/line 6: refused: key "too-many-siblings" would have 101 siblings, more than the limit of 100/);
    expect(res.stderr).not.toMatch(/line [1378]:/);
    expect(res.stdout).toMatch(/^1 imported, 3 unchanged, 1 refused, 3 invalid, 0 failed \(8 lines/);
    expect((await kv(b, "n2").get({ key: "fine" })).siblings.map((s) => str(s.value))).toEqual(["new"]);

    const stopped = await dynamo("import", "--in", file, "--node", b.node("n1").address, "--secret", OTHER_SECRET, "--stop-on-error");
    expect(stopped.code).toBe(1);
    expect(stopped.stderr).toMatch(/line 2: invalid: not JSON/);
    expect(stopped.stderr).not.toMatch(/line 4:/);
    expect(stopped.stdout).toMatch(/stopped at the first failed line/);

    const wrongSecret = await dynamo("import", "--in", file, "--node", b.node("n1").address, "--secret", TEST_SECRET);
    expect(wrongSecret.code).toBe(1);
    expect(wrongSecret.stderr).toMatch(/Unauthenticated/);
    const noSecret = await dynamo("export", "--node", b.node("n1").address);
    expect(noSecret.code).toBe(2);
    expect(noSecret.stderr).toMatch(/export needs the cluster secret/);
  }, 120_000);
});
