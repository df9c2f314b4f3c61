// The responder: the side that answers a co-replica's Exchange stream, one method per step. A
// stream opens a range (checked against this node's trees), then asks for node hashes, leaf
// entries and records, and pushes records this node merges. Every request is bounded
// (limits.ts); a request that breaks the protocol fails the stream with InvalidArgument.
import type { MessageInitShape } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { HASH_FORMAT_VERSION, MerkleError } from "@dynamo-ts/merkle";
import type { ExchangeRequest, ExchangeResponseSchema, OpenRange } from "@dynamo-ts/proto";
import { hashKey } from "@dynamo-ts/ring";
import { decodeSiblingSet, encodeSiblingSet, InvalidEncodingError } from "@dynamo-ts/vclock";
import { MAX_CHUNK_BYTES, MAX_ENTRIES_PER_CHUNK, MAX_INDICES_PER_QUERY, MAX_KEYS_PER_BATCH, MAX_LEAVES_PER_QUERY, MESSAGE_FRAMING_BYTES } from "./limits.js";
import type { AntiEntropyDeps, AntiEntropyOptions } from "./options.js";
import type { Throttle } from "./throttle.js";
import type { RangeEntry, Trees } from "./trees.js";

type ResponseInit = MessageInitShape<typeof ExchangeResponseSchema>;
type RequestStep = ExchangeRequest["step"];
type RequestValue<C extends NonNullable<RequestStep["case"]>> = Extract<RequestStep, { case: C }>["value"];

/** What one stream has opened: the range its later requests are about. */
interface StreamState {
  open: RangeEntry | undefined;
}

/** Answers the exchanges co-replicas start with this node. */
export class Responder {
  constructor(
    private readonly options: Pick<AntiEntropyOptions, "maxMessageBytes">,
    private readonly deps: Pick<AntiEntropyDeps, "storage" | "replica" | "metrics" | "log" | "rebuild">,
    private readonly trees: Trees,
    private readonly throttle: Throttle,
    /** Ends the answers when anti-entropy stops. */
    private readonly stopping: AbortSignal,
  ) {}

  /** Answers a peer's Exchange stream, request by request. */
  async *respond(requests: AsyncIterable<ExchangeRequest>, signal: AbortSignal): AsyncGenerator<ResponseInit> {
    const stream: StreamState = { open: undefined };
    for await (const request of requests) {
      if (signal.aborted || this.stopping.aborted) return;
      yield* this.answer(request.step, stream);
    }
  }

  /** The answer(s) to one request. */
  private answer(step: RequestStep, stream: StreamState): AsyncGenerator<ResponseInit> {
    switch (step.case) {
      case "open":
        return this.open(step.value, stream);
      case "nodeHashes":
        return this.nodeHashes(step.value, requireOpen(stream));
      case "leafEntries":
        return this.leafEntries(step.value, requireOpen(stream));
      case "fetch":
        return this.fetch(step.value, requireOpen(stream));
      case "push":
        return this.push(step.value, requireOpen(stream));
      default:
        throw invalid("an exchange request must have a step");
    }
  }

  /** Opens a range on the stream, or says why not; the answer carries this node's root. */
  private async *open(value: OpenRange, stream: StreamState): AsyncGenerator<ResponseInit> {
    const accepted = this.accept(value);
    stream.open = typeof accepted === "string" ? undefined : accepted;
    yield {
      step: {
        case: "opened",
        value:
          typeof accepted === "string"
            ? { accepted: false, reason: accepted }
            : {
                accepted: true,
                root: accepted.tree.root(),
                keyCount: BigInt(accepted.tree.size),
                rebuilding: this.deps.rebuild?.pending(accepted.range) ?? false,
              },
      },
    };
  }

  /** The hashes of the tree nodes asked for, at one level. */
  private async *nodeHashes({ level, indices }: RequestValue<"nodeHashes">, { tree }: RangeEntry): AsyncGenerator<ResponseInit> {
    if (indices.length > MAX_INDICES_PER_QUERY) throw invalid(`at most ${MAX_INDICES_PER_QUERY} node hashes per query, got ${indices.length}`);
    yield { step: { case: "nodeHashes", value: { level, hashes: merkleCall(() => indices.map((index) => ({ index, hash: tree.hashAt(level, index) }))) } } };
  }

  /** The (key, digest) entries of the leaves asked for, in chunks. */
  private async *leafEntries({ leaves }: RequestValue<"leafEntries">, { tree }: RangeEntry): AsyncGenerator<ResponseInit> {
    if (leaves.length > MAX_LEAVES_PER_QUERY) throw invalid(`at most ${MAX_LEAVES_PER_QUERY} leaves per query, got ${leaves.length}`);
    const entries = merkleCall(() => leaves.flatMap((leaf) => tree.leafEntries(leaf)));
    let chunk: { key: string; digest: Uint8Array }[] = [];
    let bytes = 0;
    for (const { key, digest } of entries) {
      chunk.push({ key, digest });
      bytes += key.length * 3 + digest.byteLength;
      if (chunk.length >= MAX_ENTRIES_PER_CHUNK || bytes >= MAX_CHUNK_BYTES) {
        yield { step: { case: "leafEntries", value: { entries: chunk, last: false } } };
        chunk = [];
        bytes = 0;
      }
    }
    yield { step: { case: "leafEntries", value: { entries: chunk, last: true } } };
  }

  /** This node's records of the keys asked for (empty for a key it lacks), in chunks. */
  private async *fetch({ keys }: RequestValue<"fetch">, entry: RangeEntry): AsyncGenerator<ResponseInit> {
    if (keys.length > MAX_KEYS_PER_BATCH) throw invalid(`at most ${MAX_KEYS_PER_BATCH} keys per fetch, got ${keys.length}`);
    await this.throttle.take(keys.length, 0);
    const sets = await Promise.all(
      keys.map((key) => (key.isWellFormed() && key.length > 0 && entry.tree.covers(hashKey(key)) ? this.deps.storage.get(key) : undefined)),
    );
    let chunk: { key: string; record: Uint8Array }[] = [];
    let bytes = 0;
    let total = 0;
    for (let i = 0; i < keys.length; i++) {
      const set = sets[i];
      let record = set === undefined ? new Uint8Array() : encodeSiblingSet(set);
      if (record.byteLength > this.options.maxMessageBytes - MESSAGE_FRAMING_BYTES) {
        // Larger than any message a node accepts: it would fail the whole exchange. It
        // converges once a client resolves the key's siblings.
        this.deps.metrics.count("anti_entropy_records_too_large");
        this.deps.log.warn("anti-entropy: record larger than a message the peer accepts, not sent", { key: keys[i], bytes: record.byteLength });
        record = new Uint8Array();
      }
      if (chunk.length > 0 && bytes + record.byteLength > MAX_CHUNK_BYTES) {
        yield { step: { case: "fetched", value: { records: chunk, last: false } } };
        chunk = [];
        bytes = 0;
      }
      chunk.push({ key: keys[i]!, record });
      bytes += record.byteLength;
      total += record.byteLength;
    }
    this.deps.metrics.count("anti_entropy_keys_served", sets.filter((s) => s !== undefined).length);
    entry.stats.bytesMoved += total;
    await this.throttle.take(0, total);
    yield { step: { case: "fetched", value: { records: chunk, last: true } } };
  }

  /** Merges the peer's records of keys in the open range here; says how many changed anything. */
  private async *push({ records }: RequestValue<"push">, entry: RangeEntry): AsyncGenerator<ResponseInit> {
    if (records.length > MAX_KEYS_PER_BATCH) throw invalid(`at most ${MAX_KEYS_PER_BATCH} records per push, got ${records.length}`);
    const decoded = records.map(({ key, record }) => {
      if (key.length === 0 || !key.isWellFormed() || !entry.tree.covers(hashKey(key))) {
        throw invalid(`pushed key ${JSON.stringify(key)} is not in range (${entry.range.start}, ${entry.range.end}]`);
      }
      try {
        return { key, set: decodeSiblingSet(record) };
      } catch (err) {
        if (err instanceof InvalidEncodingError) throw invalid(`pushed record of ${JSON.stringify(key)} does not decode: ${err.message}`);
        throw err;
      }
    });
    const bytes = records.reduce((sum, r) => sum + r.record.byteLength, 0);
    await this.throttle.take(records.length, bytes);
    const changes = await Promise.all(decoded.map(({ key, set }) => this.deps.replica.apply(key, set)));
    const changed = changes.filter((c) => c.changed).length;
    this.deps.metrics.count("anti_entropy_keys_received", records.length);
    entry.stats.keysRepaired += changed;
    entry.stats.bytesMoved += bytes;
    yield { step: { case: "pushed", value: { applied: records.length, changed } } };
  }

  /** The entry to compare for a peer's open, or why it is refused. */
  private accept(open: OpenRange): RangeEntry | string {
    if (open.hashFormatVersion !== HASH_FORMAT_VERSION) {
      return `hash format ${open.hashFormatVersion} differs from this node's ${HASH_FORMAT_VERSION}`;
    }
    if (open.range === undefined) throw invalid("open needs a range");
    const range = { start: open.range.start, end: open.range.end };
    const current = this.trees.builtForCurrentRing();
    if (current === undefined) return "this node's trees are being built";
    const entry = current.exact(range);
    if (entry === undefined) return `this node has no tree for range (${range.start}, ${range.end}] (the ring views differ)`;
    if (entry.tree.depth !== open.depth) return `depth ${open.depth} differs from this node's ${entry.tree.depth} for this range`;
    if (!entry.replicas.includes(open.nodeId)) return `${open.nodeId} is not a replica of range (${range.start}, ${range.end}] in this node's ring`;
    this.trees.noteOpened(open.nodeId, range);
    return entry;
  }
}

function requireOpen(stream: StreamState): RangeEntry {
  if (stream.open === undefined) throw new ConnectError("no range is open on this exchange stream (send open first)", Code.FailedPrecondition);
  return stream.open;
}

function invalid(message: string): ConnectError {
  return new ConnectError(message, Code.InvalidArgument);
}

/** Runs a tree read on a peer's indices; out-of-range levels or indices are the peer's error. */
function merkleCall<T>(read: () => T): T {
  try {
    return read();
  } catch (err) {
    if (err instanceof MerkleError) throw invalid(err.message);
    throw err;
  }
}
