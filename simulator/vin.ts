// ISO 3779 VINs with a correct check digit (position 9, as North American and Chinese VINs carry).

const TRANSLIT: Record<string, number> = {
  A: 1,
  B: 2,
  C: 3,
  D: 4,
  E: 5,
  F: 6,
  G: 7,
  H: 8,
  J: 1,
  K: 2,
  L: 3,
  M: 4,
  N: 5,
  P: 7,
  R: 9,
  S: 2,
  T: 3,
  U: 4,
  V: 5,
  W: 6,
  X: 7,
  Y: 8,
  Z: 9,
};
const WEIGHTS = [8, 7, 6, 5, 4, 3, 2, 10, 0, 9, 8, 7, 6, 5, 4, 3, 2];
/** Model-year codes (position 10) from 2010; I, O, Q, U, Z and 0 are never used. */
const YEAR_CODES = 'ABCDEFGHJKLMNPRSTVWXY123456789';

export function vinCharValue(c: string): number {
  if (c >= '0' && c <= '9') return c.charCodeAt(0) - 48;
  const v = TRANSLIT[c];
  if (v === undefined) throw new RangeError(`'${c}' cannot appear in a VIN`);
  return v;
}

/** The check digit for a 17-character VIN (its own position 9 is ignored). */
export function vinCheckDigit(vin: string): string {
  if (vin.length !== 17) throw new RangeError(`a VIN has 17 characters, got ${vin.length}`);
  let sum = 0;
  for (let i = 0; i < 17; i++) sum += vinCharValue(vin[i]) * WEIGHTS[i];
  const r = sum % 11;
  return r === 10 ? 'X' : String(r);
}

export function isValidVin(vin: string): boolean {
  return /^[A-HJ-NPR-Z0-9]{17}$/.test(vin) && vinCheckDigit(vin) === vin[8];
}

export function modelYearCode(year: number): string {
  return YEAR_CODES[(((year - 2010) % 30) + 30) % 30];
}

/**
 * Build a VIN from WMI (3), VDS (5), model year, plant (1) and a serial (< 1,000,000),
 * filling in the check digit.
 */
export function makeVin(wmi: string, vds: string, year: number, plant: string, serial: number): string {
  if (wmi.length !== 3 || vds.length !== 5 || plant.length !== 1) throw new RangeError('VIN parts: WMI 3, VDS 5, plant 1 characters');
  const body = `${wmi}${vds}0${modelYearCode(year)}${plant}${String(Math.floor(serial) % 1_000_000).padStart(6, '0')}`;
  return body.slice(0, 8) + vinCheckDigit(body) + body.slice(9);
}
