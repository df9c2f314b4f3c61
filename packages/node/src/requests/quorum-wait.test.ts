// startQuorum: the coordinator's wait for a quorum of replica calls, and what runs once every
// call has settled (read repair), with each call holding the request's deadline until it settles.
import { describe, expect, it } from "vitest";
import { FakeClock } from "../test-support/coordinator-bench.js";
import { startQuorum } from "./coordinator.js";
import { Deadline } from "./deadline.js";
import { QuorumTracker } from "./quorum.js";

function deferred<T>(): { promise: Promise<T>; resolve: (value: T) => void; reject: (err: Error) => void } {
  let resolve!: (value: T) => void;
  let reject!: (err: Error) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

const turn = () => new Promise<void>((resolve) => setImmediate(resolve));

describe("startQuorum", () => {
  it("decides at the quorum, then runs afterAll once the last call settled, every outcome in the tracker", async () => {
    const clock = new FakeClock();
    const deadline = new Deadline(100, undefined, clock);
    const [a, b, c] = [deferred<string>(), deferred<string>(), deferred<string>()];
    const tracker = new QuorumTracker<string>(2, 3);
    const wait = startQuorum(
      tracker,
      [
        ["a", a.promise],
        ["b", b.promise],
        ["c", c.promise],
      ],
      deadline,
    );
    let decided = false;
    void wait.decided.then(() => (decided = true));
    a.resolve("A");
    await turn();
    expect(decided).toBe(false);
    b.resolve("B");
    await turn();
    expect(decided).toBe(true);
    expect(tracker.state).toBe("met");

    const seen: number[] = [];
    const late = deferred<void>();
    wait.afterAll(() => {
      seen.push(tracker.answered);
      deadline.hold(late.promise); // what read repair does: its writes keep the deadline
    });
    expect(seen).toEqual([]);
    c.reject(new Error("unreachable"));
    await turn();
    expect(seen).toEqual([3]);
    expect(tracker.failures.get("c")).toBe("unreachable");

    // The request is answered; the write afterAll held still ends at the deadline.
    deadline.done();
    clock.advance(100);
    expect(deadline.replicaSignal.aborted).toBe(true);
  });

  it("runs afterAll at once when every call has settled already", async () => {
    const deadline = new Deadline(100, undefined, new FakeClock());
    const tracker = new QuorumTracker<number>(1, 2);
    const wait = startQuorum(
      tracker,
      [
        ["a", Promise.resolve(1)],
        ["b", Promise.resolve(2)],
      ],
      deadline,
    );
    await wait.decided;
    await turn();
    let runs = 0;
    wait.afterAll(() => runs++);
    expect(runs).toBe(1);
    expect([...tracker.successes.values()]).toEqual([1, 2]);
  });

  it("keeps the deadline's timer while a call runs after the answer, and releases it when the calls settle", async () => {
    const clock = new FakeClock();
    const settledLate = new Deadline(100, undefined, clock);
    const slow = deferred<number>();
    const tracker = new QuorumTracker<number>(1, 2);
    await startQuorum(
      tracker,
      [
        ["a", Promise.resolve(1)],
        ["b", slow.promise],
      ],
      settledLate,
    ).decided;
    settledLate.done();
    clock.advance(50);
    slow.resolve(2);
    await turn();
    clock.advance(1_000);
    expect(settledLate.replicaSignal.aborted).toBe(false); // nothing left: the timer was cancelled

    const hanging = new Deadline(100, undefined, clock);
    await startQuorum(
      new QuorumTracker<number>(1, 2),
      [
        ["a", Promise.resolve(1)],
        ["b", new Promise<number>(() => {})],
      ],
      hanging,
    ).decided;
    hanging.done();
    clock.advance(100);
    expect(hanging.replicaSignal.aborted).toBe(true); // the call still running ends at the deadline
  });

  it("ends the wait when the deadline's signal fires first", async () => {
    const clock = new FakeClock();
    const deadline = new Deadline(100, undefined, clock);
    const tracker = new QuorumTracker<number>(2, 2);
    const wait = startQuorum(
      tracker,
      [
        ["a", Promise.resolve(1)],
        ["b", new Promise<number>(() => {})],
      ],
      deadline,
    );
    clock.advance(100);
    await wait.decided;
    expect(tracker.state).toBe("pending");
  });
});
