// Texts for the usage family, in en and zh-CN. segment_changed and utilisation are read by the
// lifecycle system's operators; dormant_vehicle is also shown to the owner.
import type { Locale, Segments } from '../types.js';
import type { PromptParams, RenderedText, TextTable } from './types.js';

type UsageKind = 'usage.segment_changed' | 'usage.dormant_vehicle' | 'usage.utilisation';
type SegmentValue = Segments['stage'] | Segments['activity'] | Segments['maturity'];

const SEGMENT_LABELS: Record<SegmentValue, Record<Locale, string>> = {
  new_owner: { en: 'new owner', 'zh-CN': '新车主' },
  break_in: { en: 'break-in', 'zh-CN': '磨合期' },
  active_owner: { en: 'active owner', 'zh-CN': '活跃车主' },
  upgrade_window: { en: 'upgrade window', 'zh-CN': '换购窗口期' },
  active: { en: 'active', 'zh-CN': '活跃' },
  declining: { en: 'declining', 'zh-CN': '活跃度下降' },
  dormant: { en: 'dormant', 'zh-CN': '休眠' },
  lost: { en: 'lost', 'zh-CN': '失联' },
  novice: { en: 'novice', 'zh-CN': '新手' },
  skilled: { en: 'skilled', 'zh-CN': '熟练' },
  veteran: { en: 'veteran', 'zh-CN': '资深' },
};

/** Localised name of a segment value; 'none' (no previous segment) included. */
export function segmentLabel(value: unknown, locale: Locale): string {
  const v = String(value ?? 'none');
  if (v === 'none') return locale === 'zh-CN' ? '无' : 'none';
  return SEGMENT_LABELS[v as SegmentValue]?.[locale] ?? v;
}

function segmentChanged(locale: Locale) {
  return (p: PromptParams): RenderedText => {
    const dims = [
      ['stage', 'fromStage', locale === 'zh-CN' ? '生命周期' : 'stage'],
      ['activity', 'fromActivity', locale === 'zh-CN' ? '活跃度' : 'activity'],
      ['maturity', 'fromMaturity', locale === 'zh-CN' ? '熟练度' : 'maturity'],
    ] as const;
    const changed = Array.isArray(p.changed) ? p.changed : dims.map((d) => d[0]);
    const parts = dims
      .filter(([to]) => changed.includes(to))
      .map(([to, from, name]) => `${name}: ${segmentLabel(p[from], locale)} → ${segmentLabel(p[to], locale)}`);
    const now = dims.map(([to]) => segmentLabel(p[to], locale)).join(' / ');
    return locale === 'zh-CN'
      ? { title: `用户分层变化：${now}`, body: `${parts.join('；')}。` }
      : { title: `Segment changed: ${now}`, body: `${parts.join('; ')}.` };
  };
}

function dormantVehicle(locale: Locale) {
  return (p: PromptParams): RenderedText => {
    const volts = typeof p.voltage12v === 'number';
    return locale === 'zh-CN'
      ? {
          title: '车辆已停放较长时间',
          body: `您的车辆自 ${p.lastDriven} 起已停放 ${p.parkedDays} 天${volts ? `，12V 蓄电池电压 ${p.voltage12v}V` : ''}。长期停放会消耗 12V 蓄电池电量，建议每两周启动车辆或行驶 20 分钟以上。`,
          actions: [{ id: 'ok', label: '知道了' }],
        }
      : {
          title: 'Your car has been parked for a while',
          body: `Your car has been parked for ${p.parkedDays} days, since ${p.lastDriven}${volts ? `; its 12 V battery reads ${p.voltage12v} V` : ''}. Long parking drains the 12 V battery: start the car or drive for 20 minutes or more every two weeks.`,
          actions: [{ id: 'ok', label: 'OK' }],
        };
  };
}

function utilisation(locale: Locale) {
  return (p: PromptParams): RenderedText =>
    locale === 'zh-CN'
      ? { title: `车辆日运营 ${p.date}`, body: `${p.date} 行驶 ${p.km} 公里，行驶时长 ${p.hours} 小时。` }
      : { title: `Daily utilisation ${p.date}`, body: `On ${p.date} the vehicle drove ${p.km} km in ${p.hours} hours.` };
}

export const usageTexts: TextTable<UsageKind> = {
  'usage.segment_changed': { en: segmentChanged('en'), 'zh-CN': segmentChanged('zh-CN') },
  'usage.dormant_vehicle': { en: dormantVehicle('en'), 'zh-CN': dormantVehicle('zh-CN') },
  'usage.utilisation': { en: utilisation('en'), 'zh-CN': utilisation('zh-CN') },
};
