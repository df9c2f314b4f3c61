// Merge functions for HintStoreOptions.merge in tests.

/**
 * A commutative, associative and idempotent merge, like the causal merge of two full sibling sets: the
 * sorted set of the bytes of both records.
 */
export function unionOfBytes(older: Uint8Array, newer: Uint8Array): Uint8Array {
  return Uint8Array.from(new Set([...older, ...newer])).sort();
}

/** Not commutative on purpose: the result shows which record was passed as the older one. */
export function concatenate(older: Uint8Array, newer: Uint8Array): Uint8Array {
  const merged = new Uint8Array(older.length + newer.length);
  merged.set(older, 0);
  merged.set(newer, older.length);
  return merged;
}

export const bytes = (text: string): Uint8Array => new TextEncoder().encode(text);
export const text = (record: Uint8Array): string => new TextDecoder().decode(record);

/** A 4-byte big-endian token: one enqueue's contribution to a record merged with unionOfTokens. */
export function token(n: number): Uint8Array {
  const bytes = new Uint8Array(4);
  new DataView(bytes.buffer).setUint32(0, n);
  return bytes;
}

export function tokensOf(record: Uint8Array): number[] {
  const view = new DataView(record.buffer, record.byteOffset, record.byteLength);
  return Array.from({ length: Math.floor(record.length / 4) }, (_, i) => view.getUint32(i * 4));
}

/** unionOfBytes for 4-byte tokens: the sorted set of the tokens of both records. */
export function unionOfTokens(older: Uint8Array, newer: Uint8Array): Uint8Array {
  const tokens = [...new Set([...tokensOf(older), ...tokensOf(newer)])].sort((a, b) => a - b);
  const merged = new Uint8Array(tokens.length * 4);
  tokens.forEach((n, i) => merged.set(token(n), i * 4));
  return merged;
}
