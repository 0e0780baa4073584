// Vehicles: profiles, their live view (latest signals, segments, online status, open prompts),
// telemetry history and service visits. Every read and change is limited to the caller's dealers
// and audited (docs/contract.md#access-control); position needs location:read.
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { SamplingPolicySchema, VehicleProfileSchema } from '../../../proto/domain.js';
import type { SamplingPolicy } from '../../../proto/domain.js';
import type { ServiceRecord } from '../../../rules/types.js';
import type { AuditLog, PromptStore, TelemetryStore, VehicleRecord, VehicleStore } from '../../store/ports.js';
import { seesLocation } from '../../auth/principal.js';
import { principalOf } from '../auth.js';
import { hasPositionSignal, POSITION_SIGNALS } from '../../../proto/signals.js';
import { auditFor, scopedDealers, vehicleInScope, visibleSignals } from '../scope.js';
import { badRequest, HttpError } from '../errors.js';
import { TelemetryUnavailableError } from '../../store/telemetry-errors.js';
import {
  ErrorSchema,
  ServiceRecordBody,
  ServiceRecordOut,
  TelemetryQuery,
  TelemetryResponse,
  VehicleDetail,
  VehicleListQuery,
  VehiclePage,
  VehicleSummary,
  VinParams,
} from '../schemas.js';

const DEFAULT_RANGE_MS = 7 * 86_400_000;
const OPEN_STATUSES = ['open', 'delivered', 'acknowledged'] as const;
const errors = { 400: ErrorSchema, 404: ErrorSchema };

async function summary(vehicles: VehicleStore, rec: VehicleRecord) {
  const [online, segments] = await Promise.all([vehicles.online(rec.vin), vehicles.segments(rec.vin)]);
  return { ...rec, online, segments };
}

/** Prompts of a vehicle that still need someone (not resolved, not expired). */
export async function countOpenPrompts(prompts: PromptStore, vin: string): Promise<number> {
  let n = 0;
  for (const status of OPEN_STATUSES) {
    let cursor: string | undefined;
    do {
      const page = await prompts.list({ vin, status, limit: 500, cursor });
      n += page.items.length;
      cursor = page.nextCursor ?? undefined;
    } while (cursor);
  }
  return n;
}

export interface VehicleRoutesDeps {
  stores: { vehicles: VehicleStore; prompts: PromptStore; audit: AuditLog };
  /** Raw points one history call may return; past it the caller must aggregate with `every`. */
  maxHistoryPoints: number;
  telemetry: Pick<TelemetryStore, 'latest' | 'history'>;
  clock: { now(): number };
  /** Store the visit and reset the maintenance schedule (rules), atomically; returns the record's id. */
  onServiceRecord(vin: string, rec: ServiceRecord): Promise<number>;
  publishPolicy?(vin: string, policy: SamplingPolicy): Promise<void>;
  onProfileChanged?(vin: string): void;
}

export function registerVehicles(app: FastifyInstance, deps: VehicleRoutesDeps): void {
  const r = app.withTypeProvider<ZodTypeProvider>();
  const { vehicles, prompts } = deps.stores;
  const audit = (req: FastifyRequest) => auditFor(deps.stores.audit, req, Date.now);

  r.put(
    '/api/v1/vehicles/:vin',
    {
      schema: {
        summary: 'Register or update a vehicle profile',
        tags: ['vehicles'],
        params: VinParams,
        body: VehicleProfileSchema,
        response: { 200: VehicleSummary, 201: VehicleSummary, 400: ErrorSchema },
      },
      config: { auth: 'vehicles:write' },
    },
    async (req, reply) => {
      const prev = await vehicles.get(req.params.vin);
      const existed = prev !== undefined;
      const rec = await vehicles.upsert(req.params.vin, req.body, deps.clock.now());
      await audit(req)('vehicle.profile.changed', rec.vin, { dealerId: rec.dealerId, previousDealerId: prev?.dealerId ?? null });
      deps.onProfileChanged?.(req.params.vin);
      return reply.code(existed ? 200 : 201).send(await summary(vehicles, rec));
    },
  );

  r.get(
    '/api/v1/vehicles',
    {
      schema: {
        summary: 'List vehicles (by VIN), optionally of one dealer',
        tags: ['vehicles'],
        querystring: VehicleListQuery,
        response: { 200: VehiclePage, 400: ErrorSchema },
      },
      config: { auth: 'vehicles:read' },
    },
    async (req) => {
      const scope = scopedDealers(principalOf(req), req.query.dealerId);
      const page = await vehicles.list({ ...scope, limit: req.query.limit, cursor: req.query.cursor });
      return { items: await Promise.all(page.items.map((v) => summary(vehicles, v))), nextCursor: page.nextCursor };
    },
  );

  r.get(
    '/api/v1/vehicles/:vin',
    {
      schema: {
        summary: 'Profile, latest signal values, lifecycle segments, online status, open prompts',
        tags: ['vehicles'],
        params: VinParams,
        response: { 200: VehicleDetail, ...errors },
      },
      config: { auth: 'vehicles:read' },
    },
    async (req) => {
      const p = principalOf(req);
      const rec = await vehicleInScope(vehicles, p, req.params.vin);
      let latest = null;
      let latestError: string | null = null;
      try {
        const l = await deps.telemetry.latest(rec.vin);
        if (l) latest = { ts: l.ts, at: new Date(l.ts).toISOString(), signals: visibleSignals(p, l.signals) };
        const position = latest !== null && hasPositionSignal(latest.signals);
        await audit(req)('vehicle.read', rec.vin, { latest: l !== undefined, position });
      } catch (err) {
        // The profile is still useful while InfluxDB is down: say why the values are missing.
        req.log.warn({ err, vin: rec.vin }, 'latest telemetry unavailable');
        latestError = err instanceof Error ? err.message : String(err);
      }
      return {
        ...(await summary(vehicles, rec)),
        latest,
        latestError,
        openPrompts: await countOpenPrompts(prompts, rec.vin),
        serviceRecords: await vehicles.serviceRecords(rec.vin),
        sequence: await vehicles.sequence(rec.vin),
      };
    },
  );

  r.get(
    '/api/v1/vehicles/:vin/telemetry',
    {
      schema: {
        summary: 'Signal history, downsampled with `every` (e.g. 5m, 1h, 1d); from/to are epoch ms or ISO times',
        tags: ['vehicles'],
        params: VinParams,
        querystring: TelemetryQuery,
        response: { 200: TelemetryResponse, ...errors, 403: ErrorSchema, 503: ErrorSchema },
      },
      config: { auth: 'telemetry:read' },
    },
    async (req) => {
      const p = principalOf(req);
      await vehicleInScope(vehicles, p, req.params.vin);
      if (POSITION_SIGNALS.has(req.query.signal) && !seesLocation(p)) {
        // an attempt at a vehicle's position is worth knowing about too
        await audit(req)('telemetry.read.refused', req.params.vin, { signal: req.query.signal });
        throw new HttpError(403, 'forbidden', `${req.query.signal} is a position signal: it needs the location:read permission`, null);
      }
      const to = req.query.to ?? deps.clock.now();
      const from = req.query.from ?? to - DEFAULT_RANGE_MS;
      if (from >= to) throw badRequest('`from` must be before `to`', { from, to });
      const everyMs = req.query.every;
      const max = deps.maxHistoryPoints;
      if (everyMs !== undefined && Math.ceil((to - from) / everyMs) > max) {
        throw badRequest(`more than ${max} windows: choose a larger \`every\` or a shorter range`, { from, to, everyMs, maxPoints: max });
      }
      await audit(req)('telemetry.read', req.params.vin, { signal: req.query.signal, from, to, everyMs: everyMs ?? null });
      try {
        const points = await deps.telemetry.history({ vin: req.params.vin, signal: req.query.signal, from, to, everyMs, limit: max + 1 });
        if (everyMs === undefined && points.length > max) {
          throw badRequest(`more than ${max} points in this range: pass \`every\` (e.g. 1h) to aggregate`, { from, to, maxPoints: max });
        }
        return { vin: req.params.vin, signal: req.query.signal, from, to, everyMs: everyMs ?? null, points };
      } catch (err) {
        if (err instanceof HttpError) throw err;
        // The store rejects queries it will not run (e.g. too many buckets): the caller's to fix.
        if (err instanceof Error && err.name === 'TelemetryInputError')
          throw badRequest(err.message, { from, to, everyMs: everyMs ?? null });
        // InfluxDB not connected or not answering: its own words (503 in errors.ts)
        if (err instanceof TelemetryUnavailableError) throw err;
        req.log.error({ err }, 'telemetry history failed');
        throw new HttpError(503, 'telemetry_unavailable', 'InfluxDB did not answer the telemetry query; try again later', null);
      }
    },
  );

  r.post(
    '/api/v1/vehicles/:vin/service-records',
    {
      schema: {
        summary: 'Record a service visit; resets the maintenance schedule',
        tags: ['vehicles'],
        params: VinParams,
        body: ServiceRecordBody,
        response: { 201: ServiceRecordOut.extend({ vin: z.string() }), ...errors, 503: ErrorSchema },
      },
      config: { auth: 'service:write' },
    },
    async (req, reply) => {
      const { vin } = await vehicleInScope(vehicles, principalOf(req), req.params.vin);
      const rec = { date: req.body.date, odometer: req.body.odometer, items: req.body.items };
      const id = await deps.onServiceRecord(vin, rec);
      await audit(req)('service_record.created', vin, { id, date: rec.date, odometer: rec.odometer });
      return reply.code(201).send({ id, vin, ...rec });
    },
  );

  r.put(
    '/api/v1/vehicles/:vin/sampling-policy',
    {
      schema: {
        summary:
          "Set the vehicle's sampling policy: published retained on v1/vehicles/{vin}/config, applied by the agent without a restart",
        tags: ['vehicles'],
        params: VinParams,
        body: SamplingPolicySchema,
        response: { 202: z.object({ vin: z.string(), policy: SamplingPolicySchema }), ...errors, 403: ErrorSchema, 503: ErrorSchema },
      },
      config: { auth: 'policy:write' },
    },
    async (req, reply) => {
      const p = principalOf(req);
      const { vin } = await vehicleInScope(vehicles, p, req.params.vin);
      // Location tracking is the most sensitive switch there is: operators only (docs/domain.md#privacy-and-retention).
      if (req.body.locationEnabled && p.role !== 'operator') {
        throw new HttpError(403, 'forbidden', 'only an operator may set a sampling policy that enables location', null);
      }
      if (!deps.publishPolicy) throw new HttpError(503, 'not_available', 'this service has no broker to publish policies to', null);
      await deps.publishPolicy(vin, req.body);
      await audit(req)('sampling_policy.changed', vin, { version: req.body.version, locationEnabled: req.body.locationEnabled });
      return reply.code(202).send({ vin, policy: req.body });
    },
  );
}
