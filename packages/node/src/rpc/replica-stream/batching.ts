// Batching for the replica stream (both directions): items issued in one turn of the event loop
// travel together, in messages of bounded size.
import type { MessageInitShape } from "@bufbuild/protobuf";
import type { ReplicaOpSchema, ReplicaResultSchema } from "@dynamo-ts/proto";

export type OpInit = MessageInitShape<typeof ReplicaOpSchema>;
export type ResultInit = MessageInitShape<typeof ReplicaResultSchema>;

/**
 * The most payload one stream message carries. Records can be large (values up to
 * --max-value-bytes, several siblings), and the receiving node refuses messages over its read
 * limit, which would fail the whole stream: batches stay well under it, and an op larger than
 * this travels alone.
 */
const MAX_BATCH_BYTES = 256 * 1024;

/**
 * Collects items added in one turn of the event loop and hands them on together, in messages
 * of at most MAX_BATCH_BYTES (by `sizeOf`).
 */
export class Batcher<T> {
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
export function opSize(op: OpInit): number {
  const body = op.op;
  if (body?.case === "write") return FRAMING_BYTES + (body.value.key?.length ?? 0) + (body.value.record?.byteLength ?? 0) + (body.value.hintFor?.length ?? 0);
  if (body?.case === "read") return FRAMING_BYTES + (body.value.key?.length ?? 0);
  if (body?.case === "coordinate") {
    const v = body.value;
    return FRAMING_BYTES + (v.key?.length ?? 0) + (v.value?.byteLength ?? 0) + (v.contentType?.length ?? 0) + (v.context?.byteLength ?? 0);
  }
  return FRAMING_BYTES;
}
export function resultSize(result: ResultInit): number {
  const body = result.result;
  if (body?.case === "read") return FRAMING_BYTES + (body.value.record?.byteLength ?? 0);
  if (body?.case === "error") return FRAMING_BYTES + (body.value.message?.length ?? 0);
  if (body?.case === "coordinate") return FRAMING_BYTES + (body.value.context?.byteLength ?? 0);
  return FRAMING_BYTES;
}
