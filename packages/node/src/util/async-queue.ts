// A push-driven AsyncIterable: what a Connect streaming call consumes (requests pushed as they
// come) and what a streaming handler yields from (results pushed as they complete).

export class AsyncQueue<T> implements AsyncIterable<T> {
  private readonly items: T[] = [];
  private closed = false;
  private wake: (() => void) | undefined;

  get ended(): boolean {
    return this.closed;
  }

  /** Queues an item; throws once the queue has ended (nobody would read it). */
  push(item: T): void {
    if (this.closed) throw new Error("the stream has ended");
    this.items.push(item);
    this.wake?.();
  }

  /** Ends the iteration after the items already queued. Idempotent. */
  end(): void {
    this.closed = true;
    this.wake?.();
  }

  async *[Symbol.asyncIterator](): AsyncIterator<T> {
    for (;;) {
      while (this.items.length > 0) yield this.items.shift()!;
      if (this.closed) return;
      await new Promise<void>((resolve) => (this.wake = resolve));
      this.wake = undefined;
    }
  }
}
