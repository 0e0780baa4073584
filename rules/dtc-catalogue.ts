// Fault-code catalogue: SAE J2012 structure plus a severity table.
// Code = system letter (P powertrain, C chassis, B body, U network), then 0/2 = SAE generic or
// 1/3 = manufacturer-specific, then subsystem and fault. Unknown codes get a severity from the
// most specific prefix rule, so a new code still lands somewhere sensible.
import type { Severity } from '../proto/domain.js';

export type DtcSystem = 'powertrain' | 'chassis' | 'body' | 'network';

export interface DtcInfo {
  code: string;
  system: DtcSystem;
  /** SAE-defined (second character 0 or 2) rather than manufacturer-specific (1 or 3). */
  generic: boolean;
  severity: Severity;
  /** Known codes carry a short description in both locales. */
  description?: { en: string; 'zh-CN': string };
}

const SYSTEMS: Record<string, DtcSystem> = { P: 'powertrain', C: 'chassis', B: 'body', U: 'network' };
const DTC_RE = /^[PCBU][0-3][0-9A-F]{3}$/;

interface Known {
  severity: Severity;
  en: string;
  zh: string;
}

/** Codes with a known meaning. Hybrid/EV traction-battery and isolation faults are critical. */
const KNOWN: Record<string, Known> = {
  P0A80: { severity: 'critical', en: 'Replace hybrid/EV battery pack', zh: '需更换混合动力/电动车动力电池组' },
  P0A7F: { severity: 'critical', en: 'Hybrid/EV battery pack deterioration', zh: '混合动力/电动车动力电池组性能衰退' },
  P0AA6: { severity: 'critical', en: 'Hybrid/EV battery voltage system isolation fault', zh: '动力电池高压系统绝缘故障' },
  P0AFA: { severity: 'critical', en: 'Hybrid/EV battery system voltage low', zh: '动力电池系统电压过低' },
  P0A78: { severity: 'critical', en: 'Drive motor inverter performance', zh: '驱动电机逆变器性能故障' },
  P0A1F: { severity: 'critical', en: 'Battery energy control module', zh: '电池能量控制模块故障' },
  P0A94: { severity: 'warning', en: 'DC/DC converter performance', zh: 'DC/DC 转换器性能故障' },
  P0A0F: { severity: 'warning', en: 'Engine failed to start', zh: '发动机无法起动' },
  P0D27: { severity: 'warning', en: 'Battery charger input voltage too low', zh: '车载充电机输入电压过低' },
  P0217: { severity: 'critical', en: 'Engine coolant over-temperature', zh: '发动机冷却液温度过高' },
  P0524: { severity: 'critical', en: 'Engine oil pressure too low', zh: '发动机机油压力过低' },
  P0300: { severity: 'warning', en: 'Random/multiple cylinder misfire detected', zh: '检测到随机/多缸失火' },
  P0301: { severity: 'warning', en: 'Cylinder 1 misfire detected', zh: '检测到 1 缸失火' },
  P0562: { severity: 'warning', en: 'System voltage low', zh: '系统电压过低' },
  P0420: { severity: 'info', en: 'Catalyst system efficiency below threshold', zh: '三元催化器效率低于阈值' },
  P0171: { severity: 'info', en: 'System too lean (bank 1)', zh: '混合气过稀（第 1 列）' },
  P0455: { severity: 'info', en: 'Evaporative emission system leak (large)', zh: '燃油蒸发排放系统大泄漏' },
  C0035: { severity: 'warning', en: 'Left front wheel speed sensor circuit', zh: '左前轮速传感器电路故障' },
  C0110: { severity: 'warning', en: 'ABS pump motor circuit', zh: 'ABS 泵电机电路故障' },
  B0001: { severity: 'critical', en: 'Driver frontal airbag deployment control', zh: '驾驶员正面安全气囊起爆控制故障' },
  U0100: { severity: 'critical', en: 'Lost communication with engine/powertrain control module', zh: '与发动机/动力总成控制模块通信丢失' },
  U0111: { severity: 'critical', en: 'Lost communication with battery energy control module', zh: '与电池能量控制模块通信丢失' },
  U0293: { severity: 'critical', en: 'Lost communication with hybrid powertrain control module', zh: '与混合动力控制模块通信丢失' },
  U0121: { severity: 'warning', en: 'Lost communication with ABS control module', zh: '与 ABS 控制模块通信丢失' },
};

/** Prefix rules, most specific first (checked in this order). */
const PREFIX_RULES: [string, Severity][] = [
  ['P0A8', 'critical'], // hybrid/EV battery pack
  ['P0A9', 'warning'],
  ['P0A', 'warning'], // hybrid/EV propulsion
  ['P0B', 'warning'],
  ['P0C', 'warning'],
  ['P0D', 'warning'], // charging system
  ['P03', 'warning'], // ignition / misfire
  ['P05', 'warning'], // idle control, system voltage
  ['P06', 'warning'], // control module / outputs
  ['P07', 'warning'], // transmission
  ['P08', 'warning'],
  ['P09', 'warning'],
  ['P0', 'info'], // fuel/air metering and emissions
  ['B00', 'critical'], // occupant restraints (airbags)
  ['U0', 'warning'], // lost communication
  ['C0', 'warning'], // brakes, steering, suspension
];

/** Structural parse of an SAE J2012 code; undefined if it is not one. */
export function parseDtc(code: string): { code: string; system: DtcSystem; generic: boolean } | undefined {
  if (!DTC_RE.test(code)) return undefined;
  const second = code[1];
  return { code, system: SYSTEMS[code[0]], generic: second === '0' || second === '2' };
}

/** Catalogue severity, with per-model overrides from the fault config taking precedence. */
export function dtcSeverity(code: string, overrides?: Record<string, Severity>): Severity {
  if (overrides && Object.hasOwn(overrides, code)) return overrides[code];
  const known = KNOWN[code];
  if (known) return known.severity;
  for (const [prefix, severity] of PREFIX_RULES) if (code.startsWith(prefix)) return severity;
  // Manufacturer-specific or unlisted codes: someone should look at it, but it is not an emergency.
  return 'warning';
}

export function describeDtc(code: string, overrides?: Record<string, Severity>): DtcInfo | undefined {
  const parsed = parseDtc(code);
  if (!parsed) return undefined;
  const info: DtcInfo = { ...parsed, severity: dtcSeverity(code, overrides) };
  const known = KNOWN[code];
  if (known) info.description = { en: known.en, 'zh-CN': known.zh };
  return info;
}
