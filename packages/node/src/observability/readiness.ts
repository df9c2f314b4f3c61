// Liveness and readiness, kept apart as Kubernetes (and any load balancer) needs them:
// - live: the process answers (GET /livez). Nothing the node depends on makes it fail: a
//   liveness failure restarts the container, which cures none of them.
// - ready: this node can do useful work for a client now (GET /readyz, and the gRPC health
//   service for "" and dynamo.v1.KVService): started and not stopping, both stores take writes,
//   it is an owner on the ring (not still joining: a node started with --seeds into a new data
//   dir copies its ranges first, and an orchestrator that starts the next node only once this one
//   is ready then grows the cluster one node at a time), and enough members are up for the
//   default R and W. A node alone in a
//   cluster configured for N=3 W=2 is not ready: every write would fail.
// Pure: the node gathers the facts, this decides.

export interface ReadinessFacts {
  readonly started: boolean;
  readonly stopping: boolean;
  /** Empty when both stores take writes; otherwise why not. */
  readonly storageProblem: string;
  /** This node's ring status (joining, normal, leaving, left, removed). */
  readonly ringStatus: string;
  /** Members on the ring (this node included). */
  readonly ringMembers: number;
  /** Ring members gossip holds alive or suspect (this node included). */
  readonly membersUp: number;
  readonly n: number;
  readonly r: number;
  readonly w: number;
}

export interface ReadinessCheck {
  readonly name: "started" | "storage" | "membership" | "ring" | "quorum";
  readonly ok: boolean;
  readonly detail: string;
}

export interface Readiness {
  readonly ready: boolean;
  readonly checks: readonly ReadinessCheck[];
  /** The failed checks' details, joined: the one line a probe or a log shows. */
  readonly reason: string;
}

export function readiness(f: ReadinessFacts): Readiness {
  const needed = Math.max(f.r, f.w);
  const checks: ReadinessCheck[] = [
    { name: "started", ok: f.started && !f.stopping, detail: f.stopping ? "shutting down" : f.started ? "serving" : "starting" },
    { name: "storage", ok: f.storageProblem === "", detail: f.storageProblem || "data and hints take writes" },
    {
      name: "membership",
      ok: f.ringStatus === "normal" || f.ringStatus === "leaving",
      detail:
        f.ringStatus === "joining"
          ? "joining: copying the ranges it will own from their current replicas (dynamo status shows the transfers)"
          : f.ringStatus === "normal" || f.ringStatus === "leaving"
            ? `ring status ${f.ringStatus}`
            : `ring status ${f.ringStatus}: this node is no longer a member`,
    },
    { name: "ring", ok: f.ringMembers >= 1, detail: `${f.ringMembers} member(s) on the ring` },
    {
      name: "quorum",
      ok: f.membersUp >= needed,
      detail:
        f.membersUp >= needed
          ? `${f.membersUp} of ${f.ringMembers} members up; the default R=${f.r} and W=${f.w} need ${needed}`
          : `only ${f.membersUp} of ${f.ringMembers} members up, but the default R=${f.r} and W=${f.w} need ${needed} (N=${f.n}): ${f.ringMembers < needed ? "start more nodes with --seeds pointing at this one, or lower --r/--w" : "requests at the default quorum will fail until members come back"}`,
    },
  ];
  const failed = checks.filter((c) => !c.ok);
  return { ready: failed.length === 0, checks, reason: failed.map((c) => c.detail).join("; ") };
}
