// The receiving side of the replica stream (and of the unary Write and Read it stands in for):
// ops applied to the local replica, answered in any order, results batched.
import type { MessageInitShape } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import type { ReadRequest, ReplicaOp, StreamRequest, StreamResponseSchema, WriteRequest } from "@dynamo-ts/proto";
import { decodeSiblingSet, encodeSiblingSet, InvalidEncodingError, type SiblingSet } from "@dynamo-ts/vclock";
import type { LocalReplica } from "../../local/replica.js";
import { AsyncQueue } from "../../util/async-queue.js";
import { Batcher, type ResultInit, resultSize } from "./batching.js";

type ResultBatchInit = MessageInitShape<typeof StreamResponseSchema>;

/** What a replica op needs of the local replica. */
export type ReplicaStore = Pick<LocalReplica, "write" | "read">;

/** A record sent by another node (or read from an export file); InvalidArgument when it does not decode. */
export function decodeRecord(record: Uint8Array): SiblingSet {
  try {
    return decodeSiblingSet(record);
  } catch (err) {
    if (err instanceof InvalidEncodingError) throw new ConnectError(`record does not decode: ${err.message}`, Code.InvalidArgument);
    throw err;
  }
}

/** Applies a replica write to the local store (or its hint store); shared by Write and Stream. */
export async function applyReplicaWrite(replica: ReplicaStore, req: WriteRequest): Promise<void> {
  if (req.key.length === 0) throw new ConnectError("key must not be empty", Code.InvalidArgument);
  await replica.write(req.key, { set: decodeRecord(req.record), encoded: req.record }, req.hintFor || undefined);
}

/** This replica's encoded sibling set for a key, empty when it has none; shared by Read and Stream. */
export async function readReplicaRecord(replica: ReplicaStore, req: ReadRequest): Promise<Uint8Array> {
  const set = await replica.read(req.key);
  return set ? encodeSiblingSet(set) : new Uint8Array();
}

async function answer(replica: ReplicaStore, op: ReplicaOp): Promise<ResultInit> {
  try {
    switch (op.op.case) {
      case "write":
        await applyReplicaWrite(replica, op.op.value);
        return { id: op.id, result: { case: "write", value: {} } };
      case "read":
        return { id: op.id, result: { case: "read", value: { record: await readReplicaRecord(replica, op.op.value) } } };
      default:
        throw new ConnectError("replica op has neither a write nor a read", Code.InvalidArgument);
    }
  } catch (err) {
    const ce = ConnectError.from(err);
    return { id: op.id, result: { case: "error", value: { code: ce.code, message: ce.rawMessage } } };
  }
}

/**
 * Serves one Stream call: every op runs as soon as it arrives (ops do not wait for each
 * other), and results go back as they complete. Ends when the caller ends its side and every
 * op was answered, or at once when the call is cancelled. When `draining` fires (the node is
 * stopping) it takes no new ops and ends once those it took are answered; the caller fails
 * the ops it still has in flight, and its coordinator falls back as for any down replica.
 */
export async function* serveReplicaStream(
  replica: ReplicaStore,
  requests: AsyncIterable<StreamRequest>,
  signal: AbortSignal,
  draining?: AbortSignal,
): AsyncGenerator<ResultBatchInit> {
  const out = new AsyncQueue<ResultBatchInit>();
  const batcher = new Batcher<ResultInit>((results) => {
    if (!out.ended) out.push({ results });
  }, resultSize);
  let inFlight = 0;
  let inputEnded = false;
  const endWhenDone = () => {
    if (inputEnded && inFlight === 0) batcher.afterFlush(() => out.end());
  };
  const onAbort = () => out.end();
  const onDrain = () => {
    inputEnded = true;
    endWhenDone();
  };
  signal.addEventListener("abort", onAbort, { once: true });
  if (draining?.aborted) onDrain();
  else draining?.addEventListener("abort", onDrain, { once: true });
  void (async () => {
    try {
      for await (const batch of requests) {
        if (inputEnded) break;
        for (const op of batch.ops) {
          inFlight++;
          void answer(replica, op).then((result) => {
            inFlight--;
            batcher.add(result);
            endWhenDone();
          });
        }
      }
    } catch {
      // The caller went away; the abort signal ends the response side.
    } finally {
      inputEnded = true;
      endWhenDone();
    }
  })();
  try {
    yield* out;
  } finally {
    signal.removeEventListener("abort", onAbort);
    draining?.removeEventListener("abort", onDrain);
  }
}
