// Owner-, advisor- and lifecycle-facing texts for the maintenance family, in en and zh-CN.
import type { Locale } from '../types.js';
import type { PromptParams, RenderedText, TextTable } from './types.js';

type MaintenanceKind = 'maintenance.upcoming' | 'maintenance.due' | 'maintenance.overdue' | 'maintenance.lapsed' | 'maintenance.followup';

const ITEM_LABELS: Record<string, Record<Locale, string>> = {
  engine_oil: { en: 'engine oil change', 'zh-CN': '更换机油' },
  oil_filter: { en: 'oil filter', 'zh-CN': '更换机油滤清器' },
  air_filter: { en: 'air filter', 'zh-CN': '更换空气滤清器' },
  cabin_filter: { en: 'cabin air filter', 'zh-CN': '更换空调滤芯' },
  brake_inspection: { en: 'brake inspection', 'zh-CN': '制动系统检查' },
  brake_fluid_check: { en: 'brake fluid check', 'zh-CN': '制动液检查' },
  tyre_inspection: { en: 'tyre inspection', 'zh-CN': '轮胎检查' },
  tyre_rotation: { en: 'tyre rotation', 'zh-CN': '轮胎换位' },
  coolant_check: { en: 'coolant check', 'zh-CN': '冷却液检查' },
  hv_battery_inspection: { en: 'high-voltage battery inspection', 'zh-CN': '高压电池检查' },
  battery_12v_test: { en: '12 V battery test (low voltage seen)', 'zh-CN': '12V 蓄电池检测（电压偏低）' },
  hv_battery_health_check: { en: 'traction battery health check', 'zh-CN': '动力电池健康度检测' },
};

/** Localised label of a service item id; `dtc:P0A80` becomes a diagnosis item. */
export function serviceItemLabel(id: string, locale: Locale): string {
  if (id.startsWith('dtc:')) {
    const code = id.slice(4);
    return locale === 'zh-CN' ? `故障码 ${code} 诊断` : `diagnose fault code ${code}`;
  }
  return ITEM_LABELS[id]?.[locale] ?? id.replace(/_/g, ' ');
}

const list = (p: PromptParams, locale: Locale): string => {
  const items = Array.isArray(p.items) ? p.items : [];
  return items.map((i) => serviceItemLabel(i, locale)).join(locale === 'zh-CN' ? '、' : ', ');
};
const km = (v: unknown) => (typeof v === 'number' ? v.toLocaleString('en-US') : String(v ?? ''));
/** "first service" for the cycle after delivery, plain "service" afterwards. */
const svc = (p: PromptParams, locale: Locale) =>
  p.service === 'first' ? (locale === 'zh-CN' ? '首次保养' : 'first service') : locale === 'zh-CN' ? '保养' : 'service';

const book = { en: [{ id: 'book_service', label: 'Book a service' }], 'zh-CN': [{ id: 'book_service', label: '预约保养' }] };

function upcoming(locale: Locale) {
  return (p: PromptParams): RenderedText =>
    locale === 'zh-CN'
      ? {
          title: `${svc(p, locale)}即将到期`,
          body: `距离${svc(p, locale)}还有约 ${km(p.kmRemaining)} 公里或 ${p.daysRemaining} 天（${km(p.dueKm)} 公里或 ${p.dueDate}，以先到者为准）。建议项目：${list(p, locale)}。`,
          actions: book['zh-CN'],
        }
      : {
          title: `Your ${svc(p, locale)} is coming up`,
          body: `Your ${svc(p, locale)} is due in about ${km(p.kmRemaining)} km or ${p.daysRemaining} days (at ${km(p.dueKm)} km or on ${p.dueDate}, whichever comes first). Suggested items: ${list(p, locale)}.`,
          actions: book.en,
        };
}

function due(locale: Locale) {
  return (p: PromptParams): RenderedText =>
    locale === 'zh-CN'
      ? {
          title: `${svc(p, locale)}已到期`,
          body: `您的车辆已到保养节点（${km(p.dueKm)} 公里或 ${p.dueDate}），请尽快预约。建议项目：${list(p, locale)}。`,
          actions: book['zh-CN'],
        }
      : {
          title: `Your ${svc(p, locale)} is due`,
          body: `Your car has reached its service point (${km(p.dueKm)} km or ${p.dueDate}). Please book a visit soon. Suggested items: ${list(p, locale)}.`,
          actions: book.en,
        };
}

function overdue(locale: Locale) {
  return (p: PromptParams): RenderedText =>
    locale === 'zh-CN'
      ? {
          title: '保养已逾期',
          body: `您的车辆已超过保养节点 ${km(p.kmPast)} 公里 / ${p.daysPast} 天（应于 ${km(p.dueKm)} 公里或 ${p.dueDate} 保养）。按时保养有助于保障行车安全和质保权益。建议项目：${list(p, locale)}。`,
          actions: book['zh-CN'],
        }
      : {
          title: 'Your service is overdue',
          body: `Your car is ${km(p.kmPast)} km / ${p.daysPast} days past its service point (${km(p.dueKm)} km or ${p.dueDate}). Regular service keeps it safe and your warranty intact. Suggested items: ${list(p, locale)}.`,
          actions: book.en,
        };
}

function lapsed(locale: Locale) {
  return (p: PromptParams): RenderedText => {
    const level = Number(p.level);
    if (locale === 'zh-CN') {
      const ask =
        level >= 3
          ? '您的服务顾问将致电为您安排。'
          : level === 2
            ? '现在预约可享专属保养优惠券。'
            : '欢迎随时回店，我们为您做一次全面检查。';
      return {
        title: `保养已逾期 ${p.months} 个月`,
        body: `您的车辆自 ${p.dueReached} 起已到保养期，至今未保养。${ask}建议项目：${list(p, locale)}。`,
        actions: book['zh-CN'],
      };
    }
    const ask =
      level >= 3
        ? 'Your service advisor will call you to arrange it.'
        : level === 2
          ? 'Book now and use your service coupon.'
          : 'Come back any time for a full check-up.';
    return {
      title: `${p.months} months since your service was due`,
      body: `Your car has been due for service since ${p.dueReached}. ${ask} Suggested items: ${list(p, locale)}.`,
      actions: book.en,
    };
  };
}

function followup(locale: Locale) {
  return (p: PromptParams): RenderedText =>
    locale === 'zh-CN'
      ? {
          title: '感谢您到店保养',
          body: `感谢您于 ${p.serviceDate} 到店保养（${km(p.odometer)} 公里）。车辆使用是否一切正常？欢迎评价本次服务。`,
          actions: [{ id: 'rate', label: '评价服务' }],
        }
      : {
          title: 'Thank you for your visit',
          body: `Thank you for servicing your car on ${p.serviceDate} (${km(p.odometer)} km). Is everything running well? Tell us how we did.`,
          actions: [{ id: 'rate', label: 'Rate the service' }],
        };
}

export const maintenanceTexts: TextTable<MaintenanceKind> = {
  'maintenance.upcoming': { en: upcoming('en'), 'zh-CN': upcoming('zh-CN') },
  'maintenance.due': { en: due('en'), 'zh-CN': due('zh-CN') },
  'maintenance.overdue': { en: overdue('en'), 'zh-CN': overdue('zh-CN') },
  'maintenance.lapsed': { en: lapsed('en'), 'zh-CN': lapsed('zh-CN') },
  'maintenance.followup': { en: followup('en'), 'zh-CN': followup('zh-CN') },
};
