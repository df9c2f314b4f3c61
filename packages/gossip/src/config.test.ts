import { describe, expect, it } from "vitest";
import { defaultSwimConfig, resolveSwimConfig, validateSwimConfig, type SwimConfig } from "./config.js";
import { GossipConfigError } from "./errors.js";

describe("config", () => {
  it("has the documented defaults, which are valid", () => {
    expect(defaultSwimConfig).toEqual({
      protocolPeriodMs: 1000,
      pingTimeoutMs: 300,
      indirectChecks: 3,
      suspicionTimeoutMs: 5000,
      retransmitMult: 4,
      maxPiggyback: 8,
      syncIntervalMs: 10_000,
    });
    expect(() => validateSwimConfig(defaultSwimConfig)).not.toThrow();
  });

  it.each<[Partial<SwimConfig>, RegExp]>([
    [{ protocolPeriodMs: 0 }, /^protocolPeriodMs must be an integer in 1\.\.86400000, got 0$/],
    [{ pingTimeoutMs: 1000 }, /pingTimeoutMs \(1000\) must be less than protocolPeriodMs \(1000\)/],
    [{ indirectChecks: -1 }, /indirectChecks/],
    [{ suspicionTimeoutMs: Number.NaN }, /suspicionTimeoutMs must be an integer/],
    [{ retransmitMult: 0 }, /retransmitMult/],
    [{ maxPiggyback: 1000 }, /maxPiggyback must be an integer in 1\.\.256/],
    [{ syncIntervalMs: 1.5 }, /syncIntervalMs/],
  ])("rejects %o with a one-line reason", (override, reason) => {
    const config = { ...defaultSwimConfig, ...override };
    expect(() => validateSwimConfig(config)).toThrow(GossipConfigError);
    expect(() => validateSwimConfig(config)).toThrow(reason);
  });

  it("fills in defaults and rejects unknown keys", () => {
    expect(resolveSwimConfig({ indirectChecks: 5 })).toEqual({ ...defaultSwimConfig, indirectChecks: 5 });
    expect(() => resolveSwimConfig({ pingTimeout: 3 } as unknown as Partial<SwimConfig>)).toThrow(/unknown gossip config key "pingTimeout"/);
  });
});
