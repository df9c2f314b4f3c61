// Pure quorum bookkeeping: given how many answers are needed out of how many asked, decide
// after each answer whether the quorum is met, can no longer be met, or is still open.
// The coordinator drives it from RPC results; tests drive it directly.

export type QuorumState = "pending" | "met" | "failed";

export class QuorumTracker<T> {
  readonly successes = new Map<string, T>();
  readonly failures = new Map<string, string>();

  constructor(
    readonly needed: number,
    readonly asked: number,
  ) {
    if (!Number.isInteger(needed) || needed < 1) throw new RangeError(`needed must be a positive integer, got ${needed}`);
    if (!Number.isInteger(asked) || asked < 0) throw new RangeError(`asked must be a non-negative integer, got ${asked}`);
  }

  success(node: string, value: T): QuorumState {
    if (!this.failures.has(node)) this.successes.set(node, value);
    return this.state;
  }

  failure(node: string, reason: string): QuorumState {
    if (!this.successes.has(node)) this.failures.set(node, reason);
    return this.state;
  }

  get answered(): number {
    return this.successes.size + this.failures.size;
  }

  get state(): QuorumState {
    if (this.successes.size >= this.needed) return "met";
    // The quorum fails as soon as the nodes still to answer cannot make up the difference.
    if (this.successes.size + (this.asked - this.answered) < this.needed) return "failed";
    return "pending";
  }

  /** One-line account for error messages: "1 of 3 replicas acknowledged, 2 needed (node2: connection refused)". */
  describe(verb: string): string {
    const why = [...this.failures].map(([node, reason]) => `${node}: ${reason}`).join("; ");
    const silent = this.asked - this.answered;
    const parts = [why, silent > 0 ? `${silent} did not answer in time` : ""].filter(Boolean).join("; ");
    return `${this.successes.size} of ${this.asked} replicas ${verb}, ${this.needed} needed${parts ? ` (${parts})` : ""}`;
  }
}
