// Owner- and advisor-facing texts for the battery family (en, zh-CN).
import type { TextTable } from './types.js';

export const batteryTexts: TextTable<'battery.low_voltage_12v' | 'battery.soh_degraded'> = {
  'battery.low_voltage_12v': {
    en: (p) => ({
      title: '12 V battery low',
      body: `The 12 V battery reads ${p.voltage} V while parked (below ${p.thresholdV} V); the car may not start. A drive of at least 30 minutes recharges it; have it checked if this repeats.`,
      actions: [
        { id: 'book_service', label: 'Book a check' },
        { id: 'dismiss', label: 'Later' },
      ],
    }),
    'zh-CN': (p) => ({
      title: '12V 蓄电池电压低',
      body: `驻车时 12V 蓄电池电压为 ${p.voltage} V（低于 ${p.thresholdV} V），车辆可能无法启动。建议行驶 30 分钟以上为其充电；如反复出现，请到店检查。`,
      actions: [
        { id: 'book_service', label: '预约检查' },
        { id: 'dismiss', label: '稍后' },
      ],
    }),
  },
  'battery.soh_degraded': {
    en: (p) => ({
      title: `Traction battery health ${p.soh} %`,
      body:
        p.reason === 'faster_than_expected'
          ? `Battery health is ${p.soh} %, below the ${p.expectedPct} % expected for this car's age. A battery check is recommended.`
          : `Battery health is ${p.soh} %, below ${p.thresholdPct} %. A battery check is recommended; warranty or battery service options may apply.`,
      actions: [{ id: 'book_service', label: 'Book a battery check' }],
    }),
    'zh-CN': (p) => ({
      title: `动力电池健康度 ${p.soh} %`,
      body:
        p.reason === 'faster_than_expected'
          ? `电池健康度为 ${p.soh} %，低于该车龄预期的 ${p.expectedPct} %，建议进行电池检测。`
          : `电池健康度为 ${p.soh} %，已低于 ${p.thresholdPct} %。建议进行电池检测，可能适用质保或电池服务方案。`,
      actions: [{ id: 'book_service', label: '预约电池检测' }],
    }),
  },
};
