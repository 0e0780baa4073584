// A service visit in cluster mode (docs/architecture.md#cluster-mode): it changes the vehicle's rule
// state (the maintenance schedule), which only the owner of the vehicle's partition may write, so
// the instance the advisor's request reached forwards it there over NATS request/reply. The owner
// subscribes to its partitions' subjects while it holds their leases; during a hand-over nobody
// answers for a moment and the request is tried again.
import type { Msg, NatsConnection, Subscription } from '@nats-io/transport-node';
import type { ServiceRecord } from '../../rules/types.js';

const SUBJECT = 'odopulse.rpc.service-record';
const subjectOf = (partition: number) => `${SUBJECT}.${partition}`;

export interface ServiceRecordRouterDeps {
  nc: NatsConnection;
  partitionOf(vin: string): number;
  owns(vin: string): boolean;
  /** Store and apply the record here (the rules runner, in one transaction). */
  apply(vin: string, rec: ServiceRecord): Promise<number>;
  log: { warn(o: object, m?: string): void };
  /** How long to keep trying to reach the owner (default 15 s: a lease moves within about 8 s). */
  timeoutMs?: number;
}

export class ServiceRecordUnavailableError extends Error {
  override readonly name = 'ServiceRecordUnavailableError';
}

export class ServiceRecordRouter {
  private readonly subs = new Map<number, Subscription>();

  constructor(private readonly deps: ServiceRecordRouterDeps) {}

  /** This instance now owns the partition: answer its service records. */
  attach(partition: number): void {
    if (this.subs.has(partition)) return;
    const sub = this.deps.nc.subscribe(subjectOf(partition), { callback: (err, msg) => void this.answer(err, msg) });
    this.subs.set(partition, sub);
  }

  detach(partition: number): void {
    this.subs.get(partition)?.unsubscribe();
    this.subs.delete(partition);
  }

  private async answer(err: Error | null, msg: Msg): Promise<void> {
    if (err) return;
    try {
      const { vin, record } = msg.json<{ vin: string; record: ServiceRecord }>();
      // the lease may have moved since the request was routed here: then the asker tries again
      if (!this.deps.owns(vin)) return reply(msg, { moved: true });
      const id = await this.deps.apply(vin, record);
      reply(msg, { id });
    } catch (e) {
      // the lease went while it ran (its commit was fenced and rolled back): the asker tries the new owner
      if ((e as Error).name === 'LeaseLostError') return reply(msg, { moved: true });
      this.deps.log.warn({ err: (e as Error).message }, 'a forwarded service record failed');
      reply(msg, { error: (e as Error).message });
    }
  }

  /** Apply here if this instance owns the vehicle, else at its owner; resolves the record's id. */
  async route(vin: string, record: ServiceRecord): Promise<number> {
    const deadline = Date.now() + (this.deps.timeoutMs ?? 15_000);
    let last = 'no owner answered';
    for (let attempt = 0; Date.now() < deadline; attempt++) {
      if (this.deps.owns(vin)) {
        try {
          return await this.deps.apply(vin, record);
        } catch (err) {
          if ((err as Error).name !== 'LeaseLostError') throw err; // rolled back: try where the partition went
          last = 'the partition moved while it was applied';
        }
      } else {
        try {
          const reply = await this.deps.nc.request(subjectOf(this.deps.partitionOf(vin)), JSON.stringify({ vin, record }), {
            timeout: Math.max(1000, Math.min(10_000, deadline - Date.now())),
          });
          const r = reply.json<{ id?: number; moved?: boolean; error?: string }>();
          if (r.id !== undefined) return r.id;
          if (r.error) throw new Error(r.error);
          last = 'the partition moved';
        } catch (err) {
          if (isTimeout(err))
            throw new ServiceRecordUnavailableError(
              `the owner of ${vin}'s partition did not answer in time; the visit may have been recorded: check the vehicle's service records before sending it again`,
            );
          if (!isNoOwnerYet(err)) throw err;
          last = (err as Error).message;
        }
      }
      await new Promise((r) => setTimeout(r, Math.min(2000, 200 * 2 ** attempt)));
    }
    throw new ServiceRecordUnavailableError(`the owner of ${vin}'s partition could not be reached: ${last}`);
  }

  close(): void {
    for (const s of this.subs.values()) s.unsubscribe();
    this.subs.clear();
  }
}

/**
 * Nobody subscribed (a hand-over): worth another try. Not a timeout: the owner may have applied it
 * and only the answer is late, so sending it again could record the visit twice.
 */
function isNoOwnerYet(err: unknown): boolean {
  const text = `${(err as Error)?.name ?? ''} ${(err as Error)?.message ?? ''}`.toLowerCase();
  return text.includes('no responders') || text.includes('503');
}

function isTimeout(err: unknown): boolean {
  return `${(err as Error)?.name ?? ''} ${(err as Error)?.message ?? ''}`.toLowerCase().includes('timeout');
}

/** Answer a forwarded request; a connection closing meanwhile must not become an unhandled rejection. */
function reply(msg: Msg, body: object): void {
  try {
    msg.respond(JSON.stringify(body));
  } catch {
    // the asker times out and reports the owner unavailable
  }
}
