import { GossipConfigError } from "./errors.js";

export interface SwimConfig {
  /** Length of one protocol period: one member is probed per period. */
  protocolPeriodMs: number;
  /** How long to wait for a direct ack before asking others to probe (must be < protocolPeriodMs). */
  pingTimeoutMs: number;
  /** k: how many other members are asked to probe indirectly (ping-req). */
  indirectChecks: number;
  /** Base suspicion timeout; scaled up by log10(cluster size) for clusters above 10 members. */
  suspicionTimeoutMs: number;
  /** Each update is retransmitted at most retransmitMult * ceil(log2(n + 1)) times. */
  retransmitMult: number;
  /** Maximum number of piggybacked updates per ping/ack/ping-req. */
  maxPiggyback: number;
  /** Interval of the push-pull full-state exchange with one random member. */
  syncIntervalMs: number;
}

export const defaultSwimConfig: SwimConfig = Object.freeze({
  protocolPeriodMs: 1000,
  pingTimeoutMs: 300,
  indirectChecks: 3,
  suspicionTimeoutMs: 5000,
  retransmitMult: 4,
  maxPiggyback: 8,
  syncIntervalMs: 10_000,
});

/** Upper bound on piggybacked updates per message, shared with the codec's decode limit. */
export const MAX_PIGGYBACK_LIMIT = 256;

function requireInteger(c: SwimConfig, key: keyof SwimConfig, min: number, max: number): void {
  const value: unknown = c[key];
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value < min || value > max) {
    throw new GossipConfigError(`${key} must be an integer in ${min}..${max}, got ${String(value)}`);
  }
}

/** Throws GossipConfigError with a one-line reason when the configuration is unusable. */
export function validateSwimConfig(c: SwimConfig): void {
  if (typeof c !== "object" || c === null) {
    throw new GossipConfigError("gossip config must be an object");
  }
  const day = 86_400_000;
  requireInteger(c, "protocolPeriodMs", 1, day);
  requireInteger(c, "pingTimeoutMs", 1, day);
  requireInteger(c, "indirectChecks", 0, 64);
  requireInteger(c, "suspicionTimeoutMs", 1, day);
  requireInteger(c, "retransmitMult", 1, 64);
  requireInteger(c, "maxPiggyback", 1, MAX_PIGGYBACK_LIMIT);
  requireInteger(c, "syncIntervalMs", 1, 365 * day);
  if (c.pingTimeoutMs >= c.protocolPeriodMs) {
    throw new GossipConfigError(
      `pingTimeoutMs (${c.pingTimeoutMs}) must be less than protocolPeriodMs (${c.protocolPeriodMs}) to leave time for indirect probes`,
    );
  }
}

/** Fills in defaults for missing keys and validates the result. */
export function resolveSwimConfig(partial: Partial<SwimConfig> | undefined): SwimConfig {
  const merged: SwimConfig = { ...defaultSwimConfig };
  for (const [key, value] of Object.entries(partial ?? {})) {
    if (!(key in defaultSwimConfig)) {
      throw new GossipConfigError(`unknown gossip config key "${key}"`);
    }
    if (value !== undefined) {
      (merged as unknown as Record<string, unknown>)[key] = value;
    }
  }
  validateSwimConfig(merged);
  return merged;
}
