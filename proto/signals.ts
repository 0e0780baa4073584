// The VSS signals odopulse understands (docs/domain.md#signals), with their value kind and unit.
// Everything that names a signal imports the constants from here.

export const VSS = {
  odometer: 'Vehicle.TraveledDistance',
  speed: 'Vehicle.Speed',
  lowVoltageSystemState: 'Vehicle.LowVoltageSystemState',
  soc: 'Vehicle.Powertrain.TractionBattery.StateOfCharge.Displayed',
  soh: 'Vehicle.Powertrain.TractionBattery.StateOfHealth',
  isCharging: 'Vehicle.Powertrain.TractionBattery.Charging.IsCharging',
  chargePortType: 'Vehicle.Powertrain.TractionBattery.Charging.ChargePortType',
  voltage12v: 'Vehicle.LowVoltageBattery.CurrentVoltage',
  fuelLevel: 'Vehicle.Powertrain.FuelSystem.RelativeLevel',
  dtcList: 'Vehicle.OBD.DTCList',
  latitude: 'Vehicle.CurrentLocation.Latitude',
  longitude: 'Vehicle.CurrentLocation.Longitude',
} as const;

export type SignalPath = (typeof VSS)[keyof typeof VSS];
export type SignalKind = 'number' | 'boolean' | 'enum';

export interface SignalSpec {
  kind: SignalKind;
  unit?: string;
  min?: number;
  max?: number;
  values?: readonly string[];
  /** Spool drop order when full: low goes first, high (faults) never. */
  priority: 'low' | 'normal' | 'high';
  /** Sensitive (privacy): collected only when the sampling policy enables it. */
  sensitive?: boolean;
}

export const LOW_VOLTAGE_STATES = ['UNDEFINED', 'LOCK', 'OFF', 'ACC', 'ON', 'START'] as const;
export const CHARGE_PORT_TYPES = ['AC', 'DC', 'NONE'] as const;

/** Signals carried as sample values (the DTC list travels separately, see Sample.dtcs). */
export const SIGNALS: Readonly<Record<Exclude<SignalPath, typeof VSS.dtcList>, SignalSpec>> = {
  [VSS.odometer]: { kind: 'number', unit: 'km', min: 0, max: 5_000_000, priority: 'normal' },
  [VSS.speed]: { kind: 'number', unit: 'km/h', min: 0, max: 400, priority: 'low' },
  [VSS.lowVoltageSystemState]: { kind: 'enum', values: LOW_VOLTAGE_STATES, priority: 'normal' },
  [VSS.soc]: { kind: 'number', unit: '%', min: 0, max: 100, priority: 'normal' },
  [VSS.soh]: { kind: 'number', unit: '%', min: 0, max: 100, priority: 'normal' },
  [VSS.isCharging]: { kind: 'boolean', priority: 'normal' },
  [VSS.chargePortType]: { kind: 'enum', values: CHARGE_PORT_TYPES, priority: 'normal' },
  [VSS.voltage12v]: { kind: 'number', unit: 'V', min: 0, max: 32, priority: 'normal' },
  [VSS.fuelLevel]: { kind: 'number', unit: '%', min: 0, max: 100, priority: 'low' },
  [VSS.latitude]: { kind: 'number', unit: 'deg', min: -90, max: 90, priority: 'low', sensitive: true },
  [VSS.longitude]: { kind: 'number', unit: 'deg', min: -180, max: 180, priority: 'low', sensitive: true },
};

export type ValueSignalPath = keyof typeof SIGNALS;

/** VSS paths that reveal where a vehicle is (docs/domain.md#privacy-and-retention). */
export const POSITION_SIGNALS: ReadonlySet<string> = new Set(
  Object.entries(SIGNALS)
    .filter(([, s]) => 'sensitive' in s && s.sensitive === true)
    .map(([path]) => path),
);

export const hasPositionSignal = (values: Readonly<Record<string, unknown>>): boolean =>
  Object.keys(values).some((k) => POSITION_SIGNALS.has(k));

/** The same values without position signals (the record itself when it has none). */
export function withoutPositionSignals<T>(values: Record<string, T>): Record<string, T> {
  if (!hasPositionSignal(values)) return values;
  const out: Record<string, T> = {};
  for (const [k, v] of Object.entries(values)) if (!POSITION_SIGNALS.has(k)) out[k] = v;
  return out;
}
export const SIGNAL_PATHS = Object.keys(SIGNALS) as ValueSignalPath[];

/** The low-voltage system state counts as driving when ON or START (docs/domain.md#parked-and-driving). */
export function isDrivingState(state: unknown): boolean {
  return state === 'ON' || state === 'START';
}

/**
 * The one definition of driving, used by the rules and by HMI timing alike
 * (docs/domain.md#parked-and-driving): the low-voltage system ON/START, or a positive speed.
 * Parked is everything else, including a vehicle that has reported nothing yet.
 */
export function isDriving(latest: Readonly<Record<string, unknown>> | undefined): boolean {
  if (!latest) return false;
  const speed = latest[VSS.speed];
  return isDrivingState(latest[VSS.lowVoltageSystemState]) || (typeof speed === 'number' && speed > 0);
}

export const isParked = (latest: Readonly<Record<string, unknown>> | undefined): boolean => !isDriving(latest);
