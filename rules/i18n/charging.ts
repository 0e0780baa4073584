// Owner-facing texts for the charging family (en, zh-CN).
import type { TextTable } from './types.js';

const HABIT_EN: Record<string, string> = {
  dc_fast:
    'Most of your recent charging sessions were DC fast charges. Frequent fast charging ages the battery sooner; AC charging at home or work is gentler for everyday use.',
  left_full:
    'Your car is often charged to 100 % and left there for hours. Keeping the battery full ages it sooner; a daily limit of about 80-90 % is gentler, and charge to 100 % just before long trips.',
};
const HABIT_ZH: Record<string, string> = {
  dc_fast: '近期大部分充电为直流快充。频繁快充会加速电池老化，日常使用建议在家或单位进行交流慢充。',
  left_full: '您的车辆经常充满至 100 % 后长时间停放。长期满电会加速电池老化，日常建议将充电上限设为约 80-90 %，长途出行前再充满。',
};

export const chargingTexts: TextTable<'charging.low_soc' | 'charging.critical_soc' | 'charging.habit'> = {
  'charging.low_soc': {
    en: (p) => ({
      title: `Battery low: ${p.soc} %`,
      body: `About ${p.rangeKm} km of range left. Plan a charging stop soon.`,
      actions: [
        { id: 'find_charger', label: 'Find a charger' },
        { id: 'dismiss', label: 'Later' },
      ],
    }),
    'zh-CN': (p) => ({
      title: `电量低：${p.soc} %`,
      body: `剩余续航约 ${p.rangeKm} 公里，请尽快安排充电。`,
      actions: [
        { id: 'find_charger', label: '查找充电桩' },
        { id: 'dismiss', label: '稍后' },
      ],
    }),
  },
  'charging.critical_soc': {
    en: (p) => ({
      title: `Battery critically low: ${p.soc} %`,
      body: `Only about ${p.rangeKm} km of range left. Charge now; roadside assistance is available if you cannot reach a charger.`,
      actions: [
        { id: 'find_charger', label: 'Nearest charger' },
        { id: 'roadside', label: 'Roadside assistance' },
      ],
    }),
    'zh-CN': (p) => ({
      title: `电量严重不足：${p.soc} %`,
      body: `剩余续航仅约 ${p.rangeKm} 公里，请立即充电；如无法到达充电桩，可呼叫道路救援。`,
      actions: [
        { id: 'find_charger', label: '最近的充电桩' },
        { id: 'roadside', label: '道路救援' },
      ],
    }),
  },
  'charging.habit': {
    en: (p) => ({
      title: 'A tip for a longer battery life',
      body: HABIT_EN[String(p.situation)] ?? 'Your recent charging pattern may age the battery sooner than necessary.',
      actions: [
        { id: 'charging_tips', label: 'Charging tips' },
        { id: 'dismiss', label: 'Got it' },
      ],
    }),
    'zh-CN': (p) => ({
      title: '延长电池寿命的小建议',
      body: HABIT_ZH[String(p.situation)] ?? '您近期的充电方式可能会加速电池老化。',
      actions: [
        { id: 'charging_tips', label: '充电建议' },
        { id: 'dismiss', label: '知道了' },
      ],
    }),
  },
};
