// Client contexts are sealed: the bytes a client gets from Get or Put carry a MAC over the key
// and the causal context, made with a key derived from the cluster secret, and a context is
// accepted back only for the same key and only if the MAC matches.
//
// Why: a context is causal metadata the cluster trusts. A client that can write one freely can
// claim counters the key's replicas never issued (a counter of 2^53 - 1 leaves no room for
// the next dot: every later write of the key fails, on every replica, for good), or thousands
// of node ids that then live in the key's clock forever. With sealing, every counter and node
// id in a context was issued by a node of this cluster for this key, so a key's clock only
// ever names nodes that coordinated it, and its counters only grow by real writes.
//
// Wire format: 0xE1, the unsealed client context (@dynamo-ts/vclock client-context.ts), then a 16-byte tag.
// The empty context (a blind write) stays zero bytes: it claims nothing.
import { createHmac, createSecretKey, hkdfSync, type KeyObject, timingSafeEqual } from "node:crypto";
import { InvalidContextError } from "@dynamo-ts/vclock";

export const SEALED_CONTEXT_FORMAT = 0xe1;
const TAG_BYTES = 16;

export class ContextSealer {
  /** A KeyObject made once: createHmac with raw key bytes builds one on every call (a profile saw it at ~2% of a put). */
  private readonly macKey: KeyObject;

  constructor(clusterSecret: string) {
    // A key of its own, so a context tag can never be replayed as anything else the secret signs.
    this.macKey = createSecretKey(Buffer.from(hkdfSync("sha256", clusterSecret, "dynamo-ts", "client context v1", 32)));
  }

  /** Seals `payload` (an encoded client context) for `key`. Empty stays empty. */
  seal(key: string, payload: Uint8Array): Uint8Array {
    if (payload.byteLength === 0) return payload;
    // From node's Buffer pool: a `new Uint8Array` of this size gets a backing store of its own.
    const out = Buffer.allocUnsafe(1 + payload.byteLength + TAG_BYTES);
    out[0] = SEALED_CONTEXT_FORMAT;
    out.set(payload, 1);
    out.write(this.tag(key, payload), 1 + payload.byteLength, TAG_BYTES, "latin1");
    // A plain Uint8Array over the same bytes: callers compare and hand on Uint8Arrays.
    return new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
  }

  /** The payload of a context this cluster sealed for `key`; throws InvalidContextError otherwise. */
  open(key: string, sealed: Uint8Array): Uint8Array {
    if (sealed.byteLength === 0) return sealed;
    if (sealed[0] !== SEALED_CONTEXT_FORMAT) {
      throw new InvalidContextError(
        "it was not issued by this cluster (unsealed or from an older version): pass the context a Get or Put of this key returned",
      );
    }
    if (sealed.byteLength < 1 + TAG_BYTES + 1) throw new InvalidContextError("it is truncated");
    const payload = sealed.subarray(1, sealed.byteLength - TAG_BYTES);
    const given = sealed.subarray(sealed.byteLength - TAG_BYTES);
    if (!timingSafeEqual(Buffer.from(this.tag(key, payload), "latin1").subarray(0, TAG_BYTES), given)) {
      throw new InvalidContextError(
        "it was not issued by this cluster for this key (its seal does not match): pass the context a Get or Put of this key returned",
      );
    }
    return payload;
  }

  /**
   * HMAC-SHA256 over the key's UTF-8 length (u32, big-endian), the key and the payload, as a
   * latin1 string (its first TAG_BYTES characters are the tag). One input buffer from node's
   * pool and a string digest: a Buffer digest and TextEncoder output each cost a backing store
   * outside the V8 heap, on every put.
   */
  private tag(key: string, payload: Uint8Array): string {
    const keyLength = Buffer.byteLength(key, "utf8");
    const input = Buffer.allocUnsafe(4 + keyLength + payload.byteLength);
    input.writeUInt32BE(keyLength, 0);
    input.write(key, 4, "utf8");
    input.set(payload, 4 + keyLength);
    return createHmac("sha256", this.macKey).update(input).digest("binary");
  }
}
