// Membership's view of when the ring settled, for stray-key removal (background/tombstones.ts):
// two real Memberships gossiping in-process over a link the test can cut.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it, vi } from "vitest";
import { jsonLogger } from "../observability/log.js";
import { Metrics } from "../observability/metrics.js";
import { Membership } from "./membership.js";

const SWIM = { protocolPeriodMs: 50, pingTimeoutMs: 20, suspicionTimeoutMs: 200, syncIntervalMs: 200 };

describe("Membership.settledInTouchSince", () => {
  const cleanups: Array<() => void> = [];
  afterEach(() => {
    for (const cleanup of cleanups.splice(0).reverse()) cleanup();
  });

  /** Two members, n1 at address a1 and n2 at a2, whose gossip goes through `link` while it is up. */
  function pair() {
    const link = { up: true };
    const byAddress = new Map<string, Membership>();
    const make = (id: string, address: string, other: { id: string; address: string }) => {
      const dataDir = mkdtempSync(join(tmpdir(), `dynamo-membership-${id}-`));
      const membership = new Membership(
        { nodeId: id, address, dataDir, vnodes: 8, initialMembers: [other], seeds: [], swim: SWIM },
        async (to, bytes) => {
          if (!link.up) throw new Error("link down");
          queueMicrotask(() => byAddress.get(to)?.receive(bytes));
        },
        new Metrics(),
        jsonLogger(id, () => {}, "silent"),
      );
      byAddress.set(address, membership);
      cleanups.push(() => {
        membership.stop();
        rmSync(dataDir, { recursive: true, force: true });
      });
      return membership;
    };
    const n1 = make("n1", "a1", { id: "n2", address: "a2" });
    const n2 = make("n2", "a2", { id: "n1", address: "a1" });
    return { n1, n2, link };
  }

  it("is undefined until this node has heard from every other member since the ring took its shape, and again once it is cut off", async () => {
    const { n1, n2, link } = pair();
    // A ring of two with nothing in progress: settled from the start, but not heard from n2 yet.
    expect(n1.settledSince).toBeDefined();
    expect(n1.settledInTouchSince).toBeUndefined();
    n1.start();
    n2.start();
    await vi.waitFor(() => expect(n1.settledInTouchSince).toBe(n1.settledSince), { timeout: 5_000, interval: 20 });
    link.up = false;
    await vi.waitFor(() => expect(n1.settledInTouchSince).toBeUndefined(), { timeout: 5_000, interval: 20 });
    // The ring itself has not changed: n2 is suspected or dead, not removed.
    expect(n1.settledSince).toBeDefined();
  });
});
