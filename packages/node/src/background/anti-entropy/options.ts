// What the node hands to anti-entropy: its settings and the services it uses. Each part takes
// only the fields it needs (Pick<...>).
import type { Client } from "@connectrpc/connect";
import type { AntiEntropyService } from "@dynamo-ts/proto";
import type { Ring } from "@dynamo-ts/ring";
import type { Storage } from "@dynamo-ts/storage";
import type { Replicas } from "../../requests/replicas.js";
import type { Logger } from "../../observability/log.js";
import type { Metrics } from "../../observability/metrics.js";
import type { ReplicaRebuild } from "../../local/rebuild.js";
import type { LocalReplica } from "../../local/replica.js";

export interface AntiEntropyOptions {
  readonly nodeId: string;
  readonly n: number;
  /** Pause between periodic rounds; 0: no periodic rounds (Repair still works). */
  readonly intervalMs: number;
  /** Keys fetched + pushed per second, across every exchange of this node. */
  readonly keysPerSecond: number;
  /** Record bytes fetched + pushed per second. */
  readonly bytesPerSecond: number;
  readonly tombstoneGraceMs: number;
  /** Largest request message a peer accepts: push batches stay below it. */
  readonly maxMessageBytes: number;
}

export interface AntiEntropyDeps {
  /** The current ring; a new object means membership changed and the trees are rebuilt. */
  ring(): Ring;
  readonly storage: Storage;
  readonly replica: LocalReplica;
  /** The anti-entropy client of a peer (its pooled HTTP/2 session, cluster secret included). */
  client(node: string): Client<typeof AntiEntropyService>;
  /**
   * Peers' replica endpoints (reads that confirm an old key before it is copied) and whether
   * each is believed up (periodic rounds skip the others).
   */
  readonly replicas: Replicas;
  readonly metrics: Metrics;
  readonly log: Logger;
  now(): number;
  random(): number;
  /** Which ranges this node still rebuilds after losing its data (rebuild.ts); exchanges advance it. */
  readonly rebuild?: ReplicaRebuild;
  /** Called once the rebuild is complete. */
  onRebuilt?(): void;
}
