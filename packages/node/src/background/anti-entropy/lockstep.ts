// The initiator's end of one Exchange stream: requests and answers in lock step, each answer
// checked to be the step expected and bounded in time.
import type { MessageInitShape } from "@bufbuild/protobuf";
import type { Client } from "@connectrpc/connect";
import type { AntiEntropyService, ExchangeRequestSchema, ExchangeResponse } from "@dynamo-ts/proto";
import { AsyncQueue } from "../../util/async-queue.js";

/** Thrown when a peer breaks the exchange protocol. */
export class ExchangeProtocolError extends Error {
  override name = "ExchangeProtocolError";
}

type RequestInit = MessageInitShape<typeof ExchangeRequestSchema>;
type ResponseStep = ExchangeResponse["step"];
type ResponseCase = NonNullable<ResponseStep["case"]>;
type ResponseValue<C extends ResponseCase> = Extract<ResponseStep, { case: C }>["value"];

/** The initiator's side of an Exchange stream: one request, then its answer(s), in lock step. */
export class LockstepStream {
  private readonly requests = new AsyncQueue<RequestInit>();
  private readonly responses: AsyncIterator<ExchangeResponse>;
  private readonly abort = new AbortController();

  constructor(
    client: Client<typeof AntiEntropyService>,
    stopping: AbortSignal,
    private readonly stepTimeoutMs: number,
  ) {
    const signal = AbortSignal.any([stopping, this.abort.signal]);
    this.responses = client.exchange(this.requests, { signal })[Symbol.asyncIterator]();
  }

  send(request: RequestInit): void {
    this.requests.push(request);
  }

  async next<C extends ResponseCase>(expected: C): Promise<ResponseValue<C>> {
    const timer = setTimeout(() => this.abort.abort(new Error(`no answer within ${this.stepTimeoutMs} ms`)), this.stepTimeoutMs);
    let result: IteratorResult<ExchangeResponse>;
    try {
      result = await this.responses.next();
    } finally {
      clearTimeout(timer);
    }
    if (result.done) throw new ExchangeProtocolError(`the peer ended the exchange while ${expected} was expected`);
    const step = result.value.step;
    if (step.case !== expected) throw new ExchangeProtocolError(`the peer answered ${step.case ?? "nothing"} where ${expected} was expected`);
    return step.value as ResponseValue<C>;
  }

  ask<C extends ResponseCase>(request: RequestInit, expected: C): Promise<ResponseValue<C>> {
    this.send(request);
    return this.next(expected);
  }

  /** Ends the request stream and lets the peer finish; cancels the call if it does not. */
  async close(): Promise<void> {
    this.requests.end();
    const timer = setTimeout(() => this.abort.abort(), 1_000);
    try {
      while (!(await this.responses.next()).done) {
        // Nothing more is expected once every request was answered.
      }
    } catch {
      // The call was cancelled or had already failed: nothing left to clean up.
    } finally {
      clearTimeout(timer);
    }
  }
}
