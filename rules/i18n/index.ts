// Localised prompt texts. Each family owns a TextTable; renderPrompt picks by kind + locale.
import type { Locale, PromptDraft, PromptKind } from '../types.js';
import { batteryTexts } from './battery.js';
import { chargingTexts } from './charging.js';
import { faultTexts } from './fault.js';
import { maintenanceTexts } from './maintenance.js';
import { usageTexts } from './usage.js';

export type { PromptParams, RenderedText, TextTable } from './types.js';
import type { TextTable } from './types.js';

const TABLES: TextTable[] = [maintenanceTexts, chargingTexts, batteryTexts, faultTexts, usageTexts] as TextTable[];
const BY_KIND = new Map<string, NonNullable<TextTable[PromptKind]>>();
for (const t of TABLES) for (const [k, v] of Object.entries(t)) if (v) BY_KIND.set(k, v);

/** The car always offers this besides a prompt's own actions (docs/contract.md#hmi-prompt). */
export function dismissAction(locale: Locale): { id: 'dismiss'; label: string } {
  return { id: 'dismiss', label: locale === 'zh-CN' ? '忽略' : 'Dismiss' };
}

/** Title, body and actions for a prompt in the given locale (falls back to en for an unknown locale). */
export function renderPrompt(
  draft: Pick<PromptDraft, 'kind' | 'params'>,
  locale: Locale,
): { title: string; body: string; actions: { id: string; label: string }[] } {
  const entry = BY_KIND.get(draft.kind);
  if (!entry) throw new Error(`no texts for prompt kind ${draft.kind}`);
  const render = entry[locale] ?? entry.en;
  const out = render(draft.params ?? {});
  return { title: out.title, body: out.body, actions: out.actions ?? [] };
}
