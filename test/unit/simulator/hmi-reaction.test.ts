// The simulated head units' reactions to campaign messages (simulator/hmi.ts): deterministic per
// seed and prompt, and in proportion to the persona's probabilities.
import { describe, expect, it } from 'vitest';
import { CAMPAIGN_RESPONSE, campaignReaction } from '../../../simulator/hmi.js';
import { ARCHETYPES } from '../../../simulator/persona.js';

describe('simulated head units and campaign messages', () => {
  it('the same seed and prompt give the same reaction', () => {
    for (const a of ARCHETYPES) expect(campaignReaction(a, 7, 'p_abc')).toBe(campaignReaction(a, 7, 'p_abc'));
  });

  it('reacts in proportion to the persona: acts, dismisses or only looks', () => {
    const n = 4000;
    for (const a of ['weekend_driver', 'fleet_van', 'lost'] as const) {
      const got = { ACTED: 0, DISMISSED: 0, none: 0 };
      for (let i = 0; i < n; i++) got[campaignReaction(a, 7, `p_${i}`) ?? 'none']++;
      const r = CAMPAIGN_RESPONSE[a];
      expect(got.ACTED / n, a).toBeCloseTo(r.act, 1);
      expect(got.DISMISSED / n, a).toBeCloseTo(r.dismiss, 1);
    }
    // personas differ: a weekend driver acts far more often than a fleet van's driver
    expect(CAMPAIGN_RESPONSE.weekend_driver.act).toBeGreaterThan(5 * CAMPAIGN_RESPONSE.fleet_van.act);
  });
});
