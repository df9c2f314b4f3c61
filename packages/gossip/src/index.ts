export type {
  AckMessage,
  GossipMessage,
  GossipMessageType,
  Member,
  MemberState,
  MembershipChange,
  RingStatus,
  MemberUpdate,
  Outgoing,
  PingMessage,
  PingReqMessage,
  SenderInfo,
  SyncRequestMessage,
  SyncResponseMessage,
} from "./types.js";
export { defaultSwimConfig, validateSwimConfig, type SwimConfig } from "./config.js";
export { GossipConfigError, GossipDecodeError, GossipEncodeError } from "./errors.js";
export { encodeMessage, decodeMessage } from "./codec.js";
export { MEMBER_STATES, RING_STATUSES } from "./types.js";
export { ringSupersedes, supersedes, type RingVersioned } from "./precedence.js";
export { MAX_ADDRESS_BYTES, MAX_ID_BYTES, MAX_SYNC_MEMBERS } from "./validate.js";
export { Swim, type SwimOptions, type SwimStats } from "./swim.js";
export { Simulation, mulberry32, type SimulationOptions, type SimulationNodeOptions } from "./simulation.js";
