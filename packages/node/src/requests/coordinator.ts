// The coordinator: turns one client Get / Put / Delete into replica calls on the key's
// preference list and answers once the quorum is reached. Replica I/O is behind
// `Replicas` (replicas.ts), so this file holds the request
// logic (sloppy quorum, fallbacks, read repair) and nothing about sockets.
import { Code, ConnectError } from "@connectrpc/connect";
import type { Ring, RingTransition } from "@dynamo-ts/ring";
import {
  type CausalContext,
  contextAfterWrite,
  decodeClientContext,
  emptySet,
  encodeClientContext,
  equalSets,
  InvalidVersionError,
  isDeleted,
  isValidContentType,
  MAX_CONTENT_TYPE_BYTES,
  resolveLastWriteWins,
  type SiblingSet,
  sync,
  writeWithContext,
} from "@dynamo-ts/vclock";

import type { ConflictResolution } from "../config.js";
import type { ContextSealer } from "./context-seal.js";
import type { Logger } from "../observability/log.js";
import type { Metrics } from "../observability/metrics.js";
import type { Deadline } from "./deadline.js";
import { QuorumTracker } from "./quorum.js";
import { type Replicas, type VersionedRecord, versionedRecord } from "./replicas.js";
import { checkRecordLimits, recordSizeBound } from "./record-limits.js";
import { checkImportedRecord, collidingVersion, describeDot } from "./import-checks.js";

/**
 * A write that no coordinator took on: the node it was handed to declined it (its store can't
 * write) or could not be reached. Only such a write is handed to another replica; any other
 * failure of a forwarded write is its outcome (retrying it elsewhere would issue a second
 * version of the same write). A ConnectError (Unavailable) marked as such: ConnectError's
 * instanceof checks do not admit subclasses.
 */
const NOT_COORDINATED = new WeakSet<ConnectError>();

export function notCoordinatedError(message: string): ConnectError {
  const err = new ConnectError(message, Code.Unavailable);
  NOT_COORDINATED.add(err);
  return err;
}

export function isNotCoordinated(err: unknown): boolean {
  return err instanceof ConnectError && NOT_COORDINATED.has(err);
}

export interface PutArgs {
  readonly key: string;
  /** null deletes (writes a tombstone). */
  readonly value: Uint8Array | null;
  /** The media type stored with the value (optional metadata; never with a delete). */
  readonly contentType?: string | undefined;
  readonly context: Uint8Array;
  readonly w: number | undefined;
  readonly deadline: Deadline;
}

export interface LiveSibling {
  readonly value: Uint8Array;
  readonly contentType: string | undefined;
}

export interface GetResult {
  /** The live values, in canonical order. */
  readonly siblings: LiveSibling[];
  readonly context: Uint8Array;
}

export interface CoordinatorOptions {
  readonly nodeId: string;
  readonly n: number;
  readonly r: number;
  readonly w: number;
  readonly maxKeyBytes: number;
  readonly maxValueBytes: number;
  /** A client write may not grow a key past these (see record-limits.ts). */
  readonly maxSiblings: number;
  readonly maxRecordBytes: number;
  /** The largest record one node sends another; read repair does not send larger ones. */
  readonly maxShippedRecordBytes: number;
  readonly resolution: ConflictResolution;
  /** Probability (0..1) that a Get repairs the replicas it found stale. */
  readonly readRepair: number;
}

export interface CoordinatorDeps {
  readonly options: CoordinatorOptions;
  /** The current (settled) ring: preference lists, W and R (membership may change between requests). */
  ring(): Ring;
  /**
   * The settled ring and the one once the joins, decommissions and removals in progress complete:
   * a key's extra owners (RingTransition.extraOwners) get every write of the key as extra
   * replicas, not counted towards W. Undefined: no extra owners.
   */
  transition?(): RingTransition;
  /** The replicas' endpoints and whether each is worth sending to. */
  readonly replicas: Replicas;
  /** Atomic read-modify-write on the local store (the coordinator issues new versions here). */
  updateLocal(key: string, fn: (current: SiblingSet | undefined) => SiblingSet): Promise<VersionedRecord>;
  /** Whether the local data store takes writes; a node whose disk fails hands writes to another replica. */
  localWritable(): boolean;
  /**
   * Hands a write to a node of the key's preference list when this node is not in it. Rejects
   * with a notCoordinatedError when that node did not coordinate it (declined, or unreachable).
   */
  forwardWrite(node: string, args: PutArgs): Promise<Uint8Array>;
  now(): number;
  random(): number;
  readonly metrics: Metrics;
  /** Seals the contexts handed to clients and checks the ones they send back. */
  readonly sealer: ContextSealer;
  readonly log: Logger;
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

  private decodeContext(key: string, bytes: Uint8Array): CausalContext {
    try {
      return decodeClientContext(this.deps.sealer.open(key, bytes));
    } catch (err) {
      throw new ConnectError(`context is not valid: ${(err as Error).message}`, Code.InvalidArgument);
    }
  }

  private encodeContext(key: string, context: CausalContext): Uint8Array {
    return this.deps.sealer.seal(key, encodeClientContext(context));
  }

  /** Reads the preference list, merges what R replicas hold, and repairs stale ones in the background. */
  private async readQuorum(key: string, r: number, deadline: Deadline): Promise<SiblingSet> {
    const replicas = this.deps.ring().preferenceList(key, this.options.n);
    const tracker = new QuorumTracker<SiblingSet | undefined>(r, replicas.length);
    if (tracker.state === "failed") throw unavailable("answered", tracker);
    const wait = startQuorum(
      tracker,
      replicas.map((node) => [node, this.deps.replicas.endpoint(node).read(key, deadline.replicaSignal)] as const),
      deadline,
    );
    await wait.decided;
    if (tracker.state !== "met") throw quorumError("answered", tracker, deadline);

    let merged = emptySet();
    for (const set of tracker.successes.values()) if (set) merged = sync(merged, set);
    if (this.options.resolution === "lww") merged = resolveLastWriteWins(merged);
    if (this.options.readRepair > 0 && this.deps.random() < this.options.readRepair) {
      const quorumMerged = merged;
      wait.afterAll(() => this.repair(key, replicas, tracker, quorumMerged, deadline));
    }
    return merged;
  }

  /**
   * Read repair: once every replica has answered (or the deadline passed), the ones that hold
   * less than the merged state get it. Replies that came after the quorum count too. Runs
   * synchronously from the last reply's handler: only a replica found stale costs a write (and
   * the merged state's encoding).
   */
  private repair(key: string, replicas: readonly string[], tracker: QuorumTracker<SiblingSet | undefined>, quorumMerged: SiblingSet, deadline: Deadline): void {
    try {
      let merged = quorumMerged;
      for (const set of tracker.successes.values()) if (set) merged = sync(merged, set);
      if (this.options.resolution === "lww") merged = resolveLastWriteWins(merged);
      if (merged.siblings.length === 0) return;
      // Replicas that answered with less than the merge; one that failed is left to hints and anti-entropy.
      const stale = replicas.filter((node) => {
        if (!tracker.successes.has(node)) return false;
        const set = tracker.successes.get(node);
        return !(set && equalSets(set, merged));
      });
      if (stale.length === 0) return;
      const record = versionedRecord(merged);
      if (record.encoded.byteLength > this.options.maxShippedRecordBytes) {
        // A merge of more than two states over the record limit: no replica would accept it.
        this.deps.metrics.count("read_repairs_too_large");
        return;
      }
      for (const node of stale) {
        deadline.hold(
          this.deps.replicas
            .endpoint(node)
            .write(key, record, undefined, deadline.replicaSignal)
            .then(
              () => this.deps.metrics.count("read_repairs"),
              () => this.deps.metrics.count("read_repairs_failed"),
            ),
        );
      }
    } catch (err) {
      this.deps.log.error("read repair failed", { key, error: String(err) });
    }
  }

  /** Get: the key's live values and context; rejects with NotFound when it has none. */
  async get(key: string, requestedR: number | undefined, deadline: Deadline): Promise<GetResult> {
    const result = await this.find(key, requestedR, deadline);
    if (result === undefined) throw notFoundError(key);
    return result;
  }

  /**
   * Get, with a key that has no live value (never written, or deleted) answered as undefined
   * instead of a NotFound error: what the KV service runs (kv-operations.ts), where missing keys
   * are an ordinary answer.
   */
  async find(key: string, requestedR: number | undefined, deadline: Deadline): Promise<GetResult | undefined> {
    try {
      return await this.read(key, requestedR, deadline);
    } finally {
      deadline.done();
    }
  }

  private async read(key: string, requestedR: number | undefined, deadline: Deadline): Promise<GetResult | undefined> {
    this.validateKey(key);
    const r = this.quorumSize("r", requestedR);
    const merged = await this.readQuorum(key, r, deadline);
    this.deps.metrics.count("gets");
    if (isDeleted(merged)) return undefined;
    const siblings = merged.siblings.flatMap((s) => (s.value === null ? [] : [{ value: s.value, contentType: s.contentType }]));
    this.deps.metrics.siblings.observe(siblings.length);
    return { siblings, context: this.contextOf(key, merged) };
  }

  /** The sealed context a Get of `key` returns when its replicas hold `set` (what Export hands out too). */
  contextOf(key: string, set: SiblingSet): Uint8Array {
    return this.encodeContext(key, { clock: set.clock, dots: [] });
  }

  /** Put (value) or Delete (value null). Returns the context of the new version. */
  async write(args: PutArgs, forwarded: boolean): Promise<Uint8Array> {
    try {
      return await this.writeNow(args, forwarded);
    } finally {
      args.deadline.done();
    }
  }

  private async writeNow(args: PutArgs, forwarded: boolean): Promise<Uint8Array> {
    const { key, value } = args;
    this.validateKey(key);
    if (value && value.byteLength > this.options.maxValueBytes) {
      throw new ConnectError(`value is ${value.byteLength} bytes, the limit is ${this.options.maxValueBytes}`, Code.InvalidArgument);
    }
    if (args.contentType !== undefined && (value === null || !isValidContentType(args.contentType))) {
      throw new ConnectError(
        value === null
          ? "a delete has no content type"
          : `content type must be 1..${MAX_CONTENT_TYPE_BYTES} printable ASCII characters, got ${JSON.stringify(args.contentType.slice(0, 300))}`,
        Code.InvalidArgument,
      );
    }
    const w = this.quorumSize("w", args.w);
    let context = this.decodeContext(key, args.context);
    const ring = this.deps.ring();
    const replicas = ring.preferenceList(key, this.options.n);
    const self = this.options.nodeId;
    if (!forwarded) {
      // Only a node that holds the key and can write it issues its versions (see below).
      if (!replicas.includes(self)) return this.forward(replicas, args);
      if (!this.deps.localWritable()) {
        this.deps.metrics.count("writes_forwarded_disk_failing");
        return this.forward(
          replicas.filter((node) => node !== self),
          args,
        );
      }
    } else if (!this.deps.localWritable()) {
      throw notCoordinatedError(`${self} cannot write to its data store now; another replica must coordinate`);
    }
    if (value === null && args.context.byteLength === 0) {
      // A delete without a context means "delete what is there": read it at the default
      // quorum and delete exactly that. Writes the read did not see survive, as they must.
      context = { clock: (await this.readQuorum(key, this.options.r, args.deadline)).clock, dots: [] };
    }

    // New versions are issued only where the key's state is stored: a dot must never be
    // issued twice, and only the stored state knows which dots this node already used.
    // The record as the store encoded it: replicas get those bytes, not a second encoding.
    const record = await this.issueVersion(key, context, value, args.contentType);
    const stored = record.set;

    await this.replicate(key, record, ring, replicas, w, args.deadline, value === null ? "acknowledged the delete" : "acknowledged the write", self);
    this.deps.metrics.count(value === null ? "deletes" : "puts");
    if (forwarded) this.deps.metrics.count("forwarded_writes_coordinated");
    return this.encodeContext(key, contextAfterWrite(context, stored, self));
  }

  /**
   * AdminService.Import: merges a record read from an export file (decoded, untrusted) into the
   * key's replicas. Reads the key at the default read quorum; when what the replicas hold already
   * covers the record, nothing is written ("unchanged"). Otherwise their merge (`sync`), within
   * the record limits, goes to the preference list at the default W like a coordinator's write
   * ("imported"). No version is issued, so any node may do this for any key. InvalidArgument for
   * a record out of bounds (import-checks.ts); FailedPrecondition when it is refused (limits, or a
   * version that collides with a different one of this cluster).
   */
  async importRecord(key: string, set: SiblingSet, deadline: Deadline): Promise<"imported" | "unchanged"> {
    this.validateKey(key);
    checkImportedRecord(set, { maxValueBytes: this.options.maxValueBytes, now: this.deps.now() });
    const current = await this.readQuorum(key, this.options.r, deadline);
    const collision = collidingVersion(current, set);
    if (collision) {
      this.deps.metrics.count("imports_refused_colliding_version");
      throw new ConnectError(
        `key ${JSON.stringify(key)} holds a different version under the same id ${describeDot(collision)}: it was written independently here and in the exported cluster by nodes of the same id; import into an empty cluster instead`,
        Code.FailedPrecondition,
      );
    }
    let merged = sync(current, set);
    if (this.options.resolution === "lww") merged = resolveLastWriteWins(merged);
    if (equalSets(merged, current)) {
      this.deps.metrics.count("imports_unchanged");
      return "unchanged";
    }
    const verdict = checkRecordLimits(key, current, merged, this.options);
    if (!verdict.ok) {
      this.deps.metrics.count(verdict.reason === "siblings" ? "imports_refused_max_siblings" : "imports_refused_max_record_bytes");
      throw verdict.error;
    }
    const ring = this.deps.ring();
    await this.replicate(
      key,
      versionedRecord(merged),
      ring,
      ring.preferenceList(key, this.options.n),
      this.options.w,
      deadline,
      "acknowledged the import",
      undefined,
    );
    this.deps.metrics.count("imports_applied");
    return "imported";
  }

  /**
   * Sends `record` to every replica of `replicas` (the key's preference list) but `stored` (the
   * coordinator, which stored it already, if it did) and resolves once W slots acknowledged it.
   */
  private async replicate(
    key: string,
    record: VersionedRecord,
    ring: Ring,
    replicas: readonly string[],
    w: number,
    deadline: Deadline,
    verb: string,
    stored: string | undefined,
  ): Promise<void> {
    // One slot per preference-list replica. Sloppy quorum: a replica that is down, or fails
    // now, is stood in for by the next healthy node clockwise, which keeps the write as a
    // hint for it. W counts the slots that acknowledged, fallbacks included (as in Dynamo).
    const self = this.options.nodeId;
    const others = replicas.filter((node) => node !== stored);
    const tracker = new QuorumTracker<string>(w, replicas.length);
    if (stored !== undefined) tracker.success(stored, stored);
    const used = new Set<string>(replicas);
    const failed = new Set<string>();
    const write = (target: string, hintFor: string | undefined) => this.deps.replicas.endpoint(target).write(key, record, hintFor, deadline.replicaSignal);
    // A slot whose primary failed (primaryTried) or is believed down: the next stand-in, until one
    // takes the write (as a hint for the primary). Prefers a fallback the failure detector
    // believes up; failing that, one it believes down (it may be back already); failing that,
    // the primary itself, if it was not tried.
    const standIn = async (primary: string, primaryTried: boolean, lastError: unknown): Promise<string> => {
      let target = primary;
      for (;;) {
        failed.add(target);
        const candidate = (usable: (node: string) => boolean) =>
          ring
            .sloppyPreferenceList(key, this.options.n, (node) => !failed.has(node) && (node === self || usable(node)))
            .find((p) => p.standsInFor === primary && !used.has(p.node));
        const fallback = candidate((node) => this.deps.replicas.isAvailable(node)) ?? candidate(() => true);
        if (fallback) {
          used.add(fallback.node);
          target = fallback.node;
        } else if (!primaryTried) {
          target = primary;
          primaryTried = true;
        } else {
          throw lastError ?? new ConnectError(`${primary} is down and no fallback node is available`, Code.Unavailable);
        }
        try {
          await write(target, target === primary ? undefined : primary);
          if (target !== primary) this.deps.metrics.count("hinted_writes");
          return target;
        } catch (err) {
          lastError = err;
          if (deadline.replicaSignal.aborted) throw err;
        }
      }
    };
    // A slot that fails for good leaves its replica without the write: the coordinator then
    // keeps a hint for it itself, so it still gets the write when it returns. That hint does
    // not count towards W (only a write on another node protects against losing this one).
    const keepHint =
      (node: string) =>
      async (err: unknown): Promise<never> => {
        await write(self, node).then(
          () => this.deps.metrics.count("coordinator_hints"),
          () => this.deps.metrics.count("coordinator_hints_failed"),
        );
        throw err;
      };
    // The common case, the primary up and taking the write, costs one reaction: no async frame.
    const writeSlot = (primary: string): Promise<string> => {
      if (!this.deps.replicas.isAvailable(primary)) return standIn(primary, false, undefined).catch(keepHint(primary));
      return write(primary, undefined).then(
        () => primary,
        (err: unknown) => (deadline.replicaSignal.aborted ? keepHint(primary)(err) : standIn(primary, true, err).catch(keepHint(primary))),
      );
    };
    const calls = others.map((node) => [node, writeSlot(node)] as const);
    this.writeToPendingOwners(key, record, ring, replicas, deadline);
    await waitForQuorum(tracker, calls, deadline);
    if (tracker.state !== "met") throw quorumError(verb, tracker, deadline);
  }

  /**
   * Sends the write to the key's pending owners outside its preference list (nodes joining, or
   * gaining the ranges of a node leaving or removed), so that a transfer in progress misses no
   * write made after it started. Not counted towards W and not awaited; one that fails is kept
   * as a hint here for that owner, like any replica's.
   */
  private writeToPendingOwners(key: string, record: VersionedRecord, ring: Ring, replicas: readonly string[], deadline: Deadline): void {
    const transition = this.deps.transition?.();
    if (transition === undefined || transition.settled !== ring) return;
    const self = this.options.nodeId;
    for (const owner of transition.extraOwners(key, this.options.n)) {
      if (owner === self || replicas.includes(owner)) continue;
      this.deps.metrics.count("pending_owner_writes");
      deadline.hold(
        this.deps.replicas
          .endpoint(owner)
          .write(key, record, undefined, deadline.replicaSignal)
          .catch(() =>
            this.deps.replicas
              .endpoint(self)
              .write(key, record, owner, deadline.replicaSignal)
              .then(
                () => this.deps.metrics.count("pending_owner_hints"),
                () => this.deps.metrics.count("pending_owner_writes_lost"),
              ),
          ),
      );
    }
  }

  /**
   * Applies the client's write to the local store, under the key's lock, after checking that
   * the result stays within the record limits: a refused write is stored nowhere.
   */
  private async issueVersion(key: string, context: CausalContext, value: Uint8Array | null, contentType: string | undefined): Promise<VersionedRecord> {
    const now = this.deps.now();
    const lww = this.options.resolution === "lww";
    let nearLimit = false;
    try {
      const stored = await this.deps.updateLocal(key, (current) => {
        let next = writeWithContext(current, context, this.options.nodeId, value, now, contentType);
        if (lww) next = resolveLastWriteWins(next);
        const verdict = checkRecordLimits(key, current, next, this.options);
        if (!verdict.ok) {
          this.deps.metrics.count(verdict.reason === "siblings" ? "writes_refused_max_siblings" : "writes_refused_max_record_bytes");
          throw verdict.error;
        }
        nearLimit = verdict.nearLimit;
        return next;
      });
      if (nearLimit) {
        this.deps.metrics.count("writes_near_record_limits");
        this.deps.log.warn("key is near its record limits: clients should resolve its siblings", {
          key,
          siblings: stored.set.siblings.length,
          maxSiblings: this.options.maxSiblings,
          bytes: recordSizeBound(stored.set),
          maxRecordBytes: this.options.maxRecordBytes,
        });
      }
      return stored;
    } catch (err) {
      if (err instanceof InvalidVersionError) {
        // Only a clock damaged before contexts were sealed gets here (e.g. a counter at 2^53 - 1).
        this.deps.metrics.count("writes_refused_damaged_clock");
        throw new ConnectError(
          `key ${JSON.stringify(key)} cannot take a new version: ${err.message}; an operator can repair the key with \`dynamo repair-key\``,
          Code.FailedPrecondition,
        );
      }
      throw err;
    }
  }

  private async forward(replicas: readonly string[], args: PutArgs): Promise<Uint8Array> {
    const reasons: string[] = [];
    for (const node of replicas) {
      if (args.deadline.expired) break;
      try {
        this.deps.metrics.count("forwarded_writes");
        return await this.deps.forwardWrite(node, args);
      } catch (err) {
        // Only a write no coordinator took on goes to the next replica; a quorum or
        // validation failure reported by the node that coordinated it is the answer.
        if (!isNotCoordinated(err)) throw ConnectError.from(err);
        reasons.push(`${node}: ${(err as ConnectError).rawMessage}`);
      }
    }
    if (args.deadline.expired) throw new ConnectError("deadline passed before a replica coordinated the write", Code.DeadlineExceeded);
    throw new ConnectError(`no replica of the key could coordinate the write (${reasons.join("; ")})`, Code.Unavailable);
  }
}

/** A quorum being waited for (startQuorum). */
export interface QuorumWait {
  /** Resolves once the quorum is met or can no longer be met, or the deadline's signal fired. */
  readonly decided: Promise<void>;
  /**
   * Runs `fn` once every call has settled (at once if all have): the tracker then holds every
   * outcome. Runs before the last call's hold on the deadline ends, so what `fn` holds keeps
   * the deadline's timer.
   */
  afterAll(fn: () => void): void;
}

/**
 * Feeds the outcome of each call into the tracker; `decided` resolves as soon as the quorum is
 * met, can no longer be met, or the deadline passes. Calls still running carry on (a late
 * replica write still lands, a late read still feeds read repair); nobody waits for them, but
 * each holds the deadline until it settles, which still ends them. One handler per call and
 * nothing else: no Promise.allSettled, no promise per hold (a cost on every request).
 */
export function startQuorum<T>(tracker: QuorumTracker<T>, calls: ReadonlyArray<readonly [string, Promise<T>]>, deadline: Deadline): QuorumWait {
  let unsettled = calls.length;
  let afterAll: (() => void) | undefined;
  let decide: () => void = () => {};
  const decided = new Promise<void>((resolve) => {
    decide = resolve;
  });
  const onAbort = () => decide();
  const decideIfDone = () => {
    if (tracker.state !== "pending") {
      deadline.signal.removeEventListener("abort", onAbort);
      decide();
    }
  };
  const onCallSettled = () => {
    unsettled--;
    if (unsettled === 0 && afterAll !== undefined) afterAll();
    deadline.release();
    decideIfDone();
  };
  // Every call gets its handlers, even when the quorum is already met (W=1): a replica
  // failure nobody handles would be an unhandled rejection.
  if (tracker.state === "pending") deadline.signal.addEventListener("abort", onAbort, { once: true });
  decideIfDone();
  for (const [node, call] of calls) {
    deadline.retain();
    call.then(
      (value) => {
        tracker.success(node, value);
        onCallSettled();
      },
      (err: unknown) => {
        tracker.failure(node, describeError(err));
        onCallSettled();
      },
    );
  }
  return {
    decided,
    afterAll(fn) {
      if (unsettled === 0) fn();
      else afterAll = fn;
    },
  };
}

/** startQuorum(), for a caller that only waits for the decision. */
export function waitForQuorum<T>(tracker: QuorumTracker<T>, calls: ReadonlyArray<readonly [string, Promise<T>]>, deadline: Deadline): Promise<void> {
  return startQuorum(tracker, calls, deadline).decided;
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

/** What a NotFound for `key` says, however it is delivered. */
export function notFoundMessage(key: string): string {
  return `key not found: ${JSON.stringify(key)}`;
}

/**
 * A key's NotFound as an error, without a stack trace: an answer, not a failure, and under a read
 * load of missing keys capturing the stack was ~3% of a node's CPU (a profile of Get).
 */
export function notFoundError(key: string): ConnectError {
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = 0;
  try {
    return new ConnectError(notFoundMessage(key), Code.NotFound);
  } finally {
    Error.stackTraceLimit = limit;
  }
}
