// The context a client carries from one call to the next (the node seals it before handing it
// out: packages/node/src/context-seal.ts). It is a version vector plus,
// optionally, a few individual dots the vector cannot express.
//
// Why the dots: a Put must hand back "what the client saw, plus its own write". When the
// coordinator's counter for the key had already moved past the client's context (another
// client wrote through the same coordinator concurrently), folding the new dot into the
// vector would also cover that other write, and writing back with such a context would drop
// a value the client never saw: a lost update. Keeping the new dot separate avoids it.
//
// Wire format: a context without dots is exactly @dynamo-ts/vclock's context encoding (what
// Get returns); one with dots is 0xD1, varint length + vclock context bytes, varint dot
// count, then per dot: varint id length, UTF-8 id, varint counter.
import type { Dot, VersionVector } from "./clock.js";
import { covers } from "./clock.js";
import { allocateOutput, decodeContext, decodeNodeId, encodeContext, MAX_NODE_ID_BYTES, nodeIdBytes, Reader, varintSize, writeVarint } from "./encoding.js";
import { InvalidContextError } from "./errors.js";
import { compareDots, emptySet, type SiblingSet, update } from "./siblings.js";

export interface CausalContext {
  readonly clock: VersionVector;
  /** Dots seen individually, none covered by `clock`, sorted. */
  readonly dots: readonly Dot[];
}

const DOTTED_CONTEXT_FORMAT = 0xd1;
/** Dropping a dot only ever keeps a value as a sibling that could have been replaced, so a cap is safe. */
export const MAX_CONTEXT_DOTS = 64;

/** Removes dots the clock covers, folds dots that extend the clock by one, caps the rest. */
export function normalize(context: CausalContext): CausalContext {
  if (context.dots.length === 0) return context;
  const clock = new Map(context.clock);
  let dots = [...context.dots].sort(compareDots).filter((d) => !covers(clock, d));
  let folded = true;
  while (folded) {
    folded = false;
    dots = dots.filter((d) => {
      if (d.counter === (clock.get(d.node) ?? 0) + 1) {
        clock.set(d.node, d.counter);
        folded = true;
        return false;
      }
      return !covers(clock, d);
    });
  }
  if (dots.length > MAX_CONTEXT_DOTS) dots = dots.slice(dots.length - MAX_CONTEXT_DOTS);
  return { clock, dots: dots.filter((d, i) => i === 0 || compareDots(dots[i - 1]!, d) !== 0) };
}

export function encodeClientContext(context: CausalContext): Uint8Array {
  const normal = normalize(context);
  const clockBytes = encodeContext(normal.clock);
  if (normal.dots.length === 0) return clockBytes;
  const ids = normal.dots.map((dot) => nodeIdBytes(dot.node));
  let size = 1 + varintSize(clockBytes.length) + clockBytes.length + varintSize(normal.dots.length);
  normal.dots.forEach((dot, i) => (size += varintSize(ids[i]!.length) + ids[i]!.length + varintSize(dot.counter)));
  const out = allocateOutput(size);
  out[0] = DOTTED_CONTEXT_FORMAT;
  let pos = writeVarint(out, 1, clockBytes.length);
  out.set(clockBytes, pos);
  pos = writeVarint(out, pos + clockBytes.length, normal.dots.length);
  normal.dots.forEach((dot, i) => {
    pos = writeVarint(out, pos, ids[i]!.length);
    out.set(ids[i]!, pos);
    pos = writeVarint(out, pos + ids[i]!.length, dot.counter);
  });
  return out;
}

export function decodeClientContext(bytes: Uint8Array): CausalContext {
  if (bytes.length === 0 || bytes[0] !== DOTTED_CONTEXT_FORMAT) return { clock: decodeContext(bytes), dots: [] };
  const reader = new Reader(bytes, InvalidContextError);
  reader.pos = 1;
  const clock = decodeContext(reader.take(reader.varint("clock length"), "clock"));
  const count = reader.varint("dot count");
  if (count === 0 || count > MAX_CONTEXT_DOTS) throw reader.error(`context has ${count} dots, expected 1..${MAX_CONTEXT_DOTS}`);
  const dots: Dot[] = [];
  for (let i = 0; i < count; i++) {
    const idLength = reader.positive("node id length");
    if (idLength > MAX_NODE_ID_BYTES) throw reader.error(`node id of ${idLength} bytes is longer than ${MAX_NODE_ID_BYTES}`);
    const node = decodeNodeId(reader.take(idLength, "node id"), reader);
    dots.push({ node, counter: reader.positive("dot counter") });
  }
  reader.end();
  return normalize({ clock, dots });
}

/** A new write by `coordinator` that supersedes exactly what `context` saw (`contentType`: see update). */
export function writeWithContext(
  current: SiblingSet | undefined,
  context: CausalContext,
  coordinator: string,
  value: Uint8Array | null,
  timestamp: number,
  contentType?: string,
): SiblingSet {
  let base = current ?? emptySet();
  if (context.dots.length > 0) {
    const seen = (dot: Dot) => context.dots.some((d) => d.node === dot.node && d.counter === dot.counter);
    base = { clock: base.clock, siblings: base.siblings.filter((s) => !seen(s.dot)) };
  }
  return update(base, context.clock, coordinator, value, timestamp, contentType);
}

/** What the writer has seen after its write: its context plus the dot it just created. */
export function contextAfterWrite(context: CausalContext, stored: SiblingSet, coordinator: string): CausalContext {
  const counter = stored.clock.get(coordinator);
  if (counter === undefined) throw new Error(`the stored version has no dot of ${coordinator}`);
  return normalize({ clock: context.clock, dots: [...context.dots, { node: coordinator, counter }] });
}
