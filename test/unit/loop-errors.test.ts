// Every background loop has an error path that logs, counts (odopulse_loop_errors_total{loop}) and
// carries on: the pipeline's loops, and HMI delivery / withdraw behind the prompt fan-out.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createMetrics } from '../../ingest/metrics.js';
import { PromptFanout } from '../../ingest/prompts/fanout.js';
import type { Prompt, PromptChange } from '../../ingest/store/ports.js';
import { createMemoryStores } from '../../ingest/stores.js';
import { DEFAULT_RULES_CONFIG } from '../../rules/config.js';
import { RulesPool } from '../../rules/pool.js';
import { waitFor } from '../support/wait.js';
import {
  counterValue,
  ensureWorkerBuilt,
  parked,
  removeDirs,
  startIngestParts,
  T0,
  tempDir,
  TestTelemetry,
  VIN_A,
} from './pipeline/harness.js';

describe('loop errors are counted and the loop goes on', () => {
  let pool: RulesPool;
  const dirs: string[] = [];
  beforeAll(() => {
    ensureWorkerBuilt();
    pool = new RulesPool({ threads: 1, config: DEFAULT_RULES_CONFIG });
  });
  afterAll(async () => {
    await pool.close();
    removeDirs(dirs);
  });

  it('a pipeline step that throws is counted per loop, logged, and retried', async () => {
    const i = await startIngestParts({ dir: tempDir(dirs), stores: createMemoryStores(), telemetry: new TestTelemetry(), pool });
    await i.send(VIN_A, 1, [parked(T0, 80)]);
    // the journal goes away under the loops (as a vanished data dir would): every step now throws
    i.journal.close();
    i.pipeline.start();
    await waitFor(async () => (await counterValue(i.metrics.loopErrors, { loop: 'pipeline_rules' })) >= 2, {
      what: 'the rules loop failing twice (retried after the first)',
      timeoutMs: 10_000,
    });
    expect(await counterValue(i.metrics.loopErrors, { loop: 'pipeline_influx' })).toBeGreaterThanOrEqual(1);
    expect(i.log.lines.some((l) => l.m === 'pipeline step failed; retrying')).toBe(true);
    await i.pipeline.stop();
  });

  it('a failing HMI delivery or withdraw is counted and logged, never thrown', async () => {
    const metrics = createMetrics();
    const warnings: string[] = [];
    const fanout = new PromptFanout({
      recorder: { commit: (fn) => fn() },
      hmi: {
        deliver: () => Promise.reject(new Error('broker gone')),
        withdraw: () => Promise.reject(new Error('broker gone')),
        holdsBack: () => false,
      },
      dispatcher: null,
      log: { warn: (_o, m) => void warnings.push(m ?? '') },
      onError: (loop) => metrics.loopErrors.inc({ loop }),
    });
    const prompt = { id: 'p_x', vin: VIN_A, hmiState: 'withdrawn' } as Prompt;
    const change = { seq: 1, promptId: 'p_x', vin: VIN_A, dealerId: null, step: 'withdrawn', at: '', by: null, prompt } as PromptChange;
    fanout.published([change]); // withdraw, then deliver for the vehicle
    await waitFor(async () => (await counterValue(metrics.loopErrors, { loop: 'hmi_delivery' })) === 1, {
      what: 'the delivery failure counted',
    });
    expect(await counterValue(metrics.loopErrors, { loop: 'hmi_withdraw' })).toBe(1);
    expect(warnings).toEqual(expect.arrayContaining(['HMI withdraw failed', 'HMI delivery failed; retried on the next sweep']));
  });
});
