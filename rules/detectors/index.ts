// The detectors in their fixed order. Maintenance reads the others' view, usage summarises last.
import type { Detector } from '../types.js';
import { batteryDetector } from './battery.js';
import { chargingDetector } from './charging.js';
import { faultDetector } from './fault.js';
import { maintenanceDetector } from './maintenance.js';
import { usageDetector } from './usage.js';

export const DEFAULT_DETECTORS: readonly Detector[] = [
  maintenanceDetector as Detector,
  chargingDetector as Detector,
  batteryDetector as Detector,
  faultDetector as Detector,
  usageDetector as Detector,
];

export { batteryDetector, chargingDetector, faultDetector, maintenanceDetector, usageDetector };
