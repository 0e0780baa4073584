// The advisor console in a real Chromium against buildApp on a real port: sign in with an
// advisor's key, see only that dealer's alerts, see a prompt arrive live, acknowledge and resolve
// it (checked in the store), open the vehicle page with its charts, switch language (with real
// CJK glyphs, not boxes), sign out; the page runs under the server's CSP with no violation.
// Screenshots go to test-artifacts/.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PACKAGE_ROOT } from '../../proto/paths.js';
import { VSS } from '../../proto/signals.js';
import { hasChromium, launchChromium, CHROMIUM_PATH } from '../support/chromium.js';
import { waitFor } from '../support/wait.js';
import { makeHarness, profile, VIN_A, VIN_B, VIN_C, type Harness } from '../unit/http/harness.js';

const ARTIFACTS = join(PACKAGE_ROOT, 'test-artifacts');
const HOUR = 3_600_000;
const DAY = 24 * HOUR;

if (!hasChromium()) console.warn(`[console.test] SKIPPED: no Chromium at ${CHROMIUM_PATH}; the browser test needs it.`);

describe.skipIf(!hasChromium())('advisor console in Chromium', () => {
  let h: Harness;
  let base: string;
  let browser: Browser;
  let page: Page;
  let advisorKey: string;
  const pageErrors: string[] = [];
  const now = Date.now();

  beforeAll(async () => {
    h = await makeHarness();
    // Prompts and readings on today's clock, so ages read "5 min ago", not months.
    h.clock.set(now - 40 * 60_000);
    await h.app.listen({ host: '127.0.0.1', port: 0 });
    const addr = h.app.server.address();
    if (!addr || typeof addr === 'string') throw new Error('no address');
    base = `http://127.0.0.1:${addr.port}`;

    // Register through the API, as a dealer system would.
    for (const [vin, p] of [
      [VIN_A, profile('SH-PUDONG-01', { model: 'Aurora EV Long Range' })],
      [VIN_B, profile('SH-PUDONG-01', { model: 'Aurora PHEV', powertrain: 'PHEV', locale: 'zh-CN' })],
      [VIN_C, profile('BJ-CHAOYANG-02')],
    ] as const) {
      const res = await fetch(`${base}/api/v1/vehicles/${vin}`, {
        method: 'PUT',
        headers: { 'content-type': 'application/json', ...h.authHeader },
        body: JSON.stringify(p),
      });
      expect(res.status).toBe(201);
    }
    // 30 days of readings for the charts: odometer climbs, SOC cycles, 12 V sags at the end.
    const readings = [];
    for (let t = now - 30 * DAY, i = 0; t < now - HOUR; t += 3 * HOUR, i++) {
      readings.push({
        vin: VIN_A,
        ts: t,
        signals: {
          [VSS.odometer]: 3800 + i * 2.9,
          [VSS.soc]: 25 + ((i * 7) % 70),
          [VSS.voltage12v]: 12.6 - (i > 220 ? (i - 220) * 0.02 : 0),
        },
      });
    }
    await h.telemetry.write(readings, () => ({}));
    await h.stores.vehicles.setOnline(VIN_A, true, { agentVersion: '0.1.0', configVersion: 3, at: now - 2 * HOUR });
    await h.stores.vehicles.setSegments(VIN_A, { stage: 'active_owner', activity: 'active', maturity: 'skilled' }, now - DAY);

    // Some history already in the store before the advisor opens the console.
    h.clock.set(now - 35 * 60_000);
    await h.openPrompt(VIN_B, {
      key: 'maint',
      kind: 'maintenance.upcoming',
      severity: 'info',
      audience: ['hmi', 'advisor', 'lifecycle'],
      title: '保养即将到期',
      body: '距离下次保养还有 620 km 或 21 天，建议预约。',
      locale: 'zh-CN',
      evidence: { 'Vehicle.TraveledDistance': 9380 },
    });
    h.clock.set(now - 12 * 60_000);
    await h.openPrompt(VIN_A, {
      key: '12v',
      kind: 'battery.low_voltage_12v',
      severity: 'warning',
      title: '12 V battery low while parked',
      body: '12 V battery at 11.6 V while parked: risk of a no-start. Suggest a battery check.',
      evidence: { 'Vehicle.LowVoltageBattery.CurrentVoltage': 11.6 },
    });
    await h.openPrompt(VIN_C, { key: 'other', title: 'Other dealer alert' });
    h.clock.set(now);

    advisorKey = await h.keyFor('advisor', ['SH-PUDONG-01']);
    browser = await launchChromium();
    page = await browser.newPage({ viewport: { width: 1280, height: 860 }, locale: 'en-US' });
    page.on('pageerror', (e) => pageErrors.push(String(e)));
    // a CSP violation is reported on the console: the page must run under the server's policy as is
    page.on('console', (m) => {
      if (m.type() === 'error' && /Content Security Policy|Refused to/i.test(m.text())) pageErrors.push(m.text());
    });
    mkdirSync(ARTIFACTS, { recursive: true });
  });

  afterAll(async () => {
    await browser?.close();
    await h?.close();
  });

  const item = (id: string) => page.locator(`[data-testid="alert-item"][data-prompt-id="${id}"]`);

  it('asks for a key first; a wrong key is refused with a message; the right one signs in', async () => {
    await page.goto(base + '/');
    await page.locator('[data-testid="signin-view"]').waitFor();
    expect(await page.locator('[data-testid="alerts-view"]').isHidden()).toBe(true);
    // nothing that needs a session shows before sign-in
    expect(await page.locator('[data-testid="dealer-picker"]').isVisible()).toBe(false);
    await page.fill('[data-testid="signin-key"]', 'odp_aaaaaaaaaaaa_' + 'b'.repeat(43));
    await page.click('[data-testid="signin-submit"]');
    await page.locator('[data-testid="signin-error"]').waitFor();
    await page.screenshot({ path: join(ARTIFACTS, 'console-signin.png') });
    expect(await page.locator('[data-testid="signin-error"]').textContent()).toMatch(/Sign-in failed/);
    await page.fill('[data-testid="signin-key"]', advisorKey);
    await page.click('[data-testid="signin-submit"]');
    await page.locator('[data-testid="alerts-view"]').waitFor();
    expect(await page.locator('[data-testid="whoami"]').textContent()).toBe('advisor SH-PUDONG-01 · advisor · SH-PUDONG-01');
    expect(await page.locator('[data-testid="dealer-picker"]').isVisible()).toBe(true);
    // the key is not kept anywhere the page's scripts can read; the session is an httpOnly cookie
    expect(
      await page.evaluate(() => JSON.stringify({ ...window.localStorage }) + JSON.stringify({ ...window.sessionStorage })),
    ).not.toContain(advisorKey.slice(-20));
    expect(await page.evaluate(() => document.cookie)).not.toContain('odopulse_session');
    const cookies = await page.context().cookies();
    expect(cookies.find((c) => c.name === 'odopulse_session')).toMatchObject({ httpOnly: true, sameSite: 'Strict' });
  });

  it('shows only its dealer’s alerts and receives a new one live', async () => {
    // the picker offers the advisor's own dealer only, though three dealers' vehicles exist
    await page.locator('[data-testid="dealer-picker"] option[value="SH-PUDONG-01"]').waitFor({ state: 'attached' });
    const offered = await page
      .locator('[data-testid="dealer-picker"] option')
      .evaluateAll((os) => os.map((o) => (o as HTMLOptionElement).value));
    expect(offered.filter(Boolean)).toEqual(['SH-PUDONG-01']);
    await page.selectOption('[data-testid="dealer-picker"]', 'SH-PUDONG-01');
    await page.locator('[data-testid="connection-status"][data-state="live"]').waitFor();
    await page.fill('[data-testid="advisor-name"]', 'Li Wei');
    await page.locator('[data-testid="advisor-name"]').dispatchEvent('change');

    await waitFor(async () => (await page.locator('[data-testid="alert-item"]').count()) === 2, { what: 'the two alerts of the dealer' });
    await expect(page.locator('[data-testid="alert-list"]').textContent()).resolves.not.toContain('Other dealer alert');

    // The pipeline opens a prompt: store + publish.
    const c = await h.openPrompt(VIN_A, {
      key: 'dtc',
      title: 'Hybrid battery fault P0A80',
      body: 'Code P0A80 (replace hybrid battery pack) is active. Invite the owner for a battery inspection.',
      evidence: { dtc: 'P0A80', 'Vehicle.TraveledDistance': 4531 },
    });
    await item(c.promptId).waitFor();
    await expect(item(c.promptId).locator('[data-testid="alert-severity"]').textContent()).resolves.toBe('Critical');
    await expect(item(c.promptId).locator('[data-testid="alert-age"]').textContent()).resolves.toBe('just now');
    expect(await page.locator('[data-testid="count-critical"] b').textContent()).toBe('1');

    await page.screenshot({ path: join(ARTIFACTS, 'console.png'), fullPage: true });

    await item(c.promptId).locator('[data-testid="ack-button"]').click();
    await waitFor(async () => (await h.stores.prompts.get(c.promptId))?.status === 'acknowledged', {
      what: 'the prompt acknowledged in the store',
    });
    expect((await h.stores.prompts.get(c.promptId))?.acknowledgedBy).toBe(`Li Wei (advisor SH-PUDONG-01, key:${advisorKey.split('_')[1]})`);
    await waitFor(async () => (await item(c.promptId).locator('[data-testid="alert-status"]').textContent()) === 'Acknowledged', {
      what: 'the status shown as Acknowledged',
    });
    await expect(item(c.promptId).locator('[data-testid="ack-button"]').count()).resolves.toBe(0);
  });

  it('resolves an alert with outcome and note', async () => {
    const id = (await h.stores.prompts.list({ vin: VIN_A, kind: 'battery.low_voltage_12v', limit: 1 })).items[0].id;
    await item(id).locator('[data-testid="resolve-button"]').click();
    await page.locator('[data-testid="resolve-dialog"]').waitFor();
    await page.selectOption('[data-testid="resolve-outcome"]', 'booked');
    await page.fill('[data-testid="resolve-note"]', 'Battery check booked for Tuesday 09:00');
    await page.click('[data-testid="resolve-confirm"]');
    await waitFor(async () => (await h.stores.prompts.get(id))?.status === 'resolved', { what: 'the prompt resolved in the store' });
    expect(await h.stores.prompts.get(id)).toMatchObject({
      outcome: 'booked',
      resolvedBy: `Li Wei (advisor SH-PUDONG-01, key:${advisorKey.split('_')[1]})`,
      note: 'Battery check booked for Tuesday 09:00',
    });
    // "Needs action" no longer lists it; "Closed" does, with the audit line.
    await waitFor(async () => (await item(id).count()) === 0, { what: 'the resolved alert gone from "Needs action"' });
    await page.click('[data-testid="filter-resolved"]');
    await waitFor(
      async () => (await item(id).locator('[data-testid="alert-audit"]').textContent())?.includes('Closed by Li Wei (advisor SH-PUDONG-01'),
      {
        what: 'the audit line under "Closed"',
      },
    );
    await page.click('[data-testid="filter-active"]');
  });

  it('opens the vehicle page with profile, status and charts', async () => {
    await page.locator(`[data-testid="vehicle-link"]`, { hasText: VIN_A }).first().click();
    await page.locator('[data-testid="vehicle-view"]').waitFor();
    await waitFor(async () => (await page.locator('[data-testid="vehicle-vin"]').textContent()) === VIN_A, {
      what: 'the vehicle page of VIN_A',
    });
    expect(await page.locator('[data-testid="vehicle-model"]').textContent()).toBe('Aurora EV Long Range');
    expect(await page.locator('[data-testid="vehicle-online"]').textContent()).toContain('Online');
    expect(await page.locator('[data-testid="segment-stage"]').textContent()).toBe('Active owner');
    for (const key of ['odometer', 'soc', 'voltage12v']) await page.locator(`[data-testid="chart-${key}"] canvas`).first().waitFor();
    expect(await page.locator('[data-testid="vehicle-prompts"] [data-testid="alert-item"]').count()).toBe(1);
    // another range: the charts are drawn again for it (vehicle-charts.js), one plot each
    await page.click('[data-testid="chart-range"] [data-range="7d"]');
    await page.locator('[data-testid="chart-range"] [data-range="7d"][aria-selected="true"]').waitFor();
    for (const key of ['odometer', 'soc', 'voltage12v']) await page.locator(`[data-testid="chart-${key}"] canvas`).first().waitFor();
    expect(await page.locator('[data-testid="vehicle-charts"] .uplot').count()).toBe(3);
    await page.click('[data-testid="chart-range"] [data-range="30d"]');
    await page.locator('[data-testid="chart-range"] [data-range="30d"][aria-selected="true"]').waitFor();
    for (const key of ['odometer', 'soc', 'voltage12v']) await page.locator(`[data-testid="chart-${key}"] canvas`).first().waitFor();
    await page.screenshot({ path: join(ARTIFACTS, 'console-vehicle.png'), fullPage: true });
  });

  it('records a service visit from the vehicle page', async () => {
    await page.fill('[data-testid="service-date"]', '2026-11-20');
    await page.fill('[data-testid="service-odometer"]', '4490');
    await page.fill('[data-testid="service-items"]', 'oil change, cabin filter');
    await page.click('[data-testid="service-save"]');
    await waitFor(() => h.serviceCalls.length === 1, { what: 'the service record posted' });
    expect(h.serviceCalls[0]).toEqual({ vin: VIN_A, rec: { date: '2026-11-20', odometer: 4490, items: ['oil change', 'cabin filter'] } });
    await waitFor(async () => (await page.locator('[data-testid="service-list"]').textContent())?.includes('oil change, cabin filter'), {
      what: 'the visit in the service list',
    });
  });

  it('switches to Chinese and back; prompts keep their own text', async () => {
    await page.click('[data-testid="lang-zh"]');
    await waitFor(async () => (await page.evaluate(() => document.documentElement.lang)) === 'zh-CN', { what: 'the page in zh-CN' });
    expect(await page.locator('[data-testid="vehicle-online"]').textContent()).toContain('在线');
    expect(await page.locator('[data-testid="segment-stage"]').textContent()).toBe('活跃车主');
    await page.click('[data-testid="vehicle-back"]');
    await page.locator('[data-testid="alerts-view"]').waitFor();
    expect(await page.locator('[data-testid="filter-active"]').textContent()).toBe('待处理');
    const titles = await page.locator('[data-testid="alert-title"]').allTextContents();
    expect(titles).toContain('Hybrid battery fault P0A80');
    expect(titles).toContain('保养即将到期');
    expect(await page.locator('[data-testid="whoami"]').textContent()).toContain('服务顾问');
    // Chinese text is drawn with real glyphs: a CJK character does not render like an unknown one (a box)
    const glyphs = await page.evaluate(() => {
      const draw = (ch: string) => {
        const c = document.createElement('canvas');
        c.width = 64;
        c.height = 64;
        const g = c.getContext('2d')!;
        g.font = '48px sans-serif';
        g.fillText(ch, 4, 52);
        return c.toDataURL();
      };
      return { bao: draw('保'), yang: draw('养'), missing: draw('\u{10FFFD}') };
    });
    expect(glyphs.bao).not.toBe(glyphs.missing);
    expect(glyphs.bao).not.toBe(glyphs.yang);
    await page.screenshot({ path: join(ARTIFACTS, 'console-zh.png'), fullPage: true });
    await page.click('[data-testid="lang-en"]');
    expect(await page.locator('[data-testid="filter-active"]').textContent()).toBe('Needs action');
  });

  it('signs out: back to the sign-in page, and the old session no longer works', async () => {
    await page.click('[data-testid="sign-out"]');
    await page.locator('[data-testid="signin-view"]').waitFor();
    expect(await page.locator('[data-testid="alerts-view"]').isHidden()).toBe(true);
    const status = await page.evaluate(async () => (await fetch('/api/v1/vehicles')).status);
    expect(status).toBe(401);
    await page.reload();
    await page.locator('[data-testid="signin-view"]').waitFor();
    expect(pageErrors).toEqual([]);
  });
});
