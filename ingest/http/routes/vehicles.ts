// Vehicles: profiles, their live view (latest signals, segments, online status, open prompts),
// telemetry history and service visits.
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { SamplingPolicySchema, VehicleProfileSchema } from '../../../proto/domain.js';
import type { SamplingPolicy } from '../../../proto/domain.js';
import type { ServiceRecord } from '../../../rules/types.js';
import type { PromptStore, TelemetryStore, VehicleRecord, VehicleStore } from '../../store/ports.js';
import { badRequest, HttpError, notFound } from '../errors.js';
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

function summary(vehicles: VehicleStore, rec: VehicleRecord) {
  return { ...rec, online: vehicles.online(rec.vin), segments: vehicles.segments(rec.vin) };
}

/** Prompts of a vehicle that still need someone (not resolved, not expired). */
export function countOpenPrompts(prompts: PromptStore, vin: string): number {
  let n = 0;
  for (const status of OPEN_STATUSES) {
    let cursor: string | undefined;
    do {
      const page = prompts.list({ vin, status, limit: 500, cursor });
      n += page.items.length;
      cursor = page.nextCursor ?? undefined;
    } while (cursor);
  }
  return n;
}

export interface VehicleRoutesDeps {
  stores: { vehicles: VehicleStore; prompts: PromptStore };
  telemetry: Pick<TelemetryStore, 'latest' | 'history'>;
  clock: { now(): number };
  onServiceRecord(vin: string, rec: ServiceRecord): Promise<void>;
  publishPolicy?(vin: string, policy: SamplingPolicy): Promise<void>;
  onProfileChanged?(vin: string): void;
}

export function registerVehicles(app: FastifyInstance, deps: VehicleRoutesDeps): void {
  const r = app.withTypeProvider<ZodTypeProvider>();
  const { vehicles, prompts } = deps.stores;
  const known = (vin: string): VehicleRecord => {
    const rec = vehicles.get(vin);
    if (!rec) throw notFound('vehicle', vin);
    return rec;
  };

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
    },
    async (req, reply) => {
      const existed = vehicles.get(req.params.vin) !== undefined;
      const rec = vehicles.upsert(req.params.vin, req.body, deps.clock.now());
      deps.onProfileChanged?.(req.params.vin);
      return reply.code(existed ? 200 : 201).send(summary(vehicles, rec));
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
    },
    async (req) => {
      const page = vehicles.list({ dealerId: req.query.dealerId, limit: req.query.limit, cursor: req.query.cursor });
      return { items: page.items.map((v) => summary(vehicles, v)), nextCursor: page.nextCursor };
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
    },
    async (req) => {
      const rec = known(req.params.vin);
      let latest = null;
      let latestError: string | null = null;
      try {
        const l = await deps.telemetry.latest(rec.vin);
        if (l) latest = { ts: l.ts, at: new Date(l.ts).toISOString(), signals: l.signals };
      } catch (err) {
        // The profile is still useful while InfluxDB is down: say why the values are missing.
        req.log.warn({ err, vin: rec.vin }, 'latest telemetry unavailable');
        latestError = err instanceof Error ? err.message : String(err);
      }
      return {
        ...summary(vehicles, rec),
        latest,
        latestError,
        openPrompts: countOpenPrompts(prompts, rec.vin),
        serviceRecords: vehicles.serviceRecords(rec.vin),
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
        response: { 200: TelemetryResponse, ...errors, 503: ErrorSchema },
      },
    },
    async (req) => {
      known(req.params.vin);
      const to = req.query.to ?? deps.clock.now();
      const from = req.query.from ?? to - DEFAULT_RANGE_MS;
      if (from >= to) throw badRequest('`from` must be before `to`', { from, to });
      const everyMs = req.query.every;
      try {
        const points = await deps.telemetry.history({ vin: req.params.vin, signal: req.query.signal, from, to, everyMs });
        return { vin: req.params.vin, signal: req.query.signal, from, to, everyMs: everyMs ?? null, points };
      } catch (err) {
        // The store rejects queries it will not run (e.g. too many buckets): the caller's to fix.
        if (err instanceof Error && err.name === 'TelemetryInputError')
          throw badRequest(err.message, { from, to, everyMs: everyMs ?? null });
        req.log.error({ err }, 'telemetry history failed');
        throw new HttpError(503, 'telemetry_unavailable', 'the telemetry store did not answer; try again later', null);
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
        response: { 201: ServiceRecordOut.extend({ vin: z.string() }), ...errors },
      },
    },
    async (req, reply) => {
      const vin = known(req.params.vin).vin;
      const rec = { date: req.body.date, odometer: req.body.odometer, items: req.body.items };
      const id = vehicles.addServiceRecord(vin, rec, deps.clock.now());
      await deps.onServiceRecord(vin, rec);
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
        response: { 202: z.object({ vin: z.string(), policy: SamplingPolicySchema }), ...errors, 503: ErrorSchema },
      },
    },
    async (req, reply) => {
      const vin = known(req.params.vin).vin;
      if (!deps.publishPolicy) throw new HttpError(503, 'not_available', 'this service has no broker to publish policies to', null);
      await deps.publishPolicy(vin, req.body);
      return reply.code(202).send({ vin, policy: req.body });
    },
  );
}
