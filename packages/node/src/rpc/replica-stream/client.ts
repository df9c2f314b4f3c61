// Replica traffic over one long-lived `ReplicaService.Stream` per peer. A unary Connect call
// costs far more CPU than the work a replica read or write does (stream setup, header blocks,
// per-call signals, a URL per call; see docs/performance.md), and a quorum operation makes two
// of them per request. Here a replica op is one message on a stream that stays open: ops are
// tagged with ids, answered in any order, and batched in both directions when they are issued
// or completed in the same turn of the event loop.
//
// This file is the calling side: one ReplicaChannel per peer (see server.ts for the other).
import type { MessageInitShape } from "@bufbuild/protobuf";
import { type Client, Code, ConnectError } from "@connectrpc/connect";
import type { ReplicaResult, ReplicaService, StreamRequestSchema, StreamResponse } from "@dynamo-ts/proto";
import { ChurnTable } from "@dynamo-ts/storage";
import { AsyncQueue } from "../../util/async-queue.js";
import { isNotCoordinated, notCoordinatedError } from "../../requests/coordinator.js";
import { streamFailure } from "../unreachable.js";
import { Batcher, type OpInit, opSize } from "./batching.js";

type OpBody = OpInit["op"];
type CoordinateInit = Extract<OpBody, { case: "coordinate" }>["value"];

/** Errors the peer answered an op with (as opposed to the stream failing, or the caller giving up). */
const ANSWERED_BY_PEER = new WeakSet<ConnectError>();
type OpBatchInit = MessageInitShape<typeof StreamRequestSchema>;

/** What the channel hears from one open Stream call. */
export interface StreamCallEvents {
  message(batch: StreamResponse): void;
  /** The call is over (called once): ended by the peer, broken, refused or cancelled. */
  end(err: ConnectError): void;
}

/** One open Stream call: request messages go out as they are sent. */
export interface StreamCall {
  send(batch: OpBatchInit): void;
  /** Cancels the call; end() is not called for it. */
  cancel(): void;
}

/** Opens a Stream call to the peer. Two kinds: connect-es's client (streamOverClient) and the lean one (lean-client.ts). */
export type StreamOpener = (events: StreamCallEvents) => StreamCall;

/** A Stream call through a connect-es client (the reference the lean client is tested against). */
export function streamOverClient(client: Client<typeof ReplicaService>, peer: string): StreamOpener {
  return (events) => {
    const requests = new AsyncQueue<OpBatchInit>();
    const abort = new AbortController();
    let over = false;
    void (async () => {
      let failure: ConnectError;
      try {
        for await (const batch of client.stream(requests, { signal: abort.signal })) events.message(batch);
        failure = new ConnectError(`replica stream to ${peer} ended`, Code.Unavailable);
      } catch (err) {
        failure = streamFailure(err, peer, "replica stream");
      }
      if (!over) {
        over = true;
        events.end(failure);
      }
    })();
    return {
      send(batch) {
        if (!requests.ended) requests.push(batch);
      },
      cancel() {
        over = true;
        requests.end();
        abort.abort();
      },
    };
  };
}

/** How long an op must have waited, with nothing at all coming back, before its stream counts as wedged. */
export const MIN_WEDGED_WAIT_MS = 1_000;

/** Records larger than this are written with a unary call rather than on the stream. */
export const MAX_STREAMED_RECORD_BYTES = 1024 * 1024;

interface PendingOp {
  resolve(result: ReplicaResult): void;
  reject(err: ConnectError): void;
}

/** One open Stream call and the ops waiting for their results on it. */
class OpenStream {
  /** By op id (a ChurnTable, not a Map: a Map here got every op promoted, see its comment). */
  readonly pending = new ChurnTable<PendingOp>();
  /** Answer messages received so far: an op that timed out compares it with its value at send. */
  answersReceived = 0;
  call: StreamCall | undefined;
  /** The call failed or was cancelled: ops added now would never be answered. */
  over = false;
  readonly outgoing = new Batcher<OpInit>((ops) => {
    if (!this.over) this.call?.send({ ops });
  }, opSize);

  /** Fails every op still waiting and cancels the call. */
  fail(err: ConnectError): void {
    if (!this.over) {
      this.over = true;
      this.call?.cancel();
    }
    const waiting = this.pending.values();
    this.pending.clear();
    for (const op of waiting) op.reject(err);
  }

  answered(batch: StreamResponse): void {
    this.answersReceived++;
    for (const result of batch.results) {
      const op = this.pending.get(result.id);
      if (!op) continue; // its caller stopped waiting (deadline)
      this.pending.delete(result.id);
      if (result.result.case === "error") op.reject(peerError(result.result.value));
      else op.resolve(result);
    }
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

  private readonly openCall: StreamOpener;

  /** `open` defaults to a Stream call through `client`; `client` also carries the unary Write of records too large for the stream. */
  constructor(
    private readonly client: Client<typeof ReplicaService>,
    private readonly peer: string,
    open?: StreamOpener,
  ) {
    this.openCall = open ?? streamOverClient(client, peer);
  }

  write(key: string, record: Uint8Array, hintFor: string | undefined, signal: AbortSignal): Promise<void> {
    if (record.byteLength > MAX_STREAMED_RECORD_BYTES) {
      // A record over the receiver's message limit (several large siblings) must not fail the
      // stream and every op on it: it goes in a call of its own, which fails alone if it must.
      return this.client.write({ key, record, hintFor: hintFor ?? "" }, { signal }).then(nothing);
    }
    return this.call({ case: "write", value: { key, record, hintFor: hintFor ?? "" } }, signal).then(nothing);
  }

  /** The peer's encoded sibling set for `key`, empty when it has none. */
  read(key: string, signal: AbortSignal): Promise<Uint8Array> {
    return this.readAs(key, signal, (record) => record);
  }

  /** read(), the record handed to `decode` in the same reaction (a promise less per read). */
  readAs<T>(key: string, signal: AbortSignal, decode: (record: Uint8Array) => T): Promise<T> {
    return this.call({ case: "read", value: { key } }, signal).then((result) => decode(readRecordOf(result)));
  }

  /**
   * Hands a client write to the peer to coordinate (this node holds no replica of the key);
   * resolves to the new version's sealed context. Rejects with a notCoordinatedError when the
   * peer declined it or the stream became unavailable before it answered (another replica may
   * take it), and with the peer's error when that is the write's outcome.
   */
  async coordinate(req: CoordinateInit, signal: AbortSignal): Promise<Uint8Array> {
    let result: ReplicaResult;
    try {
      // Not a sign of a wedged stream when it times out: the peer waits for the write's quorum.
      result = await this.call({ case: "coordinate", value: req }, signal, false);
    } catch (err) {
      if (isNotCoordinated(err) || (err instanceof ConnectError && ANSWERED_BY_PEER.has(err)) || signal.aborted) throw err;
      // The stream failed before an answer came (the peer unreachable, stopping, or the stream
      // refused unprocessed): another replica may take the write. A refusal the stream got
      // (PermissionDenied: a peer with another secret) is the same on every replica.
      const ce = ConnectError.from(err);
      if (ce.code !== Code.Unavailable) throw ce;
      throw notCoordinatedError(`${this.peer} did not coordinate the write: ${ce.rawMessage}`);
    }
    if (result.result.case !== "coordinate")
      throw new ConnectError(`${this.peer} answered a forwarded write with ${result.result.case ?? "nothing"}`, Code.Internal);
    return result.result.value.context;
  }

  /** Cancels the stream; ops in flight fail with Unavailable. */
  close(): void {
    if (this.stream) this.retire(this.stream, new ConnectError(`replica stream to ${this.peer} closed`, Code.Unavailable));
  }

  /** `quick`: an op the peer answers without waiting on others (reads, writes), so a timeout may mean a wedged stream. */
  private call(op: OpBody, signal: AbortSignal, quick = true): Promise<ReplicaResult> {
    if (signal.aborted) return Promise.reject(abortError(signal, this.peer));
    const stream = this.stream ?? this.open();
    if (stream.over) return Promise.reject(new ConnectError(`replica stream to ${this.peer} could not be opened`, Code.Unavailable));
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
        const wedged = quick && err.code === Code.DeadlineExceeded && stream.answersReceived === answersAtSend && waited >= MIN_WEDGED_WAIT_MS;
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
  }

  private open(): OpenStream {
    const stream = new OpenStream();
    this.stream = stream;
    stream.call = this.openCall({
      message: (batch) => stream.answered(batch),
      end: (err) => this.retire(stream, err),
    });
    return stream;
  }
}

/** The error a peer answered an op with; a forwarded write it declined is a notCoordinatedError. */
function peerError(error: { code: number; message: string; declined: boolean }): ConnectError {
  if (error.declined) return notCoordinatedError(error.message);
  const err = new ConnectError(error.message, opErrorCode(error.code));
  ANSWERED_BY_PEER.add(err);
  return err;
}

/** A peer's code for a failed op; one that is not a Connect code (a peer with a bug) is Unknown. */
function opErrorCode(code: number): Code {
  return Number.isInteger(code) && code >= Code.Canceled && code <= Code.Unauthenticated ? (code as Code) : Code.Unknown;
}

/** An op given up by its caller: its deadline passed, or it was cancelled. */
function abortError(signal: AbortSignal, peer: string): ConnectError {
  const reason: unknown = signal.reason;
  if (reason instanceof Error && reason.name === "TimeoutError") {
    return new ConnectError(`${peer} did not answer before the deadline`, Code.DeadlineExceeded);
  }
  return new ConnectError(`replica op to ${peer} cancelled`, Code.Canceled);
}

function readRecordOf(result: ReplicaResult): Uint8Array {
  return result.result.case === "read" ? result.result.value.record : new Uint8Array();
}

function nothing(): void {}
