// Protobuf mapping: the AntiEntropyService handler and the admin Repair and AntiEntropyStatus
// answers, from and to this node's AntiEntropy.
import type { MessageInitShape } from "@bufbuild/protobuf";
import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";
import type { AntiEntropyService, AntiEntropyStatusResponseSchema, RepairResponseSchema } from "@dynamo-ts/proto";
import type { TokenRange } from "@dynamo-ts/ring";
import type { AntiEntropy } from "./anti-entropy.js";

/** The AntiEntropyService handler; `requireInternal` rejects callers without the cluster secret. */
export function antiEntropyService(antiEntropy: AntiEntropy, requireInternal: (ctx: HandlerContext) => void): ServiceImpl<typeof AntiEntropyService> {
  return {
    async *exchange(requests, ctx) {
      requireInternal(ctx);
      yield* antiEntropy.respond(requests, ctx.signal);
    },
  };
}

/** The admin Repair request on this node's anti-entropy. */
export async function repairResponse(antiEntropy: AntiEntropy, range: TokenRange | undefined): Promise<MessageInitShape<typeof RepairResponseSchema>> {
  const { exchanges, durationMs } = await antiEntropy.repair(range === undefined ? undefined : { start: range.start, end: range.end });
  return {
    durationMs: BigInt(durationMs),
    exchanges: exchanges.map((e) => ({
      range: e.range,
      peer: e.peer,
      outcome: e.outcome,
      detail: e.detail,
      hashesCompared: BigInt(e.hashesCompared),
      keysFetched: BigInt(e.keysFetched),
      keysPushed: BigInt(e.keysPushed),
      keysRepaired: BigInt(e.keysRepaired),
      bytesMoved: BigInt(e.bytesMoved),
      keysWithheld: BigInt(e.keysWithheld),
    })),
  };
}

/** The admin AntiEntropyStatus answer. */
export function statusResponse(antiEntropy: AntiEntropy): MessageInitShape<typeof AntiEntropyStatusResponseSchema> {
  const status = antiEntropy.status();
  return {
    intervalMs: BigInt(status.intervalMs),
    keysPerSecond: BigInt(status.keysPerSecond),
    bytesPerSecond: BigInt(status.bytesPerSecond),
    ready: status.ready,
    ranges: status.ranges.map((r) => ({
      range: r.range,
      peers: [...r.peers],
      keys: BigInt(r.keys),
      treeDepth: r.treeDepth,
      lastExchangeAgeMs: BigInt(r.lastExchangeAgeMs),
      lastPeer: r.lastPeer,
      lastOutcome: r.lastOutcome,
      exchanges: BigInt(r.exchanges),
      keysRepaired: BigInt(r.keysRepaired),
      keysMoved: BigInt(r.keysMoved),
      bytesMoved: BigInt(r.bytesMoved),
    })),
  };
}
