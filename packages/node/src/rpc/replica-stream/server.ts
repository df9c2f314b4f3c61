// The receiving side of the replica stream (and of the unary Write and Read it stands in for):
// ops applied to the local replica, answered in any order, results batched.
import type { MessageInitShape } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import type { CoordinateRequest, ReadRequest, ReplicaOp, StreamRequest, StreamResponseSchema, WriteRequest } from "@dynamo-ts/proto";
import type { StoredRecord } from "@dynamo-ts/storage";
import { decodeSiblingSet, InvalidEncodingError, type SiblingSet } from "@dynamo-ts/vclock";
import type { LocalReplica } from "../../local/replica.js";
import { isNotCoordinated } from "../../requests/coordinator.js";
import { AsyncQueue } from "../../util/async-queue.js";
import { Batcher, type ResultInit, resultSize } from "./batching.js";

type ResultBatchInit = MessageInitShape<typeof StreamResponseSchema>;

/** What a replica op needs of the local replica. */
export type ReplicaStore = Pick<LocalReplica, "write" | "readRecord">;

/**
 * Coordinates a client write another node forwarded on the stream (kv-operations.ts,
 * coordinateForwarded); resolves to the new version's sealed context. Rejects with a
 * notCoordinatedError when this node declines it.
 */
export type ForwardedWriteCoordinator = (req: CoordinateRequest) => Promise<Uint8Array>;

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
export function applyReplicaWrite(replica: ReplicaStore, req: WriteRequest): Promise<void> {
  if (req.key.length === 0) return Promise.reject(new ConnectError("key must not be empty", Code.InvalidArgument));
  let set: SiblingSet;
  try {
    set = decodeRecord(req.record);
  } catch (err) {
    return Promise.reject(err);
  }
  return replica.write(req.key, { set, encoded: req.record }, req.hintFor || undefined);
}

/** This replica's sibling set for a key as stored, empty when it has none (Read and the stream's read ops). */
export function readReplicaRecord(replica: ReplicaStore, req: ReadRequest): Promise<Uint8Array> {
  return replica.readRecord(req.key).then(bytesOfRecord);
}

const NO_RECORD = new Uint8Array();

function bytesOfRecord(record: StoredRecord | undefined): Uint8Array {
  return record === undefined ? NO_RECORD : record.bytes;
}

/**
 * Answers an op: `deliver` gets its result. Reads and writes, the bulk of the ops, are one
 * promise reaction each rather than async functions: each async layer cost a promise and a turn
 * of the microtask queue more, on every replica of every request.
 */
function answer(replica: ReplicaStore, coordinate: ForwardedWriteCoordinator | undefined, op: ReplicaOp, deliver: (result: ResultInit) => void): void {
  const id = op.id;
  const failed = (err: unknown): void => deliver(errorResult(id, err));
  try {
    switch (op.op.case) {
      case "read":
        replica.readRecord(op.op.value.key).then((record) => deliver({ id, result: { case: "read", value: { record: bytesOfRecord(record) } } }), failed);
        return;
      case "write":
        applyReplicaWrite(replica, op.op.value).then(() => deliver({ id, result: { case: "write", value: {} } }), failed);
        return;
      case "coordinate":
        if (coordinate === undefined) throw new ConnectError("this stream does not take forwarded writes", Code.Unimplemented);
        coordinate(op.op.value).then((context) => deliver({ id, result: { case: "coordinate", value: { context } } }), failed);
        return;
      default:
        throw new ConnectError("replica op has neither a write nor a read", Code.InvalidArgument);
    }
  } catch (err) {
    // Refused outright: answered first (the batcher sends what the turn gathered).
    failed(err);
  }
}

function errorResult(id: number, err: unknown): ResultInit {
  const ce = ConnectError.from(err);
  // declined: a forwarded write this node did not coordinate (only the coordinator marks errors so).
  return { id, result: { case: "error", value: { code: ce.code, message: ce.rawMessage, declined: isNotCoordinated(err) } } };
}

/**
 * The serving side of one Stream call, driven by callbacks: every op taken runs at once (ops do
 * not wait for each other), and results go to `send` in batches as they complete. After
 * endInput() (the caller ended its side, or the node began to stop) it takes no more ops, and
 * once those taken are answered and sent, `done` is called. Both the lean server and
 * connect-node's handler (serveReplicaStream) run their streams through this.
 */
export class ReplicaStreamSession {
  private inFlight = 0;
  private inputEnded = false;
  private finished = false;
  private readonly batcher: Batcher<ResultInit>;

  constructor(
    private readonly replica: ReplicaStore,
    send: (batch: ResultBatchInit) => void,
    private readonly done: () => void,
    /** Takes the forwarded writes; without it they are answered Unimplemented. */
    private readonly coordinate?: ForwardedWriteCoordinator,
  ) {
    this.batcher = new Batcher<ResultInit>((results) => {
      if (!this.finished) send({ results });
    }, resultSize);
  }

  get takesOps(): boolean {
    return !this.inputEnded;
  }

  take(batch: StreamRequest): void {
    if (this.inputEnded) return;
    for (const op of batch.ops) {
      this.inFlight++;
      answer(this.replica, this.coordinate, op, this.deliver);
    }
  }

  private readonly deliver = (result: ResultInit): void => {
    this.inFlight--;
    this.batcher.add(result);
    this.endWhenDone();
  };

  endInput(): void {
    this.inputEnded = true;
    this.endWhenDone();
  }

  /** Stops at once: results still to come are dropped (the caller went away). */
  abandon(): void {
    this.inputEnded = true;
    this.finish();
  }

  private endWhenDone(): void {
    if (this.inputEnded && this.inFlight === 0 && !this.finished) this.batcher.afterFlush(() => this.finish());
  }

  private finish(): void {
    if (this.finished) return;
    this.finished = true;
    this.done();
  }
}

/**
 * Serves one Stream call on connect-node (see ReplicaStreamSession): ends when the caller ends
 * its side and every op was answered, or at once when the call is cancelled. When `draining`
 * fires (the node is stopping) it takes no new ops and ends once those it took are answered; the
 * caller fails the ops it still has in flight, and its coordinator falls back as for any down
 * replica.
 */
export async function* serveReplicaStream(
  replica: ReplicaStore,
  requests: AsyncIterable<StreamRequest>,
  signal: AbortSignal,
  draining?: AbortSignal,
  coordinate?: ForwardedWriteCoordinator,
): AsyncGenerator<ResultBatchInit> {
  const out = new AsyncQueue<ResultBatchInit>();
  const session = new ReplicaStreamSession(
    replica,
    (batch) => {
      if (!out.ended) out.push(batch);
    },
    () => out.end(),
    coordinate,
  );
  const onAbort = () => session.abandon();
  const onDrain = () => session.endInput();
  signal.addEventListener("abort", onAbort, { once: true });
  if (draining?.aborted) onDrain();
  else draining?.addEventListener("abort", onDrain, { once: true });
  void (async () => {
    try {
      for await (const batch of requests) {
        if (!session.takesOps) break;
        session.take(batch);
      }
    } catch {
      // The caller went away; the abort signal ends the response side.
    } finally {
      session.endInput();
    }
  })();
  try {
    yield* out;
  } finally {
    signal.removeEventListener("abort", onAbort);
    draining?.removeEventListener("abort", onDrain);
  }
}
