// fault.dtc: a new active code prompts once; the prompt resolves when the code clears.
// A later recurrence after clearing is a new situation (occurrence counter in the dedup key).
import { describeDtc } from '../dtc-catalogue.js';
import type { FaultConfig } from '../config/fault.js';
import type { Audience, Detector, DetectorContext, DetectorResult, Reading, RuleEvent, Severity } from '../types.js';

const NONE = Object.freeze([]) as unknown as RuleEvent[];

export interface FaultState {
  /** Active code -> dedup key of its open prompt ('' when the code is ignored). */
  active: Record<string, string>;
  /** How many times each code has become active. */
  occurrences: Record<string, number>;
}

const AUDIENCE: Record<Severity, Audience[]> = {
  critical: ['hmi', 'advisor'],
  warning: ['hmi', 'advisor'],
  info: ['advisor'],
};
const VALUE: Record<Severity, number> = { critical: 100, warning: 50, info: 10 };

function unchanged(active: Record<string, string>, dtcs: readonly string[]): boolean {
  let n = 0;
  for (const k in active) {
    n++;
    if (!dtcs.includes(k)) return false;
  }
  return n === new Set(dtcs).size;
}

function onReading(state: FaultState, r: Reading, ctx: DetectorContext<FaultConfig>): DetectorResult<FaultState> {
  const dtcs = r.dtcs;
  // No list in this reading = not reported, not "all cleared".
  if (dtcs === undefined || unchanged(state.active, dtcs)) return { state, events: NONE };
  const events: RuleEvent[] = [];
  const active: Record<string, string> = {};
  const occurrences = { ...state.occurrences };
  for (const code of dtcs) {
    if (Object.hasOwn(active, code)) continue;
    if (Object.hasOwn(state.active, code)) {
      active[code] = state.active[code];
      continue;
    }
    const info = describeDtc(code, ctx.config.severityOverrides);
    if (!info) continue; // not an SAE J2012 code: validated upstream, ignored here
    if (ctx.config.ignore.includes(code)) {
      active[code] = '';
      continue;
    }
    const n = (occurrences[code] ?? 0) + 1;
    occurrences[code] = n;
    const key = `${ctx.vin}:fault.dtc:${code}:${n}`;
    active[code] = key;
    events.push({
      type: 'open',
      prompt: {
        kind: 'fault.dtc',
        dedupKey: key,
        severity: info.severity,
        audience: AUDIENCE[info.severity],
        urgent: info.severity === 'critical',
        ts: r.ts,
        evidence: { code, activeDtcs: [...dtcs], ts: r.ts, system: info.system, generic: info.generic },
        params: { code, system: info.system, severity: info.severity },
        value: VALUE[info.severity],
      },
    });
  }
  for (const [code, key] of Object.entries(state.active)) {
    if (!Object.hasOwn(active, code) && key) events.push({ type: 'resolve', dedupKey: key, ts: r.ts, reason: 'code_cleared' });
  }
  return { state: { active, occurrences }, events: events.length ? events : NONE };
}

export const faultDetector: Detector<FaultState, FaultConfig> = {
  family: 'fault',
  initial: () => ({ active: {}, occurrences: {} }),
  onReading,
};
