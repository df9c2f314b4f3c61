// The exchange protocol's limits: tree depths, message and batch sizes, how long the initiator
// waits for an answer, and how much it remembers of the keys it withheld.

/** Bounds of a range's tree depth (treeDepthFor): 2^4 to 2^14 leaves. */
export const MIN_TREE_DEPTH = 4;
export const MAX_TREE_DEPTH = 14;

// Message sizes: every answer stays well below the default HTTP/2 and Connect limits.
export const MAX_INDICES_PER_QUERY = 8192;
export const MAX_LEAVES_PER_QUERY = 1024;
export const MAX_KEYS_PER_BATCH = 256;
export const MAX_CHUNK_BYTES = 1024 * 1024;
export const MAX_ENTRIES_PER_CHUNK = 8192;
/** Room for protobuf and Connect envelope framing around the records of a push. */
export const MESSAGE_FRAMING_BYTES = 4096;
/** How long the initiator waits for any one answer before giving the exchange up. */
export const STEP_TIMEOUT_MS = 30_000;
/** How long a withheld key is not looked at again (with the same digest) for the same peer. */
export const WITHHELD_RECHECK_MS = 10 * 60_000;
export const MAX_WITHHELD_REMEMBERED = 100_000;
