// After a rules step the fan-out asks the HMI to deliver to the vehicles whose prompts changed
// (with the changes, first) and then only to those holding prompts back, not to every vehicle of the
// step: that was three store reads per vehicle ahead of an urgent prompt.
import { describe, expect, it } from 'vitest';
import { PromptFanout } from '../../ingest/prompts/fanout.js';
import type { Prompt, PromptChange } from '../../ingest/store/ports.js';

function fanoutWith(heldBack: Set<string>) {
  const calls: string[][] = [];
  const fanout = new PromptFanout({
    recorder: { commit: (fn) => fn() },
    hmi: {
      deliver: (vins) => {
        calls.push([...vins]);
        return Promise.resolve();
      },
      withdraw: () => Promise.resolve(),
      holdsBack: (vin) => heldBack.has(vin),
    },
    dispatcher: null,
    log: { warn: () => undefined },
  });
  return { fanout, calls };
}

const change = (vin: string): PromptChange =>
  ({
    step: 'created',
    seq: 1,
    at: '2026-03-01T08:00:00.000Z',
    vin,
    prompt: { id: `p-${vin}`, vin, hmiState: 'pending' } as Prompt,
  }) as PromptChange;

describe('HMI delivery after a rules step', () => {
  it('delivers to the changed vehicles with their changes, then only to the held-back ones of the step', () => {
    const { fanout, calls } = fanoutWith(new Set(['V2', 'V4']));
    fanout.published([change('V1')], true);
    fanout.stepApplied(['V1', 'V2', 'V3', 'V4', 'V5']);
    expect(calls).toEqual([['V1'], ['V2', 'V4']]);
  });

  it('asks nothing when no vehicle of the step holds prompts back', () => {
    const { fanout, calls } = fanoutWith(new Set());
    fanout.stepApplied(['V1', 'V2']);
    expect(calls).toEqual([]);
  });
});
