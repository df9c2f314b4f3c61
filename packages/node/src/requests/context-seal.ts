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
import { hash, hkdfSync, timingSafeEqual } from "node:crypto";
import { InvalidContextError } from "@dynamo-ts/vclock";

export const SEALED_CONTEXT_FORMAT = 0xe1;
const TAG_BYTES = 16;
/** SHA-256's block size: HMAC pads its key to this. */
const BLOCK_BYTES = 64;
const DIGEST_BYTES = 32;

export class ContextSealer {
  /**
   * HMAC-SHA256 (RFC 2104) spelled out as two one-shot hashes over the padded key: H((K ^ opad)
   * || H((K ^ ipad) || m)). The same tags as createHmac(), at half the CPU (no Hmac object and
   * key import per call; a seal is made on every get and put).
   */
  private readonly innerPad: Buffer;
  /** K ^ opad, then room for the inner digest: filled in and hashed synchronously per tag. */
  private readonly outerInput: Buffer;

  constructor(clusterSecret: string) {
    // A key of its own, so a context tag can never be replayed as anything else the secret signs.
    const key = Buffer.from(hkdfSync("sha256", clusterSecret, "dynamo-ts", "client context v1", DIGEST_BYTES));
    this.innerPad = Buffer.alloc(BLOCK_BYTES, 0x36);
    this.outerInput = Buffer.alloc(BLOCK_BYTES + DIGEST_BYTES, 0x5c);
    for (let i = 0; i < key.byteLength; i++) {
      this.innerPad[i]! ^= key[i]!;
      this.outerInput[i]! ^= key[i]!;
    }
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
   * pool and string digests: a Buffer digest and TextEncoder output each cost a backing store
   * outside the V8 heap, on every put.
   */
  private tag(key: string, payload: Uint8Array): string {
    const keyLength = Buffer.byteLength(key, "utf8");
    const input = Buffer.allocUnsafe(BLOCK_BYTES + 4 + keyLength + payload.byteLength);
    this.innerPad.copy(input, 0);
    input.writeUInt32BE(keyLength, BLOCK_BYTES);
    input.write(key, BLOCK_BYTES + 4, "utf8");
    input.set(payload, BLOCK_BYTES + 4 + keyLength);
    this.outerInput.write(hash("sha256", input, "binary"), BLOCK_BYTES, DIGEST_BYTES, "latin1");
    return hash("sha256", this.outerInput, "binary");
  }
}
