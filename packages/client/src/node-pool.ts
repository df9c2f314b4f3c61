// Which node a call goes to first, and which ones after it: round-robin over the nodes, with
// a node that just failed put back for a short while.

export class NodePool<T> {
  private calls = 0;
  private readonly downUntil: Map<T, number>;

  constructor(
    private readonly nodes: readonly T[],
    /** How long a node that failed is passed over, in ms. */
    private readonly backoffMs: number,
    private readonly now: () => number = Date.now,
  ) {
    if (nodes.length === 0) throw new TypeError("a client needs at least one node");
    this.downUntil = new Map(nodes.map((n) => [n, 0]));
  }

  /**
   * The order in which one call tries the nodes, each at most once: the nodes not in backoff
   * first, round-robin (each call starts one further along them than the previous one), then
   * those in backoff (a call still tries them when nothing else answers), the one whose
   * backoff ends first first.
   */
  order(): T[] {
    const now = this.now();
    const until = (n: T) => this.downUntil.get(n)!;
    const up = this.nodes.filter((n) => until(n) <= now);
    const down = this.nodes.filter((n) => until(n) > now).sort((a, b) => until(a) - until(b));
    const start = up.length > 0 ? this.calls++ % up.length : 0;
    return [...up.slice(start), ...up.slice(0, start), ...down];
  }

  /** The node gave no answer (or declined): pass it over for the backoff. */
  failed(node: T): void {
    this.downUntil.set(node, this.now() + this.backoffMs);
  }

  /** The node answered: it is up again. */
  answered(node: T): void {
    this.downUntil.set(node, 0);
  }
}
