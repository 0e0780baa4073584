// Targeting and capping as pure functions, at and around every boundary (docs/domain.md#campaign-targeting).
import { describe, expect, it } from 'vitest';
import { capAllows, matchesAudience, matchesProfile, shouldTarget, statusAt } from '../../../ingest/campaigns/targeting.js';
import { commandTarget, followStep, funnelBySegment, funnelOf } from '../../../ingest/campaigns/model.js';
import type { Vehicle } from '../../../proto/domain.js';
import type { Segments } from '../../../rules/types.js';
import { campaign, delivery } from '../../ports/campaign-store.suite.js';
import { T0, VIN_A, VIN_B } from '../../ports/fixtures.js';

const DAY = 86_400_000;
const profile: Vehicle = {
  vin: VIN_A,
  model: 'Aurora EV',
  powertrain: 'BEV',
  deliveryDate: '2025-01-01',
  dealerId: 'D1',
  locale: 'en',
  vehicleType: 'passenger',
};
const dormant: Segments = { stage: 'active_owner', activity: 'dormant', maturity: 'skilled' };
const active: Segments = { ...dormant, activity: 'active' };

describe('campaign audience', () => {
  it('every listed tier and profile field must match; absent or empty lists match all', () => {
    expect(matchesAudience({}, VIN_A, profile, dormant)).toBe(true);
    expect(matchesAudience({ activity: [] }, VIN_A, profile, active)).toBe(true);
    expect(matchesAudience({ activity: ['dormant'] }, VIN_A, profile, dormant)).toBe(true);
    expect(matchesAudience({ activity: ['dormant'] }, VIN_A, profile, active)).toBe(false);
    expect(matchesAudience({ activity: ['dormant', 'active'], stage: ['new_owner'] }, VIN_A, profile, active)).toBe(false);
    expect(matchesAudience({ maturity: ['skilled'], model: ['Aurora EV'], powertrain: ['BEV'] }, VIN_A, profile, dormant)).toBe(true);
    expect(matchesAudience({ powertrain: ['ICE'] }, VIN_A, profile, dormant)).toBe(false);
    expect(matchesAudience({ dealerId: ['D2'] }, VIN_A, profile, dormant)).toBe(false);
    expect(matchesAudience({ vehicleType: ['commercial'] }, VIN_A, profile, dormant)).toBe(false);
    expect(matchesAudience({ vins: [VIN_B] }, VIN_A, profile, dormant)).toBe(false);
    expect(matchesAudience({ vins: [VIN_A] }, VIN_A, profile, dormant)).toBe(true);
  });

  it('a vehicle without a profile or without segments yet is in no audience; the profile part alone ignores segments', () => {
    expect(matchesAudience({}, VIN_A, undefined, dormant)).toBe(false);
    expect(matchesAudience({}, VIN_A, profile, null)).toBe(false);
    expect(matchesProfile({ activity: ['dormant'] }, VIN_A, profile)).toBe(true);
    expect(matchesProfile({ dealerId: ['D2'] }, VIN_A, profile)).toBe(false);
  });
});

describe('campaign window and state', () => {
  const c = campaign({ startsAt: new Date(T0).toISOString(), endsAt: new Date(T0 + DAY).toISOString() });
  it('scheduled before startsAt, active from startsAt, ended from endsAt', () => {
    expect(statusAt(c, T0 - 1)).toBe('scheduled');
    expect(statusAt(c, T0)).toBe('active');
    expect(statusAt(c, T0 + DAY - 1)).toBe('active');
    expect(statusAt(c, T0 + DAY)).toBe('ended');
    expect(statusAt({ ...c, state: 'paused' }, T0)).toBe('paused');
    expect(statusAt({ ...c, state: 'paused' }, T0 + DAY)).toBe('ended');
    expect(statusAt({ ...c, state: 'cancelled' }, T0 + DAY)).toBe('cancelled');
  });

  it('targets only while active', () => {
    expect(shouldTarget(c, VIN_A, profile, dormant, [], T0 - 1)).toBe(false);
    expect(shouldTarget(c, VIN_A, profile, dormant, [], T0)).toBe(true);
    expect(shouldTarget(c, VIN_A, profile, dormant, [], T0 + DAY)).toBe(false);
    expect(shouldTarget({ ...c, state: 'paused' }, VIN_A, profile, dormant, [], T0)).toBe(false);
    expect(shouldTarget({ ...c, state: 'cancelled' }, VIN_A, profile, dormant, [], T0)).toBe(false);
  });

  it('never a vehicle whose locale the message lacks', () => {
    expect(shouldTarget({ ...c, message: { 'zh-CN': { title: 't', body: 'b' } } }, VIN_A, profile, dormant, [], T0)).toBe(false);
  });

  it('pause from active, resume from paused, cancel from either; nothing after cancel or the end', () => {
    expect(commandTarget(c, 'pause', T0)).toBe('paused');
    expect(commandTarget(c, 'resume', T0)).toBeUndefined();
    expect(commandTarget({ ...c, state: 'paused' }, 'resume', T0)).toBe('active');
    expect(commandTarget({ ...c, state: 'paused' }, 'pause', T0)).toBeUndefined();
    expect(commandTarget({ ...c, state: 'paused' }, 'cancel', T0)).toBe('cancelled');
    expect(commandTarget(c, 'cancel', T0 - DAY)).toBe('cancelled'); // a scheduled one may be cancelled
    expect(commandTarget({ ...c, state: 'cancelled' }, 'resume', T0)).toBeUndefined();
    expect(commandTarget({ ...c, state: 'cancelled' }, 'cancel', T0)).toBeUndefined();
    expect(commandTarget(c, 'pause', T0 + DAY)).toBeUndefined();
    expect(commandTarget(c, 'cancel', T0 + DAY)).toBeUndefined();
  });
});

describe('frequency cap', () => {
  it('without a cap: once per vehicle, a message withdrawn unseen not counted', () => {
    const c = campaign();
    expect(capAllows(c, [], T0)).toBe(true);
    expect(capAllows(c, [delivery({ state: 'acted', deliveredAt: T0, shownAt: T0, actedAt: T0 })], T0 + 100 * DAY)).toBe(false);
    expect(capAllows(c, [delivery({ state: 'withdrawn', closedAt: T0 })], T0)).toBe(true);
    expect(capAllows(c, [delivery({ state: 'withdrawn', deliveredAt: T0, closedAt: T0 })], T0)).toBe(true);
    expect(capAllows(c, [delivery({ state: 'dismissed', deliveredAt: T0, shownAt: T0, dismissedAt: T0, closedAt: T0 })], T0)).toBe(false);
  });

  it('a live message (targeted, on the car) always waits, whatever the cap', () => {
    const c = campaign({ frequencyCap: { perVehicle: 5, perDays: 1 } });
    expect(capAllows(c, [delivery({ targetedAt: T0 - 30 * DAY })], T0)).toBe(false);
    expect(capAllows(c, [delivery({ state: 'delivered', deliveredAt: T0, targetedAt: T0 - 30 * DAY })], T0)).toBe(false);
  });

  it('perVehicle in any perDays days: a delivery exactly perDays old no longer counts', () => {
    const c = campaign({ frequencyCap: { perVehicle: 2, perDays: 7 } });
    const seen = (at: number, occurrence: number) =>
      delivery({
        occurrence,
        promptId: `p_${occurrence}`,
        targetedAt: at,
        state: 'dismissed',
        deliveredAt: at,
        shownAt: at,
        dismissedAt: at,
      });
    expect(capAllows(c, [seen(T0, 1)], T0 + 1)).toBe(true);
    const two = [seen(T0, 1), seen(T0 + DAY, 2)];
    expect(capAllows(c, two, T0 + 7 * DAY - 1)).toBe(false);
    expect(capAllows(c, two, T0 + 7 * DAY)).toBe(true); // the first left the window
    expect(capAllows(c, [seen(T0, 1), seen(T0 + DAY, 2), seen(T0 + 7 * DAY, 3)], T0 + 8 * DAY - 1)).toBe(false);
    expect(capAllows(c, [seen(T0, 1), seen(T0 + DAY, 2), seen(T0 + 7 * DAY, 3)], T0 + 8 * DAY)).toBe(true);
  });
});

describe('delivery path and funnel', () => {
  it('follows its prompt: delivered, shown, acted; a withdrawal after the owner saw it keeps the reaction', () => {
    const d0 = delivery();
    expect(followStep(d0, 'created', T0)).toBeUndefined();
    expect(followStep(d0, 'acknowledged', T0)).toBeUndefined();
    const d1 = followStep(d0, 'delivered', T0 + 1)!;
    expect(d1).toMatchObject({ state: 'delivered', deliveredAt: T0 + 1, shownAt: null });
    const d2 = followStep(d1, 'acted', T0 + 2)!; // ACTED without SHOWN: the owner saw it
    expect(d2).toMatchObject({ state: 'acted', deliveredAt: T0 + 1, shownAt: T0 + 2, actedAt: T0 + 2 });
    expect(followStep(d2, 'expired', T0 + 3)).toMatchObject({ state: 'acted', closedAt: T0 + 3 });
    expect(followStep(d0, 'withdrawn', T0 + 1)).toMatchObject({ state: 'withdrawn', closedAt: T0 + 1, deliveredAt: null });
    // an ack without a prior PUBACK records delivered too
    expect(followStep(d0, 'dismissed', T0 + 5)).toMatchObject({ state: 'dismissed', deliveredAt: T0 + 5, shownAt: T0 + 5 });
  });

  it('counts each stage and conversion = acted ÷ delivered, overall and per segment', () => {
    const rows = [
      delivery({ promptId: 'a' }),
      delivery({ promptId: 'b', vin: VIN_B, state: 'delivered', deliveredAt: T0 }),
      delivery({ promptId: 'c', occurrence: 2, state: 'acted', deliveredAt: T0, shownAt: T0, actedAt: T0 }),
      delivery({
        promptId: 'd',
        occurrence: 3,
        state: 'dismissed',
        deliveredAt: T0,
        shownAt: T0,
        dismissedAt: T0,
        segments: { ...dormant, maturity: 'novice' },
      }),
      delivery({ promptId: 'e', occurrence: 4, state: 'withdrawn', closedAt: T0 }),
    ];
    expect(funnelOf(rows)).toEqual({
      targeted: 5,
      pending: 1,
      delivered: 3,
      shown: 2,
      dismissed: 1,
      acted: 1,
      withdrawn: 1,
      expired: 0,
      conversion: 1 / 3,
    });
    expect(funnelOf([]).conversion).toBeNull();
    const seg = funnelBySegment(rows);
    expect(seg.map((s) => [s.maturity, s.targeted, s.delivered, s.acted])).toEqual([
      ['novice', 1, 1, 0],
      ['skilled', 4, 2, 1],
    ]);
  });
});
