// A replay scenario with a known answer: which prompts it must produce, exactly once each.
import { writeFileSync } from 'node:fs';
import { VSS } from '../../proto/signals.js';

export interface ScenarioLine {
  ts: string;
  vin: string;
  signals: Record<string, number | boolean | string>;
  dtcs?: string[];
}

/**
 * A BEV's afternoon: drives down to 19.5 % (low_soc #1), a P0A80 comes and clears (fault.dtc #1,
 * resolved), it charges to 35 % (re-armed; low #1 resolved), drives down below 20 % (low_soc #2),
 * parks at 6.5 % (critical_soc; low #2 escalated) and P0A80 comes back (fault.dtc #2).
 * `padding` adds parked samples at the end (to lengthen a replay for restart tests).
 */
export function lowChargeAndFaultScenario(
  vin: string,
  startIso = '2026-03-01T08:00:00Z',
  padding = 0,
): { lines: ScenarioLine[]; expected: Record<string, number> } {
  const lines: ScenarioLine[] = [];
  let t = Date.parse(startIso);
  let odo = 4210;
  const push = (signals: Record<string, number | boolean | string>, dtcs?: string[]) => {
    lines.push({
      ts: new Date(t).toISOString(),
      vin,
      signals: { [VSS.odometer]: Math.round(odo * 10) / 10, [VSS.voltage12v]: 12.6, ...signals },
      ...(dtcs ? { dtcs } : {}),
    });
    t += 60_000;
  };
  const drive = (soc: number) => {
    odo += 1.2;
    push({ [VSS.soc]: soc, [VSS.speed]: 55, [VSS.lowVoltageSystemState]: 'ON', [VSS.isCharging]: false }, []);
  };
  const park = (soc: number, dtcs: string[] = [], extra: Record<string, number | boolean | string> = {}) =>
    push({ [VSS.soc]: soc, [VSS.speed]: 0, [VSS.lowVoltageSystemState]: 'OFF', [VSS.isCharging]: false, ...extra }, dtcs);

  for (let soc = 40; soc > 20; soc -= 2) drive(soc);
  park(19.5);
  park(19.4, ['P0A80']);
  park(19.4, []);
  for (let soc = 25; soc <= 35; soc += 5) park(soc, [], { [VSS.isCharging]: true, [VSS.chargePortType]: 'AC' });
  park(35, [], { [VSS.isCharging]: false });
  for (let soc = 33; soc > 8; soc -= 3) drive(soc);
  park(6.5);
  park(6.5, ['P0A80']);
  for (let i = 0; i < padding; i++) park(6.5, ['P0A80']);
  return { lines, expected: { 'charging.low_soc': 2, 'charging.critical_soc': 1, 'fault.dtc': 2 } };
}

export function writeReplay(file: string, lines: ScenarioLine[]): void {
  writeFileSync(file, lines.map((l) => JSON.stringify(l)).join('\n') + '\n');
}

export const PROFILE = {
  model: 'Aurora EV',
  powertrain: 'BEV',
  deliveryDate: '2026-02-15',
  dealerId: 'dealer-sh-01',
  locale: 'en',
  vehicleType: 'passenger',
  quietHours: { start: '00:00', end: '00:00' },
};
