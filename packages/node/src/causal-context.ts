// The context a client carries from one call to the next. It is a version vector plus,
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
import {
  compareDots,
  covers,
  decodeContext,
  type Dot,
  emptySet,
  encodeContext,
  InvalidContextError,
  MAX_NODE_ID_BYTES,
  type SiblingSet,
  update,
  type VersionVector,
} from "@dynamo-ts/vclock";

export interface CausalContext {
  readonly clock: VersionVector;
  /** Dots seen individually, none covered by `clock`, sorted. */
  readonly dots: readonly Dot[];
}

const DOTTED_CONTEXT_FORMAT = 0xd1;
/** Dropping a dot only ever keeps a value as a sibling that could have been replaced, so a cap is safe. */
export const MAX_CONTEXT_DOTS = 64;

const utf8 = new TextEncoder();
const utf8Strict = new TextDecoder("utf-8", { fatal: true });

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
  const parts: number[] = [DOTTED_CONTEXT_FORMAT];
  pushVarint(parts, clockBytes.length);
  for (const b of clockBytes) parts.push(b);
  pushVarint(parts, normal.dots.length);
  for (const dot of normal.dots) {
    const id = utf8.encode(dot.node);
    pushVarint(parts, id.length);
    for (const b of id) parts.push(b);
    pushVarint(parts, dot.counter);
  }
  return Uint8Array.from(parts);
}

export function decodeClientContext(bytes: Uint8Array): CausalContext {
  if (bytes.length === 0 || bytes[0] !== DOTTED_CONTEXT_FORMAT) return { clock: decodeContext(bytes), dots: [] };
  const reader = { bytes, pos: 1 };
  const clockLength = readVarint(reader);
  if (clockLength > bytes.length - reader.pos) throw new InvalidContextError("context is truncated");
  const clock = decodeContext(bytes.subarray(reader.pos, reader.pos + clockLength));
  reader.pos += clockLength;
  const count = readVarint(reader);
  if (count === 0 || count > MAX_CONTEXT_DOTS) throw new InvalidContextError(`context has ${count} dots, expected 1..${MAX_CONTEXT_DOTS}`);
  const dots: Dot[] = [];
  for (let i = 0; i < count; i++) {
    const idLength = readVarint(reader);
    if (idLength === 0 || idLength > MAX_NODE_ID_BYTES || idLength > bytes.length - reader.pos) {
      throw new InvalidContextError("context has an invalid node id");
    }
    let node: string;
    try {
      node = utf8Strict.decode(bytes.subarray(reader.pos, reader.pos + idLength));
    } catch {
      throw new InvalidContextError("context has a node id that is not UTF-8");
    }
    reader.pos += idLength;
    const counter = readVarint(reader);
    if (counter === 0) throw new InvalidContextError("context has a zero counter");
    dots.push({ node, counter });
  }
  if (reader.pos !== bytes.length) throw new InvalidContextError("context has trailing bytes");
  return normalize({ clock, dots });
}

/** A new write by `coordinator` that supersedes exactly what `context` saw. */
export function writeWithContext(
  current: SiblingSet | undefined,
  context: CausalContext,
  coordinator: string,
  value: Uint8Array | null,
  timestamp: number,
): SiblingSet {
  let base = current ?? emptySet();
  if (context.dots.length > 0) {
    const seen = (dot: Dot) => context.dots.some((d) => d.node === dot.node && d.counter === dot.counter);
    base = { clock: base.clock, siblings: base.siblings.filter((s) => !seen(s.dot)) };
  }
  return update(base, context.clock, coordinator, value, timestamp);
}

/** What the writer has seen after its write: its context plus the dot it just created. */
export function contextAfterWrite(context: CausalContext, stored: SiblingSet, coordinator: string): CausalContext {
  const counter = stored.clock.get(coordinator);
  if (counter === undefined) throw new Error(`the stored version has no dot of ${coordinator}`);
  return normalize({ clock: context.clock, dots: [...context.dots, { node: coordinator, counter }] });
}

function pushVarint(out: number[], value: number): void {
  while (value >= 0x80) {
    out.push((value % 0x80) | 0x80);
    value = Math.floor(value / 0x80);
  }
  out.push(value);
}

function readVarint(reader: { bytes: Uint8Array; pos: number }): number {
  let value = 0;
  let scale = 1;
  for (let i = 0; i < 8; i++) {
    const byte = reader.bytes[reader.pos++];
    if (byte === undefined) throw new InvalidContextError("context is truncated");
    value += (byte & 0x7f) * scale;
    if (byte < 0x80) {
      if (!Number.isSafeInteger(value)) throw new InvalidContextError("context has a number out of range");
      if (i > 0 && byte === 0) throw new InvalidContextError("context has a non-minimal number");
      return value;
    }
    scale *= 0x80;
  }
  throw new InvalidContextError("context has a number out of range");
}

