// Outbound CloudEvents carry no position unless a purpose for it is configured; with one, the
// purpose travels in each event that carries position.
import { describe, expect, it } from 'vitest';
import { eventsForChanges } from '../../ingest/outbound/cloudevents.js';
import type { PromptChange } from '../../ingest/store/ports.js';
import { VSS } from '../../proto/signals.js';

const change = (evidence: Record<string, unknown>): PromptChange => ({
  seq: 7,
  promptId: 'p_abc',
  vin: 'LSVAU2180N2183294',
  dealerId: 'D1',
  step: 'created',
  at: '2026-03-01T08:00:00.000Z',
  by: 'system',
  prompt: {
    id: 'p_abc',
    vin: 'LSVAU2180N2183294',
    kind: 'charging.critical_soc',
    audience: ['hmi', 'advisor', 'lifecycle'],
    severity: 'critical',
    status: 'open',
    title: 't',
    body: 'b',
    locale: 'en',
    dedupKey: 'k',
    evidence,
    createdAt: '2026-03-01T08:00:00.000Z',
    updatedAt: '2026-03-01T08:00:00.000Z',
    outcome: null,
    urgent: true,
    value: 1,
    expiresAt: null,
    hmiState: 'pending',
    dealerId: 'D1',
    acknowledgedBy: null,
    resolvedBy: null,
    note: null,
  },
});

const data = (e: { body: string }) => (JSON.parse(e.body) as { data: Record<string, unknown> }).data;
const EVIDENCE = { soc: 6, [VSS.latitude]: 31.2, [VSS.longitude]: 121.5 };

describe('position in outbound events', () => {
  it('is dropped by default, whatever else the evidence holds', () => {
    const [e] = eventsForChanges([change(EVIDENCE)], ['http://crm.test/hook']);
    expect(data(e).evidence).toEqual({ soc: 6 });
    expect(data(e).positionPurpose).toBeUndefined();
    expect(e.body).not.toContain('31.2');
  });

  it('is kept with its stated purpose when one is configured; events without position are unchanged', () => {
    const policy = { urls: ['http://crm.test/hook'], positionPurpose: 'roadside assistance dispatch' };
    const [e] = eventsForChanges([change(EVIDENCE)], policy);
    expect(data(e)).toMatchObject({ evidence: EVIDENCE, positionPurpose: 'roadside assistance dispatch' });
    const [plain] = eventsForChanges([change({ soc: 6 })], policy);
    expect(data(plain).positionPurpose).toBeUndefined();
  });
});
