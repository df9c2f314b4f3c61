// Replica traffic over one long-lived `ReplicaService.Stream` per peer. A unary Connect call
// costs far more CPU than the work a replica read or write does (stream setup, header blocks,
// per-call signals, a URL per call; see docs/performance.md), and a quorum operation makes two
// of them per request. Here a replica op is one message on a stream that stays open: ops are
// tagged with ids, answered in any order, and batched in both directions when they are issued
// or completed in the same turn of the event loop.
import type { MessageInitShape } from "@bufbuild/protobuf";
import { type Client, Code, ConnectError } from "@connectrpc/connect";
import type {
  ReadRequest,
  ReplicaOp,
  StreamRequest,
  StreamRequestSchema,
  ReplicaOpSchema,
  ReplicaResult,
  StreamResponseSchema,
  ReplicaResultSchema,
  ReplicaService,
  WriteRequest,
} from "@dynamo-ts/proto";
import { decodeSiblingSet, encodeSiblingSet, InvalidEncodingError } from "@dynamo-ts/vclock";
import { AsyncQueue } from "../util/async-queue.js";
import type { LocalReplica } from "../local/replica.js";
import { streamFailure } from "./unreachable.js";

type OpInit = MessageInitShape<typeof ReplicaOpSchema>;
type OpBody = OpInit["op"];
type OpBatchInit = MessageInitShape<typeof StreamRequestSchema>;
type ResultInit = MessageInitShape<typeof ReplicaResultSchema>;
type ResultBatchInit = MessageInitShape<typeof StreamResponseSchema>;

// --- the receiving side -------------------------------------------------------------------

/** What a replica op needs of the local replica. */
export type ReplicaStore = Pick<LocalReplica, "write" | "read">;

/** Applies a replica write to the local store (or its hint store); shared by Write and Stream. */
export async function applyReplicaWrite(replica: ReplicaStore, req: WriteRequest): Promise<void> {
  if (req.key.length === 0) throw new ConnectError("key must not be empty", Code.InvalidArgument);
  let set;
  try {
    set = decodeSiblingSet(req.record);
  } catch (err) {
    if (err instanceof InvalidEncodingError) throw new ConnectError(`record does not decode: ${err.message}`, Code.InvalidArgument);
    throw err;
  }
  await replica.write(req.key, { set, encoded: req.record }, req.hintFor || undefined);
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

// --- the calling side ---------------------------------------------------------------------

/**
 * The most payload one stream message carries. Records can be large (values up to
 * --max-value-bytes, several siblings), and the receiving node refuses messages over its read
 * limit, which would fail the whole stream: batches stay well under it, and an op larger than
 * this travels alone.
 */
const MAX_BATCH_BYTES = 256 * 1024;

/** How long an op must have waited, with nothing at all coming back, before its stream counts as wedged. */
export const MIN_WEDGED_WAIT_MS = 1_000;

/** Records larger than this are written with a unary call rather than on the stream. */
export const MAX_STREAMED_RECORD_BYTES = 1024 * 1024;

/**
 * Collects items added in one turn of the event loop and hands them on together, in messages
 * of at most MAX_BATCH_BYTES (by `sizeOf`).
 */
class Batcher<T> {
  private items: T[] = [];
  private scheduled = false;
  private readonly after: Array<() => void> = [];

  constructor(
    private readonly send: (items: T[]) => void,
    private readonly sizeOf: (item: T) => number,
  ) {}

  add(item: T): void {
    this.items.push(item);
    this.schedule();
  }

  /** Runs `fn` once the items added so far have been sent. */
  afterFlush(fn: () => void): void {
    this.after.push(fn);
    this.schedule();
  }

  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      const items = this.items;
      this.items = [];
      let batch: T[] = [];
      let bytes = 0;
      for (const item of items) {
        const size = this.sizeOf(item);
        if (batch.length > 0 && bytes + size > MAX_BATCH_BYTES) {
          this.send(batch);
          batch = [];
          bytes = 0;
        }
        batch.push(item);
        bytes += size;
      }
      if (batch.length > 0) this.send(batch);
      for (const fn of this.after.splice(0)) fn();
    });
  }
}

// Payload sizes for batching: the bytes that dominate (keys count as UTF-16 length, close enough).
const FRAMING_BYTES = 16;
function opSize(op: OpInit): number {
  const body = op.op;
  if (body?.case === "write") return FRAMING_BYTES + (body.value.key?.length ?? 0) + (body.value.record?.byteLength ?? 0) + (body.value.hintFor?.length ?? 0);
  if (body?.case === "read") return FRAMING_BYTES + (body.value.key?.length ?? 0);
  return FRAMING_BYTES;
}
function resultSize(result: ResultInit): number {
  const body = result.result;
  if (body?.case === "read") return FRAMING_BYTES + (body.value.record?.byteLength ?? 0);
  if (body?.case === "error") return FRAMING_BYTES + (body.value.message?.length ?? 0);
  return FRAMING_BYTES;
}

interface PendingOp {
  resolve(result: ReplicaResult): void;
  reject(err: ConnectError): void;
}

/** One open Stream call and the ops waiting for their results on it. */
class OpenStream {
  readonly pending = new Map<number, PendingOp>();
  /** Answer messages received so far: an op that timed out compares it with its value at send. */
  answersReceived = 0;
  readonly requests = new AsyncQueue<OpBatchInit>();
  readonly abort = new AbortController();
  readonly outgoing = new Batcher<OpInit>((ops) => {
    if (!this.requests.ended) this.requests.push({ ops });
  }, opSize);

  /** Fails every op still waiting and ends the request side. */
  fail(err: ConnectError): void {
    this.requests.end();
    const waiting = [...this.pending.values()];
    this.pending.clear();
    for (const op of waiting) op.reject(err);
  }
}

/**
 * The caller's side of the replica stream to one peer. Opens the stream on first use and again
 * after it broke; a broken stream fails its ops in flight with Unavailable, which the
 * coordinator treats like any failed replica call (fallbacks, hints).
 */
export class ReplicaChannel {
  private stream: OpenStream | undefined;
  private nextId = 0;

  constructor(
    private readonly client: Client<typeof ReplicaService>,
    private readonly peer: string,
  ) {}

  async write(key: string, record: Uint8Array, hintFor: string | undefined, signal: AbortSignal): Promise<void> {
    if (record.byteLength > MAX_STREAMED_RECORD_BYTES) {
      // A record over the receiver's message limit (several large siblings) must not fail the
      // stream and every op on it: it goes in a call of its own, which fails alone if it must.
      await this.client.write({ key, record, hintFor: hintFor ?? "" }, { signal });
      return;
    }
    await this.call({ case: "write", value: { key, record, hintFor: hintFor ?? "" } }, signal);
  }

  /** The peer's encoded sibling set for `key`, empty when it has none. */
  async read(key: string, signal: AbortSignal): Promise<Uint8Array> {
    const result = await this.call({ case: "read", value: { key } }, signal);
    return result.result.case === "read" ? result.result.value.record : new Uint8Array();
  }

  /** Cancels the stream; ops in flight fail with Unavailable. */
  close(): void {
    if (this.stream) this.retire(this.stream, new ConnectError(`replica stream to ${this.peer} closed`, Code.Unavailable));
  }

  private call(op: OpBody, signal: AbortSignal): Promise<ReplicaResult> {
    if (signal.aborted) return Promise.reject(abortError(signal, this.peer));
    const stream = this.stream ?? this.open();
    // Ids only need to be unique among the ops in flight; wrapping at 2^32 is harmless.
    const id = (this.nextId = (this.nextId + 1) >>> 0);
    const answersAtSend = stream.answersReceived;
    const sentAt = Date.now();
    return new Promise<ReplicaResult>((resolve, reject) => {
      const onAbort = () => {
        stream.pending.delete(id);
        const err = abortError(signal, this.peer);
        reject(err);
        // Nothing at all came back while this op waited: the stream may be wedged (a peer that
        // was frozen, a connection that died without an error reaching the stream). Its other
        // ops fail now, and the next op opens a fresh stream, rather than every later op
        // timing out on this one.
        // Only an op that waited a while says so: a client's own 1 ms deadline must not retire
        // the stream every other client's ops are on.
        const waited = Date.now() - sentAt;
        const wedged = err.code === Code.DeadlineExceeded && stream.answersReceived === answersAtSend && waited >= MIN_WEDGED_WAIT_MS;
        if (wedged) this.retire(stream, new ConnectError(`no answer on the replica stream to ${this.peer} for ${waited} ms; reopening it`, Code.Unavailable));
      };
      signal.addEventListener("abort", onAbort, { once: true });
      stream.pending.set(id, {
        resolve(result) {
          signal.removeEventListener("abort", onAbort);
          resolve(result);
        },
        reject(err) {
          signal.removeEventListener("abort", onAbort);
          reject(err);
        },
      });
      stream.outgoing.add({ id, op });
    });
  }

  /** Fails the stream's ops with `err` and cancels it; the next op opens a new stream. */
  private retire(stream: OpenStream, err: ConnectError): void {
    if (this.stream === stream) this.stream = undefined;
    stream.fail(err);
    stream.abort.abort();
  }

  private open(): OpenStream {
    const stream = new OpenStream();
    this.stream = stream;
    const responses = this.client.stream(stream.requests, { signal: stream.abort.signal });
    void (async () => {
      let failure: ConnectError;
      try {
        for await (const batch of responses) {
          stream.answersReceived++;
          for (const result of batch.results) {
            const op = stream.pending.get(result.id);
            if (!op) continue; // its caller stopped waiting (deadline)
            stream.pending.delete(result.id);
            if (result.result.case === "error") op.reject(new ConnectError(result.result.value.message, result.result.value.code as Code));
            else op.resolve(result);
          }
        }
        failure = new ConnectError(`replica stream to ${this.peer} ended`, Code.Unavailable);
      } catch (err) {
        failure = streamFailure(err, this.peer, "replica stream");
      }
      this.retire(stream, failure);
    })();
    return stream;
  }
}

/**
 * A stream that broke means the peer could not be reached for its ops, whatever the
 * transport reported (reset, refused, GOAWAY); a refusal by the peer keeps its own code so a
 * wrong cluster secret or an old peer stays visible as such.
 */
function abortError(signal: AbortSignal, peer: string): ConnectError {
  const reason: unknown = signal.reason;
  if (reason instanceof Error && reason.name === "TimeoutError") {
    return new ConnectError(`${peer} did not answer before the deadline`, Code.DeadlineExceeded);
  }
  return new ConnectError(`replica op to ${peer} cancelled`, Code.Canceled);
}
