// Builders shared by the port suites.
import type { PromptDraft, RuleEvent } from '../../rules/types.js';
import type { RenderedText } from '../../ingest/store/ports.js';

export const VIN_A = 'LSVAU2180N2183294';
export const VIN_B = 'LSVAU2180N2183295';
export const T0 = Date.parse('2026-03-01T08:00:00Z');
export const HOUR = 3_600_000;

export function draft(over: Partial<PromptDraft> = {}): PromptDraft {
  return {
    kind: 'charging.low_soc',
    dedupKey: 'charging.low_soc',
    severity: 'warning',
    audience: ['hmi', 'lifecycle'],
    urgent: false,
    ts: T0,
    evidence: { soc: 18 },
    params: { soc: 18 },
    ...over,
  };
}

export const open = (over: Partial<PromptDraft> = {}): RuleEvent => ({ type: 'open', prompt: draft(over) });
export const resolveEv = (dedupKey: string, ts = T0): RuleEvent => ({ type: 'resolve', dedupKey, ts, reason: 'situation ended' });

export const render = (d: PromptDraft): RenderedText => ({ title: `title ${d.kind}`, body: `body ${d.dedupKey}`, locale: 'en' });
