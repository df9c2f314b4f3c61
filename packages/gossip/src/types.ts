export type MemberState = "alive" | "suspect" | "dead" | "left";

export const MEMBER_STATES: readonly MemberState[] = ["alive", "suspect", "dead", "left"];

/**
 * A member's place in the ring, separate from its liveness: `joining` (receiving its ranges, not yet
 * an owner), `normal` (an owner), `leaving` (an owner handing its ranges over), `left` (gone after
 * handing over), `removed` (an operator removed it while it was dead). Each member sets its own,
 * except `removed`, which an operator sets about another member and which dominates everything.
 */
export type RingStatus = "joining" | "normal" | "leaving" | "left" | "removed";

export const RING_STATUSES: readonly RingStatus[] = ["joining", "normal", "leaving", "left", "removed"];

export interface Member {
  readonly id: string;
  readonly address: string;
  readonly state: MemberState;
  readonly incarnation: number;
  readonly ringStatus: RingStatus;
  /** Grows by one with every ring status change this member makes (see `ringSupersedes`). */
  readonly ringVersion: number;
  /** Local time of the last message received directly from this member (undefined for self or if never heard). */
  readonly lastHeardAt: number | undefined;
  /** Local time at which this member's state last changed in this node's view. */
  readonly stateChangedAt: number;
}

/** One membership fact as gossiped: "member `id` at `address` is in `state` at `incarnation`". */
export interface MemberUpdate {
  readonly id: string;
  readonly address: string;
  readonly state: MemberState;
  readonly incarnation: number;
  readonly ringStatus: RingStatus;
  readonly ringVersion: number;
}

/** Who sent a message: the sender's own id, advertised address, current incarnation and ring status. */
export interface SenderInfo {
  readonly id: string;
  readonly address: string;
  readonly incarnation: number;
  readonly ringStatus: RingStatus;
  readonly ringVersion: number;
}

interface MessageBase {
  /** Sender-chosen sequence number (uint32); an ack echoes the seq of the ping it answers. */
  readonly seq: number;
  readonly from: SenderInfo;
  /**
   * Piggybacked membership updates. For sync-request/sync-response this is the sender's full
   * membership table instead (push-pull anti-entropy).
   */
  readonly updates: readonly MemberUpdate[];
}

/** Direct probe. `targetId` lets a node that reuses another's address refuse to answer for it. */
export interface PingMessage extends MessageBase {
  readonly type: "ping";
  readonly targetId: string;
}

/** Answer to a ping (direct), or relayed by a ping-req helper back to the requester (seq = requester's). */
export interface AckMessage extends MessageBase {
  readonly type: "ack";
}

/** Ask the recipient to ping `target` and relay the ack back with this message's seq. */
export interface PingReqMessage extends MessageBase {
  readonly type: "ping-req";
  readonly target: { readonly id: string; readonly address: string };
}

/** Push-pull: `updates` carries the sender's full state; the recipient merges it and answers with its own. */
export interface SyncRequestMessage extends MessageBase {
  readonly type: "sync-request";
}

export interface SyncResponseMessage extends MessageBase {
  readonly type: "sync-response";
}

export type GossipMessage = PingMessage | AckMessage | PingReqMessage | SyncRequestMessage | SyncResponseMessage;

export type GossipMessageType = GossipMessage["type"];

export interface Outgoing {
  /** Destination address. */
  readonly to: string;
  readonly message: GossipMessage;
}

export interface MembershipChange {
  readonly member: Member;
  /** State before the change; undefined when the member was not known before. */
  readonly previous: MemberState | undefined;
  /** Ring status before the change; undefined when the member was not known before. */
  readonly previousRingStatus: RingStatus | undefined;
}
