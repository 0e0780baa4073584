// Lifecycle webhooks end to end: a receiver that is down (and an ingest restart in the middle) loses
// nothing; every event is signed, and its id is stable across retries.
import http from 'node:http';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CloudEvent } from '../../ingest/outbound/cloudevents.js';
import { verifySignature } from '../../ingest/outbound/webhook.js';
import { startInfluxd, type InfluxdHandle } from '../support/influxd.js';
import { apiGet, apiRequest, promptsOf, putVehicle, runAgentProcess, startIngestProcess, type IngestProcess } from '../support/ingest.js';
import type { PromptActionJson } from '../support/api.js';
import { freePort } from '../support/ports.js';
import { lowChargeAndFaultScenario, PROFILE, writeReplay } from '../support/scenario.js';
import { waitFor } from '../support/wait.js';

const VIN = 'LSVAU2180N2183310';
const SECRET = 'test-webhook-secret';
const tmp = mkdtempSync(join(tmpdir(), 'odopulse-webhook-'));
let influx: InfluxdHandle;
let ingest: IngestProcess | undefined;
let server: http.Server;
let up = false;
const attempts: string[] = [];
/** Prompt events carry the prompt (id, by); segment events carry other data. */
const accepted = new Map<string, CloudEvent<{ id?: string; by?: string | null }>>();
let badSignatures = 0;

beforeAll(async () => {
  influx = await startInfluxd({ database: 'hooks' });
  const port = await freePort();
  server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (d) => (body += d));
    req.on('end', () => {
      const id = String(req.headers['webhook-id']);
      attempts.push(id);
      if (!verifySignature(SECRET, req.headers as Record<string, string>, body, 300)) badSignatures++;
      if (!up) {
        res.writeHead(503).end();
        return;
      }
      accepted.set(id, JSON.parse(body) as CloudEvent<{ id?: string; by?: string | null }>);
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((r) => server.listen(port, '127.0.0.1', () => r()));
  ingest = await startIngestProcess({
    INFLUX_URL: influx.url,
    INFLUX_BUCKET: 'hooks',
    ODOPULSE_CLOCK: 'event',
    ODOPULSE_WEBHOOK_URL: `http://127.0.0.1:${port}/events`,
    ODOPULSE_WEBHOOK_SECRET: SECRET,
    ODOPULSE_WEBHOOK_MAX_BACKOFF_MS: '300',
  });
});

afterAll(async () => {
  await ingest?.stop();
  await new Promise((r) => server.close(r));
  await influx?.stop();
});

describe('lifecycle webhooks', () => {
  it('delivers every prompt change as a signed CloudEvent through a receiver outage and an ingest restart', async () => {
    await putVehicle(ingest!, VIN, PROFILE);
    const { lines } = lowChargeAndFaultScenario(VIN);
    const file = join(tmp, 'w.jsonl');
    writeReplay(file, lines);
    const agent = await runAgentProcess([
      '--vin',
      VIN,
      '--broker',
      ingest!.mqttUrl,
      '--replay',
      file,
      '--speed',
      '0',
      '--spool',
      join(tmp, 'spool'),
    ]);
    expect(agent.code, agent.output).toBe(0);

    // the receiver is down: attempts are made and refused
    await waitFor(() => attempts.length >= 5, { what: 'refused attempts' });
    const prompts = (await waitFor(
      async () => {
        const items = await promptsOf(ingest!, VIN);
        return items.filter((p) => p.kind === 'fault.dtc').length === 2 ? items : undefined;
      },
      { what: 'prompts', intervalMs: 200 },
    ))!;
    // an advisor acknowledges one while the receiver is still down; `by` is only a display name:
    // the recorded actor is it with the key that made the call
    const { principal } = await apiGet<{ principal: { id: string; name: string } }>(ingest!, '/api/v1/session');
    const by = `advisor.li (${principal.name}, ${principal.id})`;
    const open = prompts.find((p) => p.status === 'open' || p.status === 'delivered')!;
    const ack = await apiRequest(ingest!, 'POST', `/api/v1/prompts/${open.id}/ack`, { by: 'advisor.li', note: 'calling the owner' });
    expect(ack.status).toBe(200);
    expect(((await ack.json()) as PromptActionJson).change?.by).toBe(by);

    // ingest restarts while the receiver is down (the same key stays valid), then the receiver recovers
    const reuse = { dataDir: ingest!.dataDir, httpPort: ingest!.httpPort, mqttPort: ingest!.mqttPort, token: ingest!.token };
    await ingest!.stop('SIGKILL');
    ingest = await startIngestProcess(ingest!.env, reuse);
    up = true;

    const created = () => [...accepted.values()].filter((e) => e.type === 'com.odopulse.prompt.created').map((e) => e.data.id);
    await waitFor(() => prompts.every((p) => created().includes(p.id)), { timeoutMs: 60_000, what: 'a created event for every prompt' });
    await waitFor(() => [...accepted.values()].some((e) => e.type === 'com.odopulse.prompt.acknowledged' && e.data.by === by), {
      what: 'the acknowledgement event',
    });
    const withdrawn = [...accepted.values()].filter((e) => e.type === 'com.odopulse.prompt.withdrawn');
    expect(withdrawn.length).toBeGreaterThan(0);
    expect(badSignatures).toBe(0);
    for (const e of accepted.values()) {
      expect(e.specversion).toBe('1.0');
      expect(e.subject).toBe(VIN);
      expect(e.id).toMatch(/\S/);
    }
    // ids are stable across retries: every event refused while the receiver was down is accepted
    // under the same id (each in its own backoff: waited for, not assumed done with the others)
    const refusedBeforeUp = new Set(attempts.slice(0, 5));
    await waitFor(() => [...refusedBeforeUp].every((id) => accepted.has(id)), {
      what: 'every id refused while the receiver was down, accepted under that id',
    });
    // each event accepted once per id (the receiver may see retries, never a new id for the same change)
    expect(created().length).toBe(new Set(created()).size);
  });
});
