// The rules engine's hot-path caches (memoised due points and segment boundaries, per-string
// date parsing, copy-on-write state, the fast calendar arithmetic) must not change what it
// decides. A long, varied run gives the same events and final state when each vehicle runs alone
// on freshly loaded modules with live state objects (its memos only ever hold its own values)
// and when all vehicles run interleaved call by call on one module instance, with the state
// JSON round-tripped between every call, fresh profile objects and alternating engine instances
// (a memo keyed on too little would leak one vehicle's values into another's decisions).
import { describe, expect, it, vi } from 'vitest';
import { VSS } from '../../../proto/signals.js';
import type { Engine } from '../../../rules/engine.js';
import type { FleetClock, Reading, RuleEvent, ServiceRecord, Signals, Vehicle, VehicleRuleState } from '../../../rules/types.js';
import { mulberry32 } from '../../../simulator/rng.js';

const DAY = 86_400_000;
const MIN = 60_000;
const READINGS = 20_000;

type Step = { kind: 'readings'; readings: Reading[] } | { kind: 'tick'; now: number } | { kind: 'service'; record: ServiceRecord };

/** A vehicle's script: batches of readings over ~1.5 years with drives, parks, long gaps, visits. */
function script(profile: Vehicle, seed: number): Step[] {
  const rnd = mulberry32(seed);
  const steps: Step[] = [];
  let ts = Date.parse(`${profile.deliveryDate}T07:00:00Z`) + Math.floor(rnd() * 40) * DAY;
  let odo = 10 + rnd() * 100;
  let soc = 70;
  let v12 = 12.6;
  let driving = false;
  let left = 0;
  let dtcs: string[] = [];
  let lastDay = Math.floor(ts / DAY);
  let batch: Reading[] = [];
  const flush = () => {
    if (batch.length) steps.push({ kind: 'readings', readings: batch });
    batch = [];
  };
  for (let n = 0; n < READINGS; n++) {
    if (left-- <= 0) {
      driving = !driving && rnd() < 0.7;
      left = 5 + Math.floor(rnd() * 60);
      // Now and then a long park: dormant, lost, then back.
      if (!driving && rnd() < 0.03) ts += Math.floor(rnd() * 100) * DAY;
    }
    ts += driving ? MIN + Math.floor(rnd() * 4 * MIN) : 20 * MIN + Math.floor(rnd() * 6 * 60 * MIN);
    const speed = driving ? Math.round(20 + rnd() * 90) : 0;
    odo += driving ? speed * 0.03 : 0;
    soc = driving ? Math.max(3, soc - rnd() * 2) : Math.min(100, soc + (rnd() < 0.3 ? 5 : 0));
    v12 = driving ? 14.1 : Math.max(10.9, v12 - rnd() * 0.05);
    if (driving && v12 < 12) v12 = 14;
    if (!driving && rnd() < 0.02) v12 = 12.6;
    const signals: Signals = {
      [VSS.odometer]: Math.round(odo * 10) / 10,
      [VSS.speed]: speed,
      [VSS.lowVoltageSystemState]: driving ? 'ON' : 'OFF',
      [VSS.voltage12v]: Math.round(v12 * 100) / 100,
    };
    if (profile.powertrain !== 'ICE') {
      signals[VSS.soc] = Math.round(soc * 10) / 10;
      signals[VSS.isCharging] = !driving && soc < 100 && rnd() < 0.3;
      signals[VSS.chargePortType] = signals[VSS.isCharging] ? (rnd() < 0.5 ? 'DC' : 'AC') : 'NONE';
      if (n % 50 === 0) signals[VSS.soh] = Math.round((100 - n / 2000) * 10) / 10;
    }
    const r: Reading = { vin: profile.vin, ts, signals };
    if (n % 40 === 0) {
      dtcs = dtcs.length && rnd() < 0.5 ? [] : rnd() < 0.1 ? ['P0300'] : dtcs;
      r.dtcs = dtcs;
    }
    // A replayed (late) reading now and then.
    if (n % 997 === 0 && batch.length) batch.push({ ...batch[0], ts: batch[0].ts - MIN });
    batch.push(r);
    const day = Math.floor(ts / DAY);
    if (day !== lastDay || batch.length >= 1 + Math.floor(rnd() * 60)) {
      flush();
      if (day !== lastDay) steps.push({ kind: 'tick', now: day * DAY + 5 * MIN });
      lastDay = day;
    }
    if (n > 0 && n % 6000 === 0) {
      flush();
      steps.push({ kind: 'service', record: { date: new Date(ts).toISOString().slice(0, 10), odometer: Math.round(odo), items: ['oil'] } });
    }
  }
  flush();
  return steps;
}

const PROFILES: Vehicle[] = [
  {
    vin: 'LSVEQUIV000000001',
    model: 'Aurora',
    powertrain: 'BEV',
    vehicleType: 'passenger',
    dealerId: 'D1',
    locale: 'en',
    deliveryDate: '2025-01-31',
  },
  {
    vin: 'LSVEQUIV000000002',
    model: 'Borealis',
    powertrain: 'PHEV',
    vehicleType: 'passenger',
    dealerId: 'D1',
    locale: 'zh-CN',
    deliveryDate: '2025-02-28',
  },
  {
    vin: 'LSVEQUIV000000003',
    model: 'Cargo',
    powertrain: 'BEV',
    vehicleType: 'commercial',
    dealerId: 'D2',
    locale: 'en',
    deliveryDate: '2024-12-15',
  },
  {
    vin: 'LSVEQUIV000000004',
    model: 'Classic',
    powertrain: 'ICE',
    vehicleType: 'passenger',
    dealerId: 'D2',
    locale: 'zh-CN',
    deliveryDate: '2025-03-31',
  },
  // Same model as the first, so the same config objects: only the dates tell the vehicles apart.
  {
    vin: 'LSVEQUIV000000005',
    model: 'Aurora',
    powertrain: 'BEV',
    vehicleType: 'passenger',
    dealerId: 'D3',
    locale: 'en',
    deliveryDate: '2024-06-30',
  },
  {
    vin: 'LSVEQUIV000000006',
    model: 'Aurora',
    powertrain: 'BEV',
    vehicleType: 'passenger',
    dealerId: 'D3',
    locale: 'en',
    deliveryDate: '2025-01-31',
  },
];

interface Outcome {
  events: RuleEvent[][];
  states: VehicleRuleState[];
  failures: string[];
}

function apply(engine: Engine, state: VehicleRuleState | undefined, profile: Vehicle, step: Step) {
  const last = step.kind === 'readings' ? step.readings[step.readings.length - 1].ts : step.kind === 'tick' ? step.now : 0;
  const clock: FleetClock = { now: () => last };
  if (step.kind === 'readings') return engine.onReadings(state, profile.vin, profile, step.readings, clock);
  if (step.kind === 'tick') return engine.onTick(state, profile.vin, profile, clock);
  return engine.onServiceRecord(state, profile.vin, profile, step.record, clock);
}

function deepFreeze<T>(x: T): T {
  if (x && typeof x === 'object' && !Object.isFrozen(x)) {
    Object.freeze(x);
    for (const v of Object.values(x)) deepFreeze(v);
  }
  return x;
}

/** Freezes a whole state: no detector may change the state it was given. */
function freezeState(st: VehicleRuleState): VehicleRuleState {
  return deepFreeze(st);
}

/** A fresh copy of the rules modules: no memo holds anything yet. */
async function freshEngine(): Promise<Engine> {
  vi.resetModules();
  const { createEngine } = await import('../../../rules/engine.js');
  const { DEFAULT_RULES_CONFIG } = await import('../../../rules/config.js');
  return createEngine(JSON.parse(JSON.stringify(DEFAULT_RULES_CONFIG)));
}

/** Each vehicle alone on fresh modules, live state objects. */
async function runAlone(scripts: Step[][]): Promise<Outcome> {
  const out: Outcome = { events: [], states: [], failures: [] };
  for (let v = 0; v < scripts.length; v++) {
    const steps = scripts[v];
    const engine = await freshEngine();
    let state: VehicleRuleState | undefined;
    const events: RuleEvent[] = [];
    for (const step of steps) {
      const r = apply(engine, state, PROFILES[v], step);
      state = r.state;
      events.push(...r.events);
      for (const f of r.failures) out.failures.push(`${f.family}: ${f.message}`);
    }
    out.events.push(events);
    out.states.push(state!);
  }
  return out;
}

/** Vehicles interleaved step by step, JSON round trip of state and profile, alternating engines. */
async function runRoundTrip(scripts: Step[][]): Promise<Outcome> {
  vi.resetModules();
  const { createEngine } = await import('../../../rules/engine.js');
  const { DEFAULT_RULES_CONFIG } = await import('../../../rules/config.js');
  const engines = [
    createEngine(JSON.parse(JSON.stringify(DEFAULT_RULES_CONFIG)) as typeof DEFAULT_RULES_CONFIG),
    createEngine(DEFAULT_RULES_CONFIG),
  ];
  const states: (string | undefined)[] = scripts.map(() => undefined);
  const events: RuleEvent[][] = scripts.map(() => []);
  const failures: string[] = [];
  let k = 0;
  const longest = Math.max(...scripts.map((s) => s.length));
  for (let i = 0; i < longest; i++) {
    for (let v = 0; v < scripts.length; v++) {
      const step = scripts[v][i];
      if (!step) continue;
      // Frozen: copy-on-write must never write into the caller's state (a write throws, and the
      // engine records it as a detector failure).
      const prev = states[v] === undefined ? undefined : freezeState(JSON.parse(states[v]!) as VehicleRuleState);
      const profile = JSON.parse(JSON.stringify(PROFILES[v])) as Vehicle;
      const r = apply(engines[k++ % 2], prev, profile, step);
      states[v] = JSON.stringify(r.state);
      events[v].push(...(JSON.parse(JSON.stringify(r.events)) as RuleEvent[]));
      for (const f of r.failures) failures.push(`${f.family}: ${f.message}`);
    }
  }
  return { events, states: states.map((s) => JSON.parse(s!) as VehicleRuleState), failures };
}

describe('rules engine caches', () => {
  it(`gives identical events and final state over ${READINGS} readings per vehicle, alone or interleaved`, async () => {
    const scripts = PROFILES.map((p, i) => script(p, 1000 + i));
    const live = await runAlone(scripts);
    const trip = await runRoundTrip(scripts);
    expect(live.failures.slice(0, 3)).toEqual([]);
    expect(trip.failures.slice(0, 3)).toEqual([]);
    // The run must exercise the date- and odometer-based logic, or the comparison proves little.
    const kinds = new Set(live.events.flat().flatMap((e) => (e.type === 'open' ? [e.prompt.kind] : [])));
    for (const k of [
      'maintenance.upcoming',
      'maintenance.due',
      'maintenance.followup',
      'usage.segment_changed',
      'usage.dormant_vehicle',
      'usage.utilisation',
    ]) {
      expect(kinds).toContain(k);
    }
    for (let v = 0; v < PROFILES.length; v++) {
      expect(JSON.parse(JSON.stringify(live.events[v]))).toEqual(trip.events[v]);
      expect(JSON.parse(JSON.stringify(live.states[v]))).toEqual(trip.states[v]);
    }
  }, 60_000);
});
