// The /ui dashboard in a real browser (Debian's Chromium driven by playwright-core) against a
// real 3-node cluster: it shows three alive members, shows a node killed with SIGKILL as dead
// once gossip declares it so, and its throughput chart moves while a load runs. The page makes
// no request to any other origin. Saves docs/dashboard.png (the README shows it) when
// DASHBOARD_SCREENSHOT=1.
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { type Browser, chromium, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TEST_SECRET, TestCluster } from "../test-support/cluster.js";

const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
const SCREENSHOT = fileURLToPath(new URL("../../../../docs/dashboard.png", import.meta.url));
const SUITE = "the /ui dashboard in Chromium";
const missing = existsSync(CHROMIUM) ? undefined : `${CHROMIUM} not found; install it: apt-get install -y chromium`;
if (missing) {
  if (process.env.CI === "true") throw new Error(`integration suite "${SUITE}" cannot run on CI: ${missing}`);
  console.warn(`[integration] skipping "${SUITE}": ${missing}`);
}

describe.skipIf(missing !== undefined)(SUITE, () => {
  let cluster: TestCluster;
  let browser: Browser;
  let page: Page;
  const foreignRequests: string[] = [];
  const pageErrors: string[] = [];

  beforeAll(async () => {
    cluster = await TestCluster.start({ nodes: 3, args: ["--gossip-interval-ms", "200", "--gossip-suspicion-ms", "1000"] });
    // Playwright gives the browser a fresh temporary profile of its own, and removes it on close.
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: [
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
      ],
    });
    page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    const origin = `http://${cluster.nodes[0]!.address}`;
    page.on("request", (req) => {
      if (!req.url().startsWith(origin) && !req.url().startsWith("data:")) foreignRequests.push(req.url());
    });
    page.on("pageerror", (err) => pageErrors.push(String(err)));
    await page.goto(`${origin}/ui`);
  }, 90_000);

  afterAll(async () => {
    await browser?.close();
    await cluster?.stop();
  });

  const stateOf = (node: string) => page.locator(`#members tbody tr[data-node="${node}"]`).getAttribute("data-state");

  it("asks for admin credentials before it shows the node's state", async () => {
    await page.locator("#login").waitFor({ state: "visible", timeout: 30_000 });
    expect(await page.locator("#members tbody tr[data-node]").count()).toBe(0);
    await page.fill("#credential", "not-the-secret-at-all-0123456789");
    await page.click("#login button");
    await page.locator("#login-error", { hasText: "unknown or expired" }).waitFor({ timeout: 30_000 });
    await page.fill("#credential", TEST_SECRET);
    await page.click("#login button");
    await page.locator("#login").waitFor({ state: "hidden", timeout: 30_000 });
  }, 60_000);

  it("shows three alive members and each node's share of the ring", async () => {
    // Locators and polls only: the page's Content-Security-Policy forbids evaluating strings in it.
    await page.locator('#members tbody tr[data-state="alive"]').nth(2).waitFor({ timeout: 30_000 });
    expect(await page.locator("#members-count").textContent()).toBe("3 of 3 alive");
    expect(await page.locator("#ring .bar").count()).toBe(3);
    expect(await page.locator("#readiness").textContent()).toBe("serving");
  }, 60_000);

  it("moves its throughput chart while a load runs", async () => {
    let loading = true;
    const node = cluster.nodes[0]!;
    const load = (async () => {
      for (let i = 0; loading; i++) {
        await fetch(`http://${node.address}/kv/ui-${i % 20}`, { method: "PUT", body: `v${i}` });
        await fetch(`http://${node.address}/kv/ui-${i % 20}`);
      }
    })();
    try {
      await expect.poll(async () => Number(await page.locator("#throughput-total").textContent()), { timeout: 30_000 }).toBeGreaterThan(0);
      // A line of several samples: the chart is redrawn from each new scrape.
      await expect
        .poll(async () => ((await page.locator('#throughput-chart polyline[data-series="http_PUT"]').getAttribute("points")) ?? "").split(" ").length, {
          timeout: 30_000,
        })
        .toBeGreaterThanOrEqual(3);
      expect(await page.locator("#latency-legend li").count()).toBeGreaterThan(0);
      if (process.env.DASHBOARD_SCREENSHOT === "1") await page.screenshot({ path: SCREENSHOT, fullPage: true });
    } finally {
      loading = false;
      await load;
    }
  }, 60_000);

  it("shows a node killed with SIGKILL as dead", async () => {
    const victim = cluster.nodes[2]!;
    await victim.kill();
    await page.locator(`#members tbody tr[data-node="${victim.id}"][data-state="dead"]`).waitFor({ timeout: 30_000 });
    expect(await stateOf(victim.id)).toBe("dead");
    expect(await page.locator("#members-count").textContent()).toBe("2 of 3 alive");
  }, 60_000);

  it("made no request outside the node and raised no script error", () => {
    expect(foreignRequests).toEqual([]);
    expect(pageErrors).toEqual([]);
  });
});
