/** Thrown by validateSwimConfig (and the Swim constructor) for an unusable configuration. */
export class GossipConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "GossipConfigError";
  }
}

/** Thrown by decodeMessage for bytes that are not a well-formed gossip message. */
export class GossipDecodeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "GossipDecodeError";
  }
}

/** Thrown by encodeMessage for a message object that does not satisfy the wire format's rules. */
export class GossipEncodeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "GossipEncodeError";
  }
}
