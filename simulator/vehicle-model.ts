// One simulated vehicle: drives its owner's day plan, charges or refuels by habit, ages its
// battery, sags its 12 V battery when parked, raises and clears faults, visits the dealer.
// step(dt) integrates piecewise (short sub-steps only while driving or charging), so state stays
// a handful of numbers and a parked car costs almost nothing.
import type { Powertrain, Signals } from '../proto/domain.js';
import { VSS } from '../proto/signals.js';
import { Faults } from './faults.js';
import { LOW_SYSTEM_VOLTAGE_DTC, serviceItems, specFor, type VehicleSpec } from './catalogue.js';
import { homeChargeTarget, wantsService } from './habits.js';
import { buildHistory, round1, type ServiceVisit } from './history.js';
import { defaultPersona, type Persona } from './persona.js';
import { DAY, HOUR, planTrips, type Trip } from './planner.js';
import { between, hashSeed, rngFor, unitFor } from './rng.js';

import type { Snapshot, StepResult, VehicleModel, VehicleModelOptions } from './model-types.js';

export type { ServiceVisit, Snapshot, StepResult, VehicleModel, VehicleModelOptions } from './model-types.js';

type Mode = 'parked' | 'driving' | 'charging';
interface Drive {
  remainingKm: number;
  speed: number;
  home: boolean;
  service: boolean;
}
interface Charge {
  port: 'AC' | 'DC';
  target: number;
  kw: number;
  resume: Drive | null;
}

const DRIVE_SUBSTEP = 60_000;
const CHARGE_SUBSTEP = 300_000;
const V12_FULL = 12.68;
const V12_FLOOR = 10.6;

class SimVehicle implements VehicleModel {
  readonly vin: string;
  readonly powertrain: Powertrain;
  readonly persona: Persona;
  readonly deliveryTs: number;
  readonly initialService?: ServiceVisit;
  private readonly seed: number;
  private readonly spec: VehicleSpec;
  private readonly tzMs: number;
  private readonly location: boolean;
  private readonly avgKm: number;
  private t: number;
  private mode: Mode = 'parked';
  private odo: number;
  private soc: number;
  private soh: number;
  private fuel: number;
  private v12Rest: number;
  private v12Sag: number;
  private plugged = false;
  /** A home charge the owner will plug in a few minutes after arriving. */
  private plugInAt: { at: number; charge: Charge } | null = null;
  private awayKm = 0;
  private drive: Drive | null = null;
  private charge: Charge | null = null;
  private plan: Trip[] = [];
  private planIdx = 0;
  private plannedDay = Number.NaN;
  private readonly faults: Faults;
  private dormantUntil = 0;
  private readonly lostAt: number;
  private readonly startTs: number;
  private lastServiceTs: number;
  private lastServiceOdo: number;
  private serviceCount: number;
  private pendingVisit: ServiceVisit | undefined;
  private readonly captured: Snapshot[] | null;
  private dtcKey = '';
  private lastReturned = -Infinity;

  constructor(o: VehicleModelOptions) {
    if (!Number.isFinite(o.startTs)) throw new RangeError('startTs must be a finite epoch-millisecond time');
    const vehicleType = o.vehicleType ?? 'passenger';
    this.vin = o.vin;
    this.seed = hashSeed(o.seed >>> 0, 0x7e41);
    this.powertrain = o.powertrain;
    this.persona = o.persona ?? defaultPersona(o.seed, o.powertrain, vehicleType);
    this.spec = specFor(o.powertrain, vehicleType);
    this.tzMs = this.persona.tzOffsetMin * 60_000;
    this.location = o.location ?? false;
    const rng = rngFor(this.seed, 1);
    this.deliveryTs = Math.min(o.deliveryTs ?? o.startTs - Math.floor(between(rng, 5, 1400)) * DAY, o.startTs);
    const hist = buildHistory(rng, this.persona, o.powertrain, this.deliveryTs, o.startTs);
    this.t = o.startTs;
    this.startTs = o.startTs;
    this.odo = hist.odometer;
    this.avgKm = hist.avgKmPerDay;
    this.lastServiceTs = hist.lastServiceTs;
    this.lastServiceOdo = hist.lastServiceOdo;
    this.serviceCount = hist.serviceCount;
    this.initialService = hist.lastVisit;
    const ageYears = (o.startTs - this.deliveryTs) / (365.25 * DAY);
    this.soh = Math.max(55, 100 - this.persona.sohLossPerYear * ageYears - between(rng, 0, 0.5));
    this.soc = this.spec.batteryKwh > 0 ? (this.persona.chargeHabit === 'low_runner' ? between(rng, 14, 40) : between(rng, 45, 90)) : 0;
    if (o.powertrain === 'PHEV') this.soc = Math.max(this.soc, this.spec.socFloor);
    this.fuel = this.spec.tankL > 0 ? between(rng, 25, 95) : 0;
    this.v12Sag = this.persona.v12SagPerDay;
    const parkedDays = this.persona.initialParkedDays;
    this.v12Rest = Math.max(V12_FLOOR, V12_FULL - this.v12Sag * parkedDays);
    if (parkedDays > 0) this.dormantUntil = o.startTs + Math.max(1, between(rng, 14, 40) - parkedDays) * DAY;
    this.faults = new Faults(o.powertrain, this.persona.dtcProneness);
    this.captured = o.transitions ? [] : null;
    this.lostAt = this.persona.lostAfterDays !== undefined ? o.startTs + this.persona.lostAfterDays * DAY : Infinity;
  }

  get ts(): number {
    return this.t;
  }

  step(dtMs: number): StepResult {
    if (!Number.isFinite(dtMs) || dtMs < 0) throw new RangeError(`step needs a non-negative duration, got ${dtMs}`);
    const target = this.t + dtMs;
    let guard = 0;
    while (this.t < target && guard++ < 1_000_000) this.advance(target);
    const result: StepResult = {
      ts: Math.round(this.t),
      signals: this.signals(),
      dtcs: this.faults.active(this.t),
      reporting: this.t < this.lostAt,
    };
    if (this.pendingVisit) {
      result.service = this.pendingVisit;
      this.pendingVisit = undefined;
    }
    const prev = this.lastReturned;
    this.lastReturned = result.ts;
    if (this.captured && this.captured.length > 0) {
      // Strictly between the previous reading and this one, so a vehicle's times always increase.
      const before = this.captured.filter((x) => x.ts > prev && x.ts < result.ts);
      if (before.length > 0) result.transitions = before;
      this.captured.length = 0;
    }
    return result;
  }

  /** One piece of integration: up to the next event (trip start, midnight, sub-step) or target. */
  private advance(target: number): void {
    const localDay = Math.floor((this.t + this.tzMs) / DAY);
    if (localDay !== this.plannedDay) this.planDay(localDay);
    const nextMidnight = (localDay + 1) * DAY - this.tzMs;
    if (this.mode === 'driving') return this.advanceDrive(Math.min(target, this.t + DRIVE_SUBSTEP));
    const next = this.plan[this.planIdx];
    if (next && next.start <= this.t) return this.startTrip(next);
    if (this.plugInAt && this.plugInAt.at <= this.t) {
      const c = this.plugInAt.charge;
      this.plugInAt = null;
      return this.startCharge(c);
    }
    const until = Math.min(
      target,
      nextMidnight,
      next ? next.start : Infinity,
      this.plugInAt ? this.plugInAt.at : Infinity,
      this.captured ? this.faults.nextChange(this.t) : Infinity,
    );
    if (this.mode === 'charging') this.advanceCharge(Math.min(until, this.t + CHARGE_SUBSTEP));
    else this.advanceParked(until);
    if (this.captured && this.faults.active(this.t).join() !== this.dtcKey) this.mark();
  }

  /** Keep a reading of the current state (one per instant: a later change at the same ms wins). */
  private mark(): void {
    if (!this.captured) return;
    const snap: Snapshot = { ts: Math.round(this.t), signals: this.signals(), dtcs: this.faults.active(this.t) };
    this.dtcKey = snap.dtcs.join();
    const last = this.captured[this.captured.length - 1];
    if (last && last.ts === snap.ts) this.captured[this.captured.length - 1] = snap;
    else this.captured.push(snap);
  }

  private age(dtMs: number): void {
    if (this.spec.batteryKwh > 0) this.soh = Math.max(50, this.soh - (this.persona.sohLossPerYear * dtMs) / (365.25 * DAY));
  }

  private advanceParked(until: number): void {
    const days = (until - this.t) / DAY;
    // Plugged-in EVs keep their 12 V battery topped up through the DC/DC converter.
    if (!this.plugged) {
      this.v12Rest = Math.max(V12_FLOOR, this.v12Rest - this.v12Sag * days);
      if (this.spec.batteryKwh > 0) this.soc = Math.max(this.spec.socFloor, this.soc - 0.12 * days);
    }
    this.age(until - this.t);
    this.t = until;
  }

  private usableKwh(): number {
    return (this.spec.batteryKwh * this.soh) / 100;
  }

  private advanceDrive(until: number): void {
    const d = this.drive!;
    let hours = (until - this.t) / HOUR;
    let km = d.speed * hours;
    if (km >= d.remainingKm) {
      km = d.remainingKm;
      hours = km / d.speed;
    }
    let evKm = 0;
    if (this.spec.batteryKwh > 0) {
      const socPerKm = (this.spec.kwhPerKm / this.usableKwh()) * 100;
      evKm = Math.min(km, Math.max(0, (this.soc - this.spec.socFloor) / socPerKm));
      if (this.powertrain === 'BEV') evKm = km;
      this.soc = Math.max(0.5, this.soc - evKm * socPerKm);
    }
    const fuelKm = km - evKm;
    if (this.spec.tankL > 0 && fuelKm > 0) {
      this.fuel -= ((fuelKm * this.spec.lPer100) / 100 / this.spec.tankL) * 100;
      if (this.fuel < 4) this.fuel = 100; // refuelled at the next station
    }
    this.odo += km;
    this.awayKm = Math.max(0, this.awayKm + (d.home ? -km : km));
    this.v12Rest = Math.min(V12_FULL, this.v12Rest + 0.3 * hours);
    d.remainingKm -= km;
    this.age(hours * HOUR);
    this.t += Math.max(1, Math.round(hours * HOUR));
    if (d.remainingKm <= 1e-6) return this.endTrip(d);
    if (this.powertrain === 'BEV' && this.soc <= this.persona.tripDcAtSoc && d.remainingKm > 3) {
      this.startCharge({
        port: 'DC',
        target: this.persona.chargeHabit === 'low_runner' ? between(rngFor(this.seed, 3, this.t), 55, 80) : 80,
        kw: this.spec.dcKw,
        resume: d,
      });
    }
  }

  private advanceCharge(until: number): void {
    const c = this.charge!;
    // DC tapers hard above 80 %; AC is flat.
    const kw = c.port === 'DC' && this.soc >= 80 ? c.kw * 0.3 : c.kw;
    const ratePerHour = ((kw * 0.92) / this.usableKwh()) * 100;
    const hoursToTarget = Math.max(0, (c.target - this.soc) / ratePerHour);
    const hours = (until - this.t) / HOUR;
    this.v12Rest = Math.min(V12_FULL, this.v12Rest + 0.1 * hours);
    if (hoursToTarget <= hours) {
      this.soc = c.target;
      this.age(hoursToTarget * HOUR);
      this.t += Math.max(1, Math.round(hoursToTarget * HOUR));
      return this.endCharge();
    }
    this.soc += ratePerHour * hours;
    this.age(until - this.t);
    this.t = until;
  }

  private startTrip(trip: Trip): void {
    this.planIdx++;
    this.plugInAt = null;
    if (this.mode === 'charging') this.endCharge(true);
    this.plugged = false;
    if (this.v12Rest < 11.7) this.faults.raise(LOW_SYSTEM_VOLTAGE_DTC, this.t, 2 * DAY);
    const eff = between(rngFor(this.seed, 4, this.t), 0.92, 1.12);
    this.mode = 'driving';
    this.drive = { remainingKm: trip.km * eff, speed: trip.speed, home: trip.home, service: trip.service === true };
    this.mark();
  }

  private endTrip(d: Drive): void {
    this.drive = null;
    this.mode = 'parked';
    if (d.home) this.awayKm = 0;
    if (d.service) this.recordService();
    if (this.spec.tankL > 0 && this.fuel < this.persona.refuelAtFuel) this.fuel = 100;
    if (this.spec.batteryKwh > 0) this.chargeAfterTrip(d.home);
    this.mark();
  }

  /** The owner's charging habit decides what happens on arrival. */
  private chargeAfterTrip(home: boolean): void {
    const habit = this.persona.chargeHabit;
    const r = rngFor(this.seed, 5, this.t);
    if (habit === 'dc_heavy') {
      if (this.soc < 38 && this.powertrain === 'BEV')
        this.startCharge({ port: 'DC', target: between(r, 80, 92), kw: this.spec.dcKw, resume: null });
      return;
    }
    const target = home ? homeChargeTarget(habit, this.soc, r) : null;
    if (target !== null) {
      this.plugInAt = {
        at: this.t + Math.round(between(r, 3, 20) * 60_000),
        charge: { port: 'AC', target, kw: this.spec.acKw, resume: null },
      };
    }
  }

  private startCharge(c: Charge): void {
    if (c.kw <= 0 || c.target <= this.soc) return;
    this.mode = 'charging';
    this.charge = c;
    this.plugged = true;
    if (c.port === 'DC') this.soh = Math.max(50, this.soh - 0.012); // fast charging ages the pack
    this.mark();
  }

  private endCharge(unplug = false): void {
    const c = this.charge;
    this.charge = null;
    this.mode = 'parked';
    // full_and_leave owners leave the car plugged in at 100 %; everyone else unplugs.
    this.plugged = !unplug && c?.port === 'AC' && this.persona.chargeHabit === 'full_and_leave';
    if (c?.resume) {
      this.plugged = false;
      this.mode = 'driving';
      this.drive = c.resume;
    }
    this.mark();
  }

  private wantsService(dayStart: number, r: () => number): boolean {
    const state = {
      powertrain: this.powertrain,
      discipline: this.persona.serviceDiscipline,
      odometer: this.odo,
      lastServiceOdo: this.lastServiceOdo,
      lastServiceTs: this.lastServiceTs,
      serviceCount: this.serviceCount,
      avgKmPerDay: this.avgKm,
    };
    return wantsService(state, dayStart, r, rngFor(this.seed, 6, this.serviceCount));
  }

  private recordService(): void {
    const first = this.serviceCount === 0;
    const items = serviceItems(this.powertrain, first);
    for (const code of this.faults.repair(this.t)) items.push(`repair_${code}`);
    if (this.v12Rest < 12.3 || this.v12Sag > 0.1) {
      items.push('12v_battery_replacement');
      this.v12Sag = 0.08;
      this.v12Rest = V12_FULL;
    }
    this.lastServiceTs = this.t;
    this.lastServiceOdo = round1(this.odo);
    this.serviceCount++;
    this.pendingVisit = { date: new Date(this.t).toISOString(), odometer: round1(this.odo), items };
  }

  private planDay(localDay: number): void {
    this.plannedDay = localDay;
    const dayStart = localDay * DAY - this.tzMs;
    const r = rngFor(this.seed, 7, localDay);
    this.faults.planDay(r, dayStart, this.t);
    this.plan = [];
    this.planIdx = 0;
    if (dayStart >= this.lostAt || dayStart < this.dormantUntil) return;
    if (r() < this.persona.dormancyChancePerDay) {
      this.dormantUntil = dayStart + between(r, 14, 40) * DAY;
      return;
    }
    const fade = this.persona.fadeOverDays;
    if (fade !== undefined && r() > Math.max(0.1, 1 - (dayStart - this.startTs) / (fade * DAY))) return; // drifting away
    const weekday = new Date(localDay * DAY).getUTCDay();
    const serviceToday = weekday !== 0 && this.wantsService(dayStart, r);
    // Whole milliseconds, so readings land on the same instants however finely the caller samples.
    this.plan = planTrips(r, this.persona, { dayStart, weekday, serviceToday }).map((t) => ({ ...t, start: Math.round(t.start) }));
  }

  private signals(): Signals {
    const noise = unitFor(this.seed, 9, this.t);
    const driving = this.mode === 'driving';
    const charging = this.mode === 'charging';
    const s: Signals = {
      [VSS.odometer]: round1(this.odo),
      [VSS.speed]: driving ? round1(this.drive!.speed * (0.7 + 0.6 * noise)) : 0,
      [VSS.lowVoltageSystemState]: driving ? 'ON' : 'OFF',
      [VSS.voltage12v]:
        Math.round((driving ? 14.0 + 0.4 * noise : charging ? 13.6 + 0.3 * noise : this.v12Rest + 0.04 * (noise - 0.5)) * 100) / 100,
    };
    if (this.spec.batteryKwh > 0) {
      s[VSS.soc] = Math.min(100, Math.max(0, round1(this.soc)));
      s[VSS.soh] = round1(this.soh);
      s[VSS.isCharging] = charging;
      s[VSS.chargePortType] = charging ? this.charge!.port : 'NONE';
    }
    if (this.spec.tankL > 0) s[VSS.fuelLevel] = Math.min(100, Math.max(0, round1(this.fuel)));
    if (this.location) {
      const bearing = unitFor(this.seed, 10) * 2 * Math.PI;
      const lat = this.persona.home.lat + (this.awayKm * Math.cos(bearing)) / 111;
      const lon = this.persona.home.lon + (this.awayKm * Math.sin(bearing)) / (111 * Math.cos((lat * Math.PI) / 180));
      s[VSS.latitude] = Math.round(lat * 1e5) / 1e5;
      s[VSS.longitude] = Math.round(lon * 1e5) / 1e5;
    }
    return s;
  }
}

export function createVehicleModel(opts: VehicleModelOptions): VehicleModel {
  return new SimVehicle(opts);
}
