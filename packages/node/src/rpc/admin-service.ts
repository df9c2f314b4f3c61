// AdminService: the node's state shaped as protobuf for `dynamo status`, `dynamo hints`,
// `dynamo repair`, `dynamo repair-key`, `dynamo leave`, `dynamo decommission`, `dynamo remove-node`,
// `dynamo export` and `dynamo import`.
// Reads only; the actions are the node's (repairKey, leave, the export walk, importRecord),
// passed in (Export and Import are shaped in export-import.ts).
import type { MessageInitShape } from "@bufbuild/protobuf";
import { Code, ConnectError, type ServiceImpl } from "@connectrpc/connect";
import type { HintStore } from "@dynamo-ts/hintstore";
import type { AdminService, ListHintsResponseSchema, RepairKeyResponseSchema, StatusResponseSchema } from "@dynamo-ts/proto";
import type { Ring } from "@dynamo-ts/ring";
import { type AntiEntropy, repairResponse, statusResponse as antiEntropyStatusResponse } from "../background/anti-entropy/index.js";
import type { BackoffSchedule } from "../background/handoff.js";
import type { Membership } from "../cluster/membership.js";
import type { OwnershipChanges } from "../cluster/ownership-changes.js";
import type { Deadline } from "../requests/deadline.js";
import type { KeyRepairResult } from "../requests/key-repair.js";
import { deadlineFor, requireAdmin } from "./call-context.js";
import type { Credentials } from "./credentials.js";
import { type ExportImportSources, exportResponses, importResponse } from "./export-import.js";

export interface AdminSources extends ExportImportSources {
  readonly nodeId: string;
  readonly n: number;
  readonly r: number;
  readonly w: number;
  readonly vnodes: number;
  readonly version: string;
  readonly startedAt: number;
  readonly clusterSecret: string;
  /** Every admin method needs the cluster secret or a token with the admin role. */
  readonly credentials: Credentials;
  ring(): Ring;
  /** The ring once the joins and departures in progress complete (the settled ring when undefined). */
  pendingRing?(): Ring;
  readonly membership: Pick<Membership, "members" | "addressOf">;
  /** Every counter of the node, by name. */
  counters(): Record<string, number>;
  /** Whether the node is still rebuilding a lost data directory. */
  rebuilding(): boolean;
  readonly antiEntropy: AntiEntropy;
  readonly hints: Pick<HintStore, "counters" | "targets" | "bytes">;
  readonly hintSchedule: Pick<BackoffSchedule, "failures" | "nextAttemptIn">;
  /** Hints dropped because their target refused them. */
  hintsRejected(): number;
  /** Why the node is not serving; empty when it is. */
  notReadyReason(): string;
  validateKey(key: string): void;
  repairKey(key: string, deadline: Deadline): Promise<KeyRepairResult>;
  leave(): Promise<void>;
  /** Decommission of this node, removal of dead members, and the transfers they (and a bootstrap) run. */
  readonly ownership?: Pick<OwnershipChanges, "decommission" | "removeNode" | "transfers">;
}

export function statusResponse(src: AdminSources): MessageInitShape<typeof StatusResponseSchema> {
  const ring = src.ring();
  const ownership = ring.ownership();
  const pendingOwnership = src.pendingRing?.().ownership() ?? ownership;
  const now = src.now();
  const gossiped = new Map(src.membership.members().map((m) => [m.id, m]));
  const ids = new Set([...ring.nodes, ...gossiped.keys()]);
  const members = [...ids].sort().map((id) => {
    const m = gossiped.get(id);
    const heard = m?.lastHeardAt;
    return {
      nodeId: id,
      address: src.membership.addressOf(id) ?? "",
      // A configured peer gossip has not heard of yet is reported as such.
      state: m?.state ?? "unknown",
      incarnation: BigInt(m?.incarnation ?? 0),
      lastHeardMs: BigInt(id === src.nodeId || heard === undefined ? 0 : Math.max(0, now - heard)),
      ownership: ownership.get(id) ?? 0,
      ringStatus: m?.ringStatus ?? "unknown",
      pendingOwnership: pendingOwnership.get(id) ?? 0,
    };
  });
  return {
    nodeId: src.nodeId,
    n: src.n,
    r: src.r,
    w: src.w,
    vnodes: src.vnodes,
    version: src.version,
    uptimeMs: BigInt(now - src.startedAt),
    counters: Object.fromEntries(Object.entries(src.counters()).map(([k, v]) => [k, BigInt(v)])),
    members,
    rebuilding: src.rebuilding(),
    rangesToRebuild: src.antiEntropy.rangesToRebuild(),
    notReadyReason: src.notReadyReason(),
    transfers: (src.ownership?.transfers() ?? []).map((t) => ({
      kind: t.kind,
      rangeStart: BigInt(t.range.start),
      rangeEnd: BigInt(t.range.end),
      source: t.source,
      target: t.target,
      keys: BigInt(t.keys),
      bytes: BigInt(t.bytes),
      done: t.done,
      elapsedMs: BigInt(Math.max(0, now - t.startedAt)),
      fraction: t.fraction,
    })),
  };
}

export function hintsResponse(src: AdminSources): MessageInitShape<typeof ListHintsResponseSchema> {
  const now = src.now();
  const counters = src.hints.counters();
  const rejected = src.hintsRejected();
  return {
    targets: src.hints.targets().map((t) => ({
      nodeId: t.target,
      count: BigInt(t.count),
      oldestAgeMs: BigInt(Math.max(0, now - t.oldestCreatedAt)),
      newestAgeMs: BigInt(Math.max(0, now - t.newestCreatedAt)),
      consecutiveFailures: src.hintSchedule.failures(t.target),
      nextAttemptInMs: BigInt(src.hintSchedule.nextAttemptIn(t.target, now)),
      bytes: BigInt(t.bytes),
    })),
    stored: BigInt(counters.stored),
    // Hints dropped because their target refused them are acknowledged too: not deliveries.
    delivered: BigInt(Math.max(0, counters.delivered - rejected)),
    expired: BigInt(counters.expired),
    failed: BigInt(counters.failed),
    merged: BigInt(counters.merged),
    refused: BigInt(counters.refused),
    rejected: BigInt(rejected),
    bytes: BigInt(src.hints.bytes()),
  };
}

export function repairKeyResponse(result: KeyRepairResult): MessageInitShape<typeof RepairKeyResponseSchema> {
  return {
    replicas: [...result.replicas],
    siblings: result.siblings,
    clockEntriesBefore: result.clockEntriesBefore,
    highestCounterBefore: BigInt(result.highestCounterBefore),
  };
}

function ownershipOf(src: AdminSources): NonNullable<AdminSources["ownership"]> {
  if (src.ownership === undefined) throw new ConnectError("this node does not change the cluster's shape", Code.Unimplemented);
  return src.ownership;
}

export function adminService(src: AdminSources): ServiceImpl<typeof AdminService> {
  return {
    status(_req, ctx) {
      requireAdmin(ctx, src.credentials);
      return statusResponse(src);
    },
    async repair(req, ctx) {
      requireAdmin(ctx, src.credentials);
      return repairResponse(src.antiEntropy, req.range);
    },
    antiEntropyStatus(_req, ctx) {
      requireAdmin(ctx, src.credentials);
      return antiEntropyStatusResponse(src.antiEntropy);
    },
    listHints(_req, ctx) {
      requireAdmin(ctx, src.credentials);
      return hintsResponse(src);
    },
    async leave(_req, ctx) {
      requireAdmin(ctx, src.credentials);
      await src.leave();
      return {};
    },
    decommission(_req, ctx) {
      requireAdmin(ctx, src.credentials);
      return { transfers: ownershipOf(src).decommission() };
    },
    removeNode(req, ctx) {
      requireAdmin(ctx, src.credentials);
      if (req.nodeId === "") throw new ConnectError("node_id is required: the id of the dead member to remove", Code.InvalidArgument);
      return { transfers: ownershipOf(src).removeNode(req.nodeId) };
    },
    async repairKey(req, ctx) {
      requireAdmin(ctx, src.credentials);
      src.validateKey(req.key);
      return repairKeyResponse(await src.repairKey(req.key, deadlineFor(undefined, src.defaultTimeoutMs, ctx)));
    },
    async *export(req, ctx) {
      requireAdmin(ctx, src.credentials);
      yield* exportResponses(src, req, ctx);
    },
    async import(req, ctx) {
      requireAdmin(ctx, src.credentials);
      return importResponse(src, req, ctx);
    },
  };
}
