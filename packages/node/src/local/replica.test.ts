// LocalReplica over a real store: what a replica that is rebuilding its lost data answers.
import { Code, ConnectError } from "@connectrpc/connect";
import { hashKey } from "@dynamo-ts/ring";
import { emptySet, liveValues, update } from "@dynamo-ts/vclock";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Metrics } from "../observability/metrics.js";
import { versionedRecord } from "../requests/replicas.js";
import { openTempReplica, type TempReplica } from "../test-support/temp-replica.js";
import { ReplicaRebuild } from "./rebuild.js";
import type { LocalReplica } from "./replica.js";

const text = (bytes: Uint8Array[]) => bytes.map((b) => Buffer.from(b).toString());

describe("LocalReplica while rebuilding", () => {
  let temp: TempReplica;
  let rebuild: ReplicaRebuild;
  let metrics: Metrics;
  let replica: LocalReplica;

  beforeAll(async () => {
    rebuild = new ReplicaRebuild(true);
    temp = await openTempReplica({ nodeId: "n1", prefix: "dynamo-replica-", rebuild });
    ({ metrics, replica } = temp);
  });
  afterAll(async () => temp?.close());

  it("refuses a key it lacks with FailedPrecondition, and serves one written since it started", async () => {
    const missing = await replica.read("never-written").then(
      () => expect.fail("answered"),
      (err: unknown) => ConnectError.from(err),
    );
    expect([missing.code, missing.rawMessage]).toEqual([Code.FailedPrecondition, "n1 is rebuilding this key's range after starting without its data"]);
    expect(metrics.get("replica_reads_refused_rebuilding")).toBe(1);

    const written = update(emptySet(), new Map(), "n2", new TextEncoder().encode("fresh"), 1000);
    await replica.write("written-since", versionedRecord(written), undefined);
    expect(rebuild.serves(hashKey("written-since"))).toBe(false);
    expect(text(liveValues((await replica.read("written-since"))!))).toEqual(["fresh"]);
    expect(metrics.get("replica_reads_refused_rebuilding")).toBe(1);
  });

  it("answers absent keys once their range is rebuilt", async () => {
    const token = hashKey("never-written");
    rebuild.recordExchange({ start: token - 1, end: token }, ["n2", "n3"], "n2", "in-sync", false);
    expect(await replica.read("never-written")).toBeUndefined();
  });
});
