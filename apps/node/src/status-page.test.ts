// The admin port's status page in a real browser: Debian's Chromium driven by
// playwright-core loads the page of one node of a real 3-node cluster, reads
// its members and groups tables, looks keys up through the box, sees a killed
// peer's breaker open, and saves a screenshot as a CI artifact (outside the
// repository: $DISTCACHE_ARTIFACTS or the temp dir; the path is printed).
import { existsSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { CacheService } from "@distcache/transport-connect";
import { type BrowserContext, chromium } from "playwright-core";
import { afterAll, describe, expect, it } from "vitest";
import { freePorts } from "../../../scripts/lib/ports.mjs";
import { adminOf, startNode } from "./node-process.test-util.js";

const CHROMIUM = "/usr/bin/chromium";
const missing = existsSync(CHROMIUM)
  ? undefined
  : `${CHROMIUM} not found (apt-get install chromium)`;
if (missing !== undefined) {
  if (process.env.CI === "true") throw new Error(`${missing}; CI must run the browser test`);
  console.warn(`SKIP status page browser test: ${missing}`);
}

const profile = mkdtempSync(path.join(tmpdir(), "distcache-chromium-"));
let context: BrowserContext | undefined;
afterAll(async () => {
  await context?.close();
  rmSync(profile, { recursive: true, force: true });
});

describe.skipIf(missing !== undefined)("the status page in Chromium", () => {
  it("shows 3 members and the group, looks keys up, shows a dead peer's breaker open", async () => {
    const ports = await freePorts(3);
    const peers = ports.map((port) => `127.0.0.1:${port}`);
    const nodes = await Promise.all(ports.map((port) => startNode(port, peers)));
    const admin = adminOf(nodes[0]!);
    expect(admin).toMatch(/^127\.0\.0\.1:\d+$/);

    context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      args: [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
      ],
      viewport: { width: 1100, height: 760 },
    });
    const page = context.pages()[0] ?? (await context.newPage());
    const problems: string[] = [];
    page.on("pageerror", (error) => problems.push(error.message));
    page.on("console", (message) => {
      if (message.type() === "error") problems.push(message.text());
    });
    await page.goto(`http://${admin}/`);

    const members = page.locator("#members tr");
    await expect.poll(() => members.count(), { timeout: 15_000 }).toBe(3);
    const memberRows = await members.evaluateAll((rows) =>
      rows.map((row) => [...row.querySelectorAll("td")].map((td) => td.textContent ?? "")),
    );
    // One row per member (in the page's order): this node as "self", the others' breakers closed.
    const self = nodes[0]!.address;
    expect(memberRows.map((row) => [row[0], row[1]]).sort()).toEqual(
      peers
        .map((peer) => (peer === self ? [`${peer} (this node)`, "self"] : [peer, "closed"]))
        .sort(),
    );
    const groupRows = await page
      .locator("#groups tr")
      .evaluateAll((rows) => rows.map((row) => row.querySelector("td")?.textContent));
    expect(groupRows).toEqual(["scores"]);

    const lookup = async (key: string) => {
      await page.fill("#group", "scores");
      await page.fill("#key", key);
      await page.click("button[type=submit]");
      await expect.poll(() => page.textContent("#result"), { timeout: 10_000 }).not.toBe("…");
      return page.textContent("#result");
    };
    expect(await lookup("Tom")).toContain("found: true");
    expect(await page.textContent("#result")).toContain("preview: 630");
    const notFound = await lookup("nobody");
    expect(notFound).toContain("found: false");
    expect(notFound).toContain("key not found: nobody");

    // Kill the third node; Gets through the first one of keys it owns fail
    // until its breaker opens, and the page (polling every 2 s) shows it.
    const dead = nodes[2]!;
    dead.child.kill("SIGKILL");
    await dead.exited;
    const client = createClient(
      CacheService,
      createGrpcTransport({ baseUrl: `http://${nodes[0]!.address}` }),
    );
    for (let i = 0; i < 30; i++) {
      await client.get({ group: "scores", key: `k${i}` }, { timeoutMs: 3_000 }).catch(() => {});
    }
    const deadRow = page.locator("#members tr", { hasText: dead.address });
    await expect
      .poll(() => deadRow.locator("td").nth(1).textContent(), { timeout: 15_000 })
      .toMatch(/^(open|half-open)$/);

    const artifacts = process.env.DISTCACHE_ARTIFACTS ?? path.join(tmpdir(), "distcache-artifacts");
    mkdirSync(artifacts, { recursive: true });
    const screenshot = path.join(artifacts, "status-page.png");
    await page.screenshot({ path: screenshot, fullPage: true });
    console.log(`status page screenshot: ${screenshot}`);
    expect(problems).toEqual([]);
  }, 90_000);
});
