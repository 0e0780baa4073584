// Shared set-up for the HTTP tests: buildApp over the in-memory stores, a change bus like the
// pipeline's, a settable clock and helpers to register vehicles and open prompts. Requests made
// with `h.app.inject({...})` carry an operator key (with location:read) unless they set their own
// `authorization` header or `noAuth: true`; `h.keyFor()` makes keys of other roles.
import type { FastifyInstance } from 'fastify';
import { buildApp, type AppDeps } from '../../../ingest/http/app.js';
import type { HealthReport } from '../../../ingest/http/routes/ops.js';
import { createMemoryStores } from '../../../ingest/stores.js';
import type { Stores } from '../../../ingest/store/ports.js';
import { MemoryTelemetryStore } from '../../../ingest/store/memory/telemetry.js';
import type { PromptChange } from '../../../ingest/store/ports.js';
import type { VehicleProfile } from '../../../proto/domain.js';
import type { PromptDraft, PromptKind, ServiceRecord } from '../../../rules/types.js';
import { Authenticator } from '../../../ingest/auth/authenticate.js';
import { createApiKey } from '../../../ingest/auth/keys.js';
import type { OidcVerifier } from '../../../ingest/auth/oidc.js';
import type { Permission, Role } from '../../../ingest/store/ports.js';
import type { InjectOptions } from 'fastify';
import { CampaignDeliveries } from '../../../ingest/campaigns/delivery.js';
import { CampaignService } from '../../../ingest/campaigns/service.js';

export const T0 = Date.parse('2026-03-01T08:00:00Z');
export const VIN_A = 'LSVAU2180N2183294';
export const VIN_B = 'LSVAU2180N2183295';
export const VIN_C = 'WVWZZZ1KZ6W000001';

export const profile = (dealerId = 'D001', over: Partial<VehicleProfile> = {}): VehicleProfile => ({
  model: 'Aurora EV',
  powertrain: 'BEV',
  deliveryDate: '2025-06-01',
  dealerId,
  locale: 'en',
  vehicleType: 'passenger',
  ...over,
});

export interface Harness {
  app: FastifyInstance;
  deps: AppDeps;
  stores: Stores;
  telemetry: MemoryTelemetryStore;
  clock: { now(): number; set(ms: number): void; advance(ms: number): void };
  /** Every change the bus carried, in order. */
  published: PromptChange[];
  listenerCount(): number;
  serviceCalls: Array<{ vin: string; rec: ServiceRecord }>;
  profileChanges: string[];
  /** The operator key the wrapped inject sends. */
  token: string;
  /** `{ authorization: 'Bearer <operator key>' }`, for fetch against a listening app. */
  authHeader: { authorization: string };
  keyFor(role: Role, dealers?: string[], permissions?: Permission[]): Promise<string>;
  health: HealthReport | Error;
  register(vin: string, dealerId?: string): Promise<void>;
  /** Open a prompt the way the pipeline does (store + publish) and return its change. */
  openPrompt(
    vin: string,
    o?: {
      kind?: PromptKind;
      key?: string;
      severity?: PromptDraft['severity'];
      audience?: PromptDraft['audience'];
      title?: string;
      body?: string;
      evidence?: Record<string, unknown>;
      locale?: 'en' | 'zh-CN';
    },
  ): Promise<PromptChange>;
  close(): Promise<void>;
}

export async function makeHarness(over: Partial<AppDeps> = {}, o: { oidc?: OidcVerifier } = {}): Promise<Harness> {
  const stores = createMemoryStores();
  const telemetry = new MemoryTelemetryStore();
  let now = T0;
  const clock = { now: () => now, set: (ms: number) => void (now = ms), advance: (ms: number) => void (now += ms) };
  const listeners = new Set<(c: PromptChange) => void>();
  const published: PromptChange[] = [];
  const changes = {
    subscribe(fn: (c: PromptChange) => void) {
      listeners.add(fn);
      return () => void listeners.delete(fn);
    },
    publish(c: PromptChange) {
      published.push(c);
      for (const l of [...listeners]) l(c);
    },
    /** Like PromptFanout.record without an outbox: one transaction (campaign rows follow), then published. */
    async record(fn: () => Promise<PromptChange[]>) {
      const made = await stores.transaction(async () => {
        const c = await fn();
        await campaignDeliveries.track(c);
        return c;
      });
      for (const c of made) changes.publish(c);
      return made;
    },
  };
  const campaignDeliveries = new CampaignDeliveries({ stores, events: { urls: [] } });
  const h = {} as Harness;
  h.serviceCalls = [];
  h.profileChanges = [];
  h.health = { ok: true, checks: { broker: true, influx: true, workers: true } };
  const keyFor = async (role: Role, dealers: string[] = [], permissions: Permission[] = []) =>
    (
      await createApiKey(
        stores.keys,
        { name: `${role} ${dealers.join(',')}`.trim(), role, dealers, permissions, expiresAt: null, createdBy: 'test' },
        T0,
      )
    ).token;
  const token = await keyFor('operator', [], ['location:read']);
  const deps: AppDeps = {
    stores,
    authenticator: new Authenticator({ keys: stores.keys, oidc: o.oidc, now: Date.now }),
    telemetry,
    changes,
    clock,
    onServiceRecord: async (vin, rec) => {
      h.serviceCalls.push({ vin, rec });
      return stores.vehicles.addServiceRecord(vin, rec, clock.now());
    },
    onProfileChanged: (vin) => void h.profileChanges.push(vin),
    health: async () => {
      if (h.health instanceof Error) throw h.health;
      return h.health;
    },
    metrics: {
      contentType: 'text/plain; version=0.0.4; charset=utf-8',
      render: async () => '# HELP odopulse_up Up.\n# TYPE odopulse_up gauge\nodopulse_up 1\n',
    },
    campaigns: new CampaignService({ stores, delivery: campaignDeliveries, clock, record: (fn) => changes.record(fn) }),
    ...over,
  };
  const app = await buildApp(deps);
  const inject = app.inject.bind(app);
  // a URL or an options object (what the tests use); `noAuth` sends no credential at all
  (app as { inject: unknown }).inject = (o: string | (InjectOptions & { noAuth?: boolean })) => {
    const { noAuth, ...rest } = typeof o === 'string' ? { url: o, noAuth: false } : o;
    const headers = { ...(rest.headers ?? {}) } as Record<string, string>;
    if (!noAuth && !Object.keys(headers).some((k) => k.toLowerCase() === 'authorization' || k.toLowerCase() === 'cookie')) {
      headers.authorization = `Bearer ${token}`;
    }
    return inject({ ...rest, headers });
  };
  Object.assign(h, {
    token,
    authHeader: { authorization: `Bearer ${token}` },
    keyFor,
    app,
    deps,
    stores,
    telemetry,
    clock,
    published,
    listenerCount: () => listeners.size,
    async register(vin: string, dealerId = 'D001') {
      await stores.vehicles.upsert(vin, profile(dealerId), clock.now());
    },
    async openPrompt(vin: string, o: Parameters<Harness['openPrompt']>[1] = {}) {
      const kind = o.kind ?? 'fault.dtc';
      const draft: PromptDraft = {
        kind,
        dedupKey: o.key ?? `${kind}:${vin}:${clock.now()}`,
        severity: o.severity ?? 'critical',
        audience: o.audience ?? ['hmi', 'advisor'],
        urgent: true,
        ts: clock.now(),
        evidence: o.evidence ?? { dtc: 'P0A80', 'Vehicle.TraveledDistance': 4210.5 },
        params: { code: 'P0A80' },
      };
      const dealerId = (await stores.vehicles.get(vin))?.dealerId ?? null;
      const text = {
        title: o.title ?? 'Hybrid battery fault P0A80',
        body: o.body ?? 'Replace hybrid battery pack soon.',
        locale: o.locale ?? 'en',
      };
      const [c] = await stores.prompts.applyRuleEvents(vin, [{ type: 'open', prompt: draft }], () => text, dealerId, clock.now());
      if (!c) throw new Error('prompt was not opened');
      changes.publish(c);
      clock.advance(1000);
      return c;
    },
    async close() {
      await app.close();
      await telemetry.close();
      await stores.close();
    },
  });
  return h;
}
