// What a principal may see of a vehicle or prompt, applied by every route and the stream
// (docs/contract.md#access-control): outside the caller's dealers a VIN or prompt is 404 (its
// existence is not revealed); position signals need `location:read`; reads of a vehicle's
// telemetry or position and every change are written to the audit trail.
import type { FastifyRequest } from 'fastify';
import { withoutPositionSignals } from '../../proto/signals.js';
import { dealerScope, seesDealer, seesLocation, type Principal } from '../auth/principal.js';
import type { AuditLog, Prompt, VehicleRecord, VehicleStore } from '../store/ports.js';
import { principalOf } from './auth.js';
import { notFound } from './errors.js';

export async function vehicleInScope(vehicles: Pick<VehicleStore, 'get'>, p: Principal, vin: string): Promise<VehicleRecord> {
  const rec = await vehicles.get(vin);
  if (!rec || !seesDealer(p, rec.dealerId)) throw notFound('vehicle', vin);
  return rec;
}

export async function promptInScope(get: (id: string) => Promise<Prompt | undefined>, p: Principal, id: string): Promise<Prompt> {
  const prompt = await get(id);
  if (!prompt || !seesDealer(p, prompt.dealerId)) throw notFound('prompt', id);
  return prompt;
}

/** The dealer filter of a list query: the caller's scope, narrowed by an explicit dealerId. */
export function scopedDealers(p: Principal, dealerId: string | undefined): { dealerId?: string; dealerIds?: readonly string[] } {
  const scope = dealerScope(p);
  if (scope === undefined) return { dealerId };
  if (dealerId !== undefined) return { dealerIds: scope.includes(dealerId) ? [dealerId] : [] };
  return { dealerIds: scope };
}

/** Signals without position, unless the principal may read location. */
export function visibleSignals<T>(p: Principal, signals: Record<string, T>): Record<string, T> {
  return seesLocation(p) ? signals : withoutPositionSignals(signals);
}

/** A prompt as this principal may see it: position-bearing evidence is dropped without location:read. */
export function visiblePrompt(p: Principal, prompt: Prompt): Prompt {
  const evidence = visibleSignals(p, prompt.evidence);
  return evidence === prompt.evidence ? prompt : { ...prompt, evidence };
}

export type Audit = (action: string, vin: string | null, detail?: Record<string, unknown>) => Promise<void>;

/** The audit writer for one request: principal, time and request id filled in. */
export function auditFor(log: AuditLog, req: FastifyRequest, now: () => number): Audit {
  return (action, vin, detail) => log.record({ at: now(), principal: principalOf(req).id, action, vin, requestId: req.id, detail });
}
