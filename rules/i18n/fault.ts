// Texts for fault.dtc (en, zh-CN); the code's description comes from the catalogue.
import { describeDtc } from '../dtc-catalogue.js';
import type { TextTable } from './types.js';

const SYSTEM_EN: Record<string, string> = { powertrain: 'powertrain', chassis: 'chassis', body: 'body', network: 'network' };
const SYSTEM_ZH: Record<string, string> = { powertrain: '动力系统', chassis: '底盘', body: '车身', network: '网络通信' };

export const faultTexts: TextTable<'fault.dtc'> = {
  'fault.dtc': {
    en: (p) => {
      const code = String(p.code);
      const info = describeDtc(code);
      const what = info?.description?.en ?? `${SYSTEM_EN[String(p.system)] ?? 'vehicle'} fault`;
      const critical = p.severity === 'critical';
      return {
        title: critical ? `Serious fault: ${code}` : `Fault detected: ${code}`,
        body: critical
          ? `${what}. Stop safely as soon as possible and contact your dealer or roadside assistance.`
          : `${what}. Please have it checked at your dealer.`,
        actions: critical
          ? [
              { id: 'roadside', label: 'Roadside assistance' },
              { id: 'call_dealer', label: 'Call dealer' },
            ]
          : [
              { id: 'book_service', label: 'Book a check' },
              { id: 'dismiss', label: 'Later' },
            ],
      };
    },
    'zh-CN': (p) => {
      const code = String(p.code);
      const info = describeDtc(code);
      const what = info?.description?.['zh-CN'] ?? `${SYSTEM_ZH[String(p.system)] ?? '车辆'}故障`;
      const critical = p.severity === 'critical';
      return {
        title: critical ? `严重故障：${code}` : `检测到故障：${code}`,
        body: critical ? `${what}。请尽快安全停车，并联系经销商或道路救援。` : `${what}。请到经销商处检查。`,
        actions: critical
          ? [
              { id: 'roadside', label: '道路救援' },
              { id: 'call_dealer', label: '联系经销商' },
            ]
          : [
              { id: 'book_service', label: '预约检查' },
              { id: 'dismiss', label: '稍后' },
            ],
      };
    },
  },
};
