// The console's campaigns page in a real Chromium against buildApp on a real port
// (docs/contract.md#campaigns): a lifecycle key sees the campaigns link, the list with live counts,
// one campaign's funnel chart (uPlot) and per-segment table, in English and Chinese, updating live
// when an HMI ack arrives; an advisor gets no link (and the API refuses it). Runs under the CSP.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PACKAGE_ROOT } from '../../proto/paths.js';
import { hasChromium, launchChromium, CHROMIUM_PATH } from '../support/chromium.js';
import { waitFor } from '../support/wait.js';
import { makeHarness, profile, VIN_A, VIN_B, VIN_C, type Harness } from '../unit/http/harness.js';

const ARTIFACTS = join(PACKAGE_ROOT, 'test-artifacts');
const DAY = 86_400_000;
const DEALER = 'SH-PUDONG-01';

if (!hasChromium()) console.warn(`[campaigns.test] SKIPPED: no Chromium at ${CHROMIUM_PATH}; the browser test needs it.`);

describe.skipIf(!hasChromium())('campaigns page in Chromium', () => {
  let h: Harness;
  let base: string;
  let browser: Browser;
  let page: Page;
  let campaignId: string;
  const pageErrors: string[] = [];

  beforeAll(async () => {
    h = await makeHarness();
    h.clock.set(Date.now());
    await h.app.listen({ host: '127.0.0.1', port: 0 });
    const addr = h.app.server.address();
    if (!addr || typeof addr === 'string') throw new Error('no address');
    base = `http://127.0.0.1:${addr.port}`;
    const now = h.clock.now();
    for (const [vin, locale] of [
      [VIN_A, 'en'],
      [VIN_B, 'zh-CN'],
      [VIN_C, 'en'],
    ] as const) {
      await h.stores.vehicles.upsert(vin, profile(DEALER, { locale }), now);
      await h.stores.vehicles.setSegments(
        vin,
        { stage: 'new_owner', activity: 'active', maturity: vin === VIN_C ? 'skilled' : 'novice' },
        now,
      );
    }
    const res = await fetch(`${base}/api/v1/campaigns`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...h.authHeader },
      body: JSON.stringify({
        name: 'New-owner camp',
        audience: { stage: ['new_owner'] },
        message: { en: { title: 'New-owner camp', body: 'Saturday morning' }, 'zh-CN': { title: '新车主训练营', body: '周六上午' } },
        actions: [{ id: 'join', label: { en: 'Sign up', 'zh-CN': '报名' } }],
        startsAt: new Date(now - DAY).toISOString(),
        endsAt: new Date(now + 30 * DAY).toISOString(),
      }),
    });
    expect(res.status).toBe(201);
    campaignId = ((await res.json()) as { id: string }).id;
    const [a, b] = await h.stores.campaigns.deliveries(campaignId);
    await h.deps.changes.record!(async () => [
      (await h.stores.prompts.markHmiDelivered(a.promptId, a.vin, now))!,
      (await h.stores.prompts.markHmiDelivered(b.promptId, b.vin, now))!,
    ]);
    await h.deps.changes.record!(async () => [(await h.stores.prompts.recordHmiAck(a.promptId, a.vin, 'ACTED', now))!]);

    browser = await launchChromium();
    page = await browser.newPage({ viewport: { width: 1280, height: 900 }, locale: 'en-US' });
    page.on('pageerror', (e) => pageErrors.push(String(e)));
    page.on('console', (m) => {
      if (m.type() === 'error' && /Content Security Policy|Refused to/i.test(m.text())) pageErrors.push(m.text());
    });
    mkdirSync(ARTIFACTS, { recursive: true });
  });

  afterAll(async () => {
    await browser?.close();
    await h?.close();
  });

  it('a lifecycle key sees the campaigns link and the list with live counts', async () => {
    await page.goto(base + '/');
    await page.fill('[data-testid="signin-key"]', await h.keyFor('lifecycle'));
    await page.click('[data-testid="signin-submit"]');
    await page.locator('[data-testid="nav-campaigns"]').waitFor();
    await page.click('[data-testid="nav-campaigns"]');
    const row = page.locator(`[data-testid="campaign-row"][data-campaign-id="${campaignId}"]`);
    await row.waitFor();
    expect(await row.locator('[data-testid="campaign-status"]').textContent()).toBe('Running');
    expect(await row.locator('[data-testid="count-targeted"]').textContent()).toBe('3');
    expect(await row.locator('[data-testid="count-delivered"]').textContent()).toBe('2');
    expect(await row.locator('[data-testid="count-acted"]').textContent()).toBe('1');
  });

  it("shows one campaign's funnel chart and segments, and follows an ack live", async () => {
    await page.click(`[data-testid="campaign-row"][data-campaign-id="${campaignId}"] a`);
    await page.locator('[data-testid="funnel-chart"] canvas').waitFor();
    expect(await page.locator('[data-testid="funnel-delivered"]').textContent()).toBe('2');
    expect(await page.locator('[data-testid="funnel-conversion"]').textContent()).toBe('50 %');
    expect(await page.locator('[data-testid="segment-row"]').count()).toBe(2);
    // the chart has drawn bars: the canvas is not blank
    const painted = await page.locator('[data-testid="funnel-chart"] canvas').evaluate((c) => {
      const cv = c as HTMLCanvasElement;
      const px = cv.getContext('2d')!.getImageData(0, 0, cv.width, cv.height).data;
      let n = 0;
      for (let i = 3; i < px.length; i += 4) if (px[i] > 0) n++;
      return n;
    });
    expect(painted).toBeGreaterThan(1000);
    await page.screenshot({ path: join(ARTIFACTS, 'console-campaign.png'), fullPage: true });

    const b = (await h.stores.campaigns.deliveries(campaignId)).find((d) => d.vin === VIN_B)!;
    await h.deps.changes.record!(async () => [(await h.stores.prompts.recordHmiAck(b.promptId, b.vin, 'ACTED', h.clock.now()))!]);
    await waitFor(async () => (await page.locator('[data-testid="funnel-acted"]').textContent()) === '2', {
      what: 'the funnel updated live',
    });
    expect(await page.locator('[data-testid="funnel-conversion"]').textContent()).toBe('100 %');
  });

  it('speaks Chinese', async () => {
    await page.click('[data-testid="lang-zh"]');
    await waitFor(async () => (await page.locator('[data-testid="campaign-status"]').first().textContent()) === '进行中', {
      what: 'the page in Chinese',
    });
    expect(await page.locator('[data-testid="campaign-funnel"]').textContent()).toContain('已送达');
    await page.locator('[data-testid="funnel-chart"] canvas').waitFor();
    await page.screenshot({ path: join(ARTIFACTS, 'console-campaign-zh.png'), fullPage: true });
    await page.click('[data-testid="lang-en"]');
  });

  it('pause from the page withdraws the unseen message', async () => {
    await page.click('[data-testid="campaign-pause"]');
    await page.locator('[data-testid="campaign-resume"]').waitFor();
    expect((await h.stores.campaigns.get(campaignId))!.state).toBe('paused');
    expect(await page.locator('[data-testid="funnel-withdrawn"]').textContent()).toBe('1');
  });

  it('an advisor gets no campaigns link; the page under its key only says it may not', async () => {
    const ctx = await browser.newContext({ viewport: { width: 1280, height: 900 }, locale: 'en-US' });
    const p2 = await ctx.newPage();
    await p2.goto(base + '/');
    await p2.fill('[data-testid="signin-key"]', await h.keyFor('advisor', [DEALER]));
    await p2.click('[data-testid="signin-submit"]');
    await p2.locator('[data-testid="alerts-view"]').waitFor();
    expect(await p2.locator('[data-testid="nav-campaigns"]').isHidden()).toBe(true);
    await p2.goto(base + '/#/campaigns');
    await p2.locator('[data-testid="campaigns-error"]').waitFor();
    await ctx.close();
    expect(pageErrors).toEqual([]);
  });
});
