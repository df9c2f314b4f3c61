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
