// The request deadline's timer: it aborts replicaSignal at the deadline while the request, or a
// replica call it left running, may still need it, and is cancelled once neither is left.
import { getEventListeners } from "node:events";
import { describe, expect, it } from "vitest";
import { FakeClock } from "../test-support/coordinator-bench.js";
import { Deadline } from "./deadline.js";

/** A task the test settles when it wants. */
function task(): { promise: Promise<void>; settle: () => void; fail: () => void } {
  let settle!: () => void;
  let fail!: () => void;
  const promise = new Promise<void>((resolve, reject) => {
    settle = resolve;
    fail = () => reject(new Error("replica call failed"));
  });
  return { promise, settle, fail };
}

const turn = () => new Promise<void>((resolve) => setImmediate(resolve));

describe("Deadline", () => {
  it("aborts both signals when it passes before the request is answered", () => {
    const clock = new FakeClock();
    const deadline = new Deadline(100, undefined, clock);
    clock.advance(99);
    expect(deadline.replicaSignal.aborted).toBe(false);
    clock.advance(1);
    expect(deadline.replicaSignal.aborted).toBe(true);
    expect(deadline.signal.aborted).toBe(true);
    expect(deadline.expired).toBe(true);
  });

  it("cancels its timer once the request is answered and nothing it left running needs it", () => {
    const clock = new FakeClock();
    const deadline = new Deadline(100, undefined, clock);
    deadline.done();
    clock.advance(1_000);
    expect(deadline.replicaSignal.aborted).toBe(false);
  });

  it("still ends a held replica call at the deadline after the answer, and is cancelled once the last one settles", async () => {
    const clock = new FakeClock();
    const hanging = new Deadline(100, undefined, clock);
    const call = task();
    hanging.hold(call.promise);
    hanging.done();
    clock.advance(100);
    expect(hanging.replicaSignal.aborted).toBe(true);

    const answered = new Deadline(100, undefined, clock);
    const first = task();
    const second = task();
    answered.hold(first.promise);
    answered.hold(second.promise);
    answered.done();
    first.settle();
    await turn();
    clock.advance(50);
    second.fail(); // a failed call counts as settled too
    await turn();
    clock.advance(1_000);
    expect(answered.replicaSignal.aborted).toBe(false);
  });

  it("runs its timer again for what is left when a task is held after a release", async () => {
    const clock = new FakeClock();
    const deadline = new Deadline(100, undefined, clock);
    deadline.done();
    clock.advance(40);
    const late = task();
    deadline.hold(late.promise);
    clock.advance(59);
    expect(deadline.replicaSignal.aborted).toBe(false);
    clock.advance(1);
    expect(deadline.replicaSignal.aborted).toBe(true);
  });

  it("keeps its timer for a retain() until its release(), like a held task", () => {
    const clock = new FakeClock();
    const retained = new Deadline(100, undefined, clock);
    retained.retain();
    retained.done();
    clock.advance(100);
    expect(retained.replicaSignal.aborted).toBe(true);

    const released = new Deadline(100, undefined, clock);
    released.retain();
    released.retain();
    released.done();
    released.release();
    clock.advance(50);
    expect(released.replicaSignal.aborted).toBe(false);
    released.release();
    clock.advance(1_000);
    expect(released.replicaSignal.aborted).toBe(false);
  });

  describe("with the client's signal", () => {
    it("aborts signal, not replicaSignal, when the client goes away, with the client's reason", () => {
      const clock = new FakeClock();
      const client = new AbortController();
      const deadline = new Deadline(100, client.signal, clock);
      expect(deadline.signal.aborted).toBe(false);
      const reason = new Error("client went away");
      client.abort(reason);
      expect(deadline.signal.aborted).toBe(true);
      expect(deadline.signal.reason).toBe(reason);
      expect(deadline.expired).toBe(true);
      expect(deadline.replicaSignal.aborted).toBe(false);
      clock.advance(100);
      expect(deadline.replicaSignal.aborted).toBe(true);
      expect(deadline.signal.reason).toBe(reason); // the first reason stays
    });

    it("starts aborted when the client's signal already is", () => {
      const client = new AbortController();
      client.abort(new Error("gone before"));
      const deadline = new Deadline(100, client.signal, new FakeClock());
      expect(deadline.signal.aborted).toBe(true);
      expect(deadline.replicaSignal.aborted).toBe(false);
      expect(getEventListeners(client.signal, "abort")).toHaveLength(0);
    });

    it("aborts signal with a TimeoutError when the deadline passes first", () => {
      const clock = new FakeClock();
      const client = new AbortController();
      const deadline = new Deadline(100, client.signal, clock);
      clock.advance(100);
      expect(deadline.signal.aborted).toBe(true);
      expect((deadline.signal.reason as Error).name).toBe("TimeoutError");
      expect(deadline.replicaSignal.aborted).toBe(true);
    });

    it("stops listening to the client's signal once the request is answered", () => {
      const clock = new FakeClock();
      const client = new AbortController();
      const deadline = new Deadline(100, client.signal, clock);
      expect(getEventListeners(client.signal, "abort")).toHaveLength(1);
      deadline.done();
      expect(getEventListeners(client.signal, "abort")).toHaveLength(0);
      client.abort();
      expect(deadline.signal.aborted).toBe(false); // answered: nothing waits on it any more
    });
  });
});
