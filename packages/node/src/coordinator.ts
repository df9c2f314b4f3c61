// The coordinator: turns one client Get / Put / Delete into replica calls on the key's
// preference list and answers once the quorum is reached. Replica I/O is behind
// `ReplicaEndpoint`, so this file holds the request logic and nothing about sockets.
import { Code, ConnectError } from "@connectrpc/connect";
import type { Ring } from "@dynamo-ts/ring";
import {
  emptySet,
  encodeSiblingSet,
  isDeleted,
  liveValues,
  resolveLastWriteWins,
  sync,
  type SiblingSet,
} from "@dynamo-ts/vclock";
import { type CausalContext, contextAfterWrite, decodeClientContext, encodeClientContext, writeWithContext } from "./causal-context.js";
import type { ConflictResolution } from "./config.js";
import type { Metrics } from "./metrics.js";
import { QuorumTracker } from "./quorum.js";

/** One replica of a key as the coordinator sees it: the local store or a peer over RPC. */
export interface ReplicaEndpoint {
  /** Merge `set` into the replica (or, with hintFor, keep it as a hint for that node). */
  write(key: string, set: SiblingSet, encoded: Uint8Array, hintFor: string | undefined, signal: AbortSignal): Promise<void>;
  read(key: string, signal: AbortSignal): Promise<SiblingSet | undefined>;
}

export interface PutArgs {
  readonly key: string;
  /** null deletes (writes a tombstone). */
  readonly value: Uint8Array | null;
  readonly context: Uint8Array;
  readonly w: number | undefined;
  readonly deadline: Deadline;
}

export interface GetResult {
  readonly values: Uint8Array[];
  readonly context: Uint8Array;
}

export interface CoordinatorOptions {
  readonly nodeId: string;
  readonly n: number;
  readonly r: number;
  readonly w: number;
  readonly maxKeyBytes: number;
  readonly maxValueBytes: number;
  readonly resolution: ConflictResolution;
}

export interface CoordinatorDeps {
  readonly options: CoordinatorOptions;
  /** The current ring (membership may change between requests). */
  ring(): Ring;
  endpoint(node: string): ReplicaEndpoint;
  /** Atomic read-modify-write on the local store (the coordinator issues new versions here). */
  updateLocal(key: string, fn: (current: SiblingSet | undefined) => SiblingSet): Promise<SiblingSet>;
  /** Hands a write to a node of the key's preference list when this node is not in it. */
  forwardWrite(node: string, args: PutArgs): Promise<Uint8Array>;
  now(): number;
  readonly metrics: Metrics;
}

/** An absolute deadline with the signal that fires when it passes (or the client goes away). */
export class Deadline {
  readonly signal: AbortSignal;
  readonly at: number;

  constructor(timeoutMs: number, clientSignal?: AbortSignal) {
    this.at = Date.now() + timeoutMs;
    const timer = AbortSignal.timeout(timeoutMs);
    this.signal = clientSignal ? AbortSignal.any([timer, clientSignal]) : timer;
  }

  remainingMs(): number {
    return Math.max(0, this.at - Date.now());
  }

  get expired(): boolean {
    return this.signal.aborted;
  }
}

export class Coordinator {
  constructor(private readonly deps: CoordinatorDeps) {}

  private get options(): CoordinatorOptions {
    return this.deps.options;
  }

  validateKey(key: string): void {
    if (key.length === 0) throw new ConnectError("key must not be empty", Code.InvalidArgument);
    const bytes = Buffer.byteLength(key, "utf8");
    if (bytes > this.options.maxKeyBytes) {
      throw new ConnectError(`key is ${bytes} bytes, the limit is ${this.options.maxKeyBytes}`, Code.InvalidArgument);
    }
    if (!key.isWellFormed()) throw new ConnectError("key must be valid UTF-8 (it contains a lone surrogate)", Code.InvalidArgument);
  }

  private quorumSize(name: "r" | "w", requested: number | undefined): number {
    if (requested === undefined) return this.options[name];
    if (!Number.isInteger(requested) || requested < 1 || requested > this.options.n) {
      throw new ConnectError(`${name} must be between 1 and N=${this.options.n}, got ${requested}`, Code.InvalidArgument);
    }
    return requested;
  }

  private decodeContext(bytes: Uint8Array): CausalContext {
    try {
      return decodeClientContext(bytes);
    } catch (err) {
      throw new ConnectError(`context does not decode: ${(err as Error).message}`, Code.InvalidArgument);
    }
  }

  /** Reads R replicas and merges what they hold. */
  private async readQuorum(key: string, r: number, deadline: Deadline): Promise<SiblingSet> {
    const replicas = this.deps.ring().preferenceList(key, this.options.n);
    const tracker = new QuorumTracker<SiblingSet | undefined>(r, replicas.length);
    if (tracker.state === "failed") throw unavailable("answered", tracker);
    await gather(tracker, replicas, deadline, (node) => this.deps.endpoint(node).read(key, deadline.signal));
    if (tracker.state !== "met") throw quorumError("answered", tracker, deadline);

    let merged = emptySet();
    for (const set of tracker.successes.values()) if (set) merged = sync(merged, set);
    return this.options.resolution === "lww" ? resolveLastWriteWins(merged) : merged;
  }

  async get(key: string, requestedR: number | undefined, deadline: Deadline): Promise<GetResult> {
    this.validateKey(key);
    const r = this.quorumSize("r", requestedR);
    const merged = await this.readQuorum(key, r, deadline);
    this.deps.metrics.count("get");
    if (isDeleted(merged)) {
      throw new ConnectError(`key not found: ${JSON.stringify(key)}`, Code.NotFound);
    }
    return { values: liveValues(merged), context: encodeClientContext({ clock: merged.clock, dots: [] }) };
  }

  /** Put (value) or Delete (value null). Returns the context of the new version. */
  async write(args: PutArgs, forwarded: boolean): Promise<Uint8Array> {
    const { key, value } = args;
    this.validateKey(key);
    if (value && value.byteLength > this.options.maxValueBytes) {
      throw new ConnectError(`value is ${value.byteLength} bytes, the limit is ${this.options.maxValueBytes}`, Code.InvalidArgument);
    }
    const w = this.quorumSize("w", args.w);
    let context = this.decodeContext(args.context);
    const replicas = this.deps.ring().preferenceList(key, this.options.n);
    const self = this.options.nodeId;
    if (!replicas.includes(self) && !forwarded) return this.forward(replicas, args);
    if (value === null && args.context.byteLength === 0) {
      // A delete without a context means "delete what is there": read it at the default
      // quorum and delete exactly that. Writes the read did not see survive, as they must.
      context = { clock: (await this.readQuorum(key, this.options.r, args.deadline)).clock, dots: [] };
    }

    // New versions are issued only where the key's state is stored: a dot must never be
    // issued twice, and only the stored state knows which dots this node already used.
    const now = this.deps.now();
    const lww = this.options.resolution === "lww";
    const stored = await this.deps.updateLocal(key, (current) => {
      const next = writeWithContext(current, context, self, value, now);
      return lww ? resolveLastWriteWins(next) : next;
    });
    const encoded = encodeSiblingSet(stored);
    const others = replicas.filter((node) => node !== self);
    const tracker = new QuorumTracker<true>(w, others.length + 1);
    tracker.success(self, true);
    if (tracker.state !== "met") {
      await gather(tracker, others, args.deadline, (node) =>
        this.deps.endpoint(node).write(key, stored, encoded, undefined, args.deadline.signal).then(() => true as const),
      );
    } else {
      // Quorum already met locally (W=1): replicate in the background, nobody waits on it.
      for (const node of others) {
        this.deps.endpoint(node).write(key, stored, encoded, undefined, args.deadline.signal).catch(() => {});
      }
    }
    if (tracker.state !== "met") throw quorumError(value === null ? "acknowledged the delete" : "acknowledged the write", tracker, args.deadline);
    this.deps.metrics.count(value === null ? "delete" : "put");
    return encodeClientContext(contextAfterWrite(context, stored, self));
  }

  private async forward(replicas: readonly string[], args: PutArgs): Promise<Uint8Array> {
    const reasons: string[] = [];
    for (const node of replicas) {
      if (args.deadline.expired) break;
      try {
        this.deps.metrics.count("forwarded");
        return await this.deps.forwardWrite(node, args);
      } catch (err) {
        const ce = ConnectError.from(err);
        // Only a coordinator that could not be reached is worth retrying elsewhere; a
        // quorum or validation failure reported by a reachable coordinator is the answer.
        if (ce.code !== Code.Unavailable || ce.rawMessage.includes("replicas")) throw ce;
        reasons.push(`${node}: ${ce.rawMessage}`);
      }
    }
    if (args.deadline.expired) throw new ConnectError("deadline passed before a replica coordinated the write", Code.DeadlineExceeded);
    throw new ConnectError(`no replica of the key could coordinate the write (${reasons.join("; ")})`, Code.Unavailable);
  }
}

/**
 * Runs `op` on every node in parallel and resolves as soon as the tracker's quorum is met,
 * can no longer be met, or the deadline passes. Calls still running carry on (a late
 * replica write still lands), but nobody waits for them.
 */
export function gather<T>(
  tracker: QuorumTracker<T>,
  nodes: readonly string[],
  deadline: Deadline,
  op: (node: string) => Promise<T>,
): Promise<void> {
  return new Promise<void>((resolve) => {
    if (tracker.state !== "pending" || nodes.length === 0) return resolve();
    const onAbort = () => resolve();
    deadline.signal.addEventListener("abort", onAbort, { once: true });
    const settle = () => {
      if (tracker.state !== "pending") {
        deadline.signal.removeEventListener("abort", onAbort);
        resolve();
      }
    };
    for (const node of nodes) {
      let call: Promise<T>;
      try {
        call = op(node);
      } catch (err) {
        call = Promise.reject(err);
      }
      call.then(
        (value) => {
          tracker.success(node, value);
          settle();
        },
        (err: unknown) => {
          tracker.failure(node, describeError(err));
          settle();
        },
      );
    }
  });
}

export function describeError(err: unknown): string {
  if (err instanceof ConnectError) {
    return err.code === Code.Unavailable ? `unavailable: ${err.rawMessage}` : `${Code[err.code]}: ${err.rawMessage}`;
  }
  return err instanceof Error ? err.message : String(err);
}

function unavailable(verb: string, tracker: QuorumTracker<unknown>): ConnectError {
  return new ConnectError(`quorum not reached: ${tracker.describe(verb)}`, Code.Unavailable);
}

function quorumError(verb: string, tracker: QuorumTracker<unknown>, deadline: Deadline): ConnectError {
  if (tracker.state === "pending" && deadline.expired) {
    return new ConnectError(`deadline passed: ${tracker.describe(verb)}`, Code.DeadlineExceeded);
  }
  return unavailable(verb, tracker);
}
