// In-car HMI delivery. Urgent prompts go at once; the rest wait until the vehicle is parked, outside
// its quiet hours, and within the daily cap (highest value first). A vehicle that is offline gets
// its pending prompts when its birth message arrives; expired ones are never sent. A prompt is
// delivered only once the car confirms it (docs/architecture.md#confirmed-hmi-delivery): until
// then it is `sent`, and sent again on the vehicle's next birth or prompts subscribe.
import { encodeHmiPrompt } from '../../proto/codec.js';
import { isParked } from '../../proto/signals.js';
import { dismissAction } from '../../rules/i18n/index.js';
import type { Locale, Signals, Vehicle } from '../../proto/domain.js';
import type { FleetClock } from '../../rules/types.js';
import type { Prompt, PromptChange } from '../store/ports.js';
import type { Stores } from '../store/ports.js';
import { topicFor, type BrokerLink } from '../inbound/topics.js';

export interface HmiDeps {
  stores: Stores;
  link: BrokerLink;
  prefix: string;
  clock: FleetClock;
  dailyCap: number;
  /** The vehicle's latest signals (parked or driving); cluster mode may read them from the shared rule state. */
  latest(vin: string): Signals | undefined | Promise<Signals | undefined>;
  onChanges(changes: PromptChange[]): void;
  onSent?(p: Prompt): void;
  /** A stored profile's time zone is not a valid IANA zone (stored before the API checked it): the locale's was used. */
  onInvalidTimeZone?(vin: string, timeZone: string): void;
  /** Recording a confirmed delivery failed (e.g. disk full); the prompt will be sent again. */
  onConfirmFailed?(err: unknown): void;
  /**
   * Cluster mode: whether the vehicle's connection is on this instance. The instance that holds it
   * delivers (every instance hears every change); the others leave the prompt pending.
   */
  isLocal?(vin: string): boolean;
}

const DEFAULT_QUIET = { start: '22:00', end: '07:00' };
const DEFAULT_TZ: Record<Locale, string> = { 'zh-CN': 'Asia/Shanghai', en: 'UTC' };

const formatters = new Map<string, Intl.DateTimeFormat | null>();

/** The formatter of a time zone; null for a name Intl does not know (cached, bounded). */
function formatterFor(timeZone: string): Intl.DateTimeFormat | null {
  let f = formatters.get(timeZone);
  if (f !== undefined) return f;
  try {
    f = new Intl.DateTimeFormat('en-CA', {
      timeZone,
      year: 'numeric',
      month: '2-digit',
      day: '2-digit',
      hour: '2-digit',
      minute: '2-digit',
      hourCycle: 'h23',
    });
  } catch {
    f = null; // RangeError: invalid time zone
  }
  if (formatters.size < 1000) formatters.set(timeZone, f);
  return f;
}

export function isValidTimeZone(timeZone: string): boolean {
  return formatterFor(timeZone) !== null;
}

/** Local minutes since midnight and local date of `now` in the vehicle's time zone (an invalid one: UTC; never throws). */
export function localTime(now: number, timeZone: string): { minutes: number; day: string } {
  const parts = (formatterFor(timeZone) ?? formatterFor('UTC')!).formatToParts(new Date(now));
  const get = (t: string) => parts.find((p) => p.type === t)?.value ?? '00';
  return { minutes: Number(get('hour')) * 60 + Number(get('minute')), day: `${get('year')}-${get('month')}-${get('day')}` };
}

export function inQuietHours(minutes: number, quiet: { start: string; end: string }): boolean {
  const toMin = (s: string) => Number(s.slice(0, 2)) * 60 + Number(s.slice(3, 5));
  const start = toMin(quiet.start);
  const end = toMin(quiet.end);
  if (start === end) return false;
  return start < end ? minutes >= start && minutes < end : minutes >= start || minutes < end;
}

/**
 * The buttons sent with a prompt: the prompt's own, rendered with its texts by the rules
 * (rules/i18n, the one place they are defined), then dismiss unless the rule labelled its own
 * (e.g. "Later"). A prompt stored before actions were kept has none of its own.
 */
export function hmiActions(p: Pick<Prompt, 'actions' | 'locale'>): Array<{ id: string; label: string }> {
  const own = p.actions ?? [];
  return own.some((a) => a.id === 'dismiss') ? [...own] : [...own, dismissAction(p.locale)];
}

/** A campaign message whose campaign does not respect quiet hours (docs/domain.md#campaign-delivery); nothing else non-urgent. */
export function ignoresQuietHours(p: Pick<Prompt, 'kind' | 'evidence'>): boolean {
  return p.kind === 'campaign.message' && p.evidence.quietHoursRespected === false;
}

export class HmiDelivery {
  private readonly sentToday = new Map<string, { day: string; count: number }>();
  /** Per-vehicle delivery in progress: concurrent triggers queue behind it, so nothing is sent twice. */
  private readonly running = new Map<string, Promise<void>>();

  /** Vehicles with prompts held back at their last delivery (not parked, quiet hours, daily cap). */
  private readonly heldBack = new Set<string>();

  /** Timing decisions that fell back to the locale's zone (see HmiDeps.onInvalidTimeZone). */
  invalidTimeZones = 0;

  constructor(private readonly deps: HmiDeps) {}

  /** The vehicle's time zone: its profile's if valid, else its locale's default (counted). */
  private zoneOf(vin: string, profile: Vehicle | undefined): string {
    const fallback = DEFAULT_TZ[profile?.locale ?? 'en'];
    const tz = profile?.timeZone;
    if (tz === undefined) return fallback;
    if (isValidTimeZone(tz)) return tz;
    this.invalidTimeZones++;
    this.deps.onInvalidTimeZone?.(vin, tz);
    return fallback;
  }

  /**
   * What may be sent to this vehicle now, in order. `resend`: also the prompts sent but not yet
   * confirmed by the car; a non-urgent one was counted against the daily cap when first sent, so it
   * takes no room again (it still waits for parked and outside quiet hours).
   */
  async selectable(vin: string, profile: Vehicle | undefined, resend = false): Promise<Prompt[]> {
    const { stores, clock } = this.deps;
    const now = clock.now();
    const pending = await stores.prompts.pendingHmi(vin, now, resend);
    this.heldBack.delete(vin);
    if (pending.length === 0) return [];
    const urgent = pending.filter((p) => p.urgent);
    const again = pending.filter((p) => !p.urgent && p.hmiState === 'sent');
    const rest = pending.filter((p) => !p.urgent && p.hmiState !== 'sent');
    if (again.length === 0 && rest.length === 0) return urgent;
    this.heldBack.add(vin); // cleared below when everything may go
    if (!isParked(await this.deps.latest(vin))) return urgent;
    const local = localTime(now, this.zoneOf(vin, profile));
    // in quiet hours only what may ignore them: urgent prompts, campaigns created with quietHoursRespected false
    const quiet = inQuietHours(local.minutes, profile?.quietHours ?? DEFAULT_QUIET);
    const allowed = (p: Prompt) => !quiet || ignoresQuietHours(p);
    const used = this.sentToday.get(vin);
    const count = used && used.day === local.day ? used.count : 0;
    const room = Math.max(0, this.deps.dailyCap - count);
    const out = [...urgent, ...again.filter(allowed), ...rest.filter(allowed).slice(0, room)];
    if (out.length === pending.length) this.heldBack.delete(vin);
    return out;
  }

  /** Whether the vehicle had prompts held back at its last delivery (new telemetry may free them). */
  holdsBack(vin: string): boolean {
    return this.heldBack.has(vin);
  }

  /** The vehicles with prompts held back at their last delivery (the sweep tries them again). */
  heldBackVins(): string[] {
    return [...this.heldBack];
  }

  /**
   * Deliver what may be delivered to these vehicles now (those online). `resend` (the vehicle's
   * birth, its client subscribing to its prompts): also what was sent but not confirmed.
   */
  async deliver(vins: Iterable<string>, opts: { resend?: boolean } = {}): Promise<void> {
    await Promise.all(
      [...vins].map((vin) => {
        const prev = this.running.get(vin) ?? Promise.resolve();
        const next = prev.then(() =>
          this.deliverOne(vin, opts.resend ?? false).catch((err: unknown) => {
            // tried again with the vehicle's next telemetry (PromptFanout.stepApplied) or the sweep
            this.heldBack.add(vin);
            throw err;
          }),
        );
        this.running.set(vin, next);
        return next.finally(() => {
          if (this.running.get(vin) === next) this.running.delete(vin);
        });
      }),
    );
  }

  private async deliverOne(vin: string, resend: boolean): Promise<void> {
    const { stores, link, prefix, clock } = this.deps;
    if (this.deps.isLocal && !this.deps.isLocal(vin)) return;
    if (!(await stores.vehicles.online(vin)).online) return;
    const profile = await stores.vehicles.get(vin);
    for (const p of await this.selectable(vin, profile, resend)) {
      const now = clock.now();
      await link.publish(topicFor(prefix, vin, 'prompts'), this.encode(p, false), { qos: 1 });
      // No change step here: 'delivered' is recorded when the car confirms (confirmed()). The
      // PUBACK may even come first (loopback): then the prompt is no longer pending and stays delivered.
      await stores.prompts.markHmiSent(p.id, now);
      if (!p.urgent && p.hmiState === 'pending') {
        // counted once, at the first send: a re-send of an unconfirmed prompt is not a new prompt
        const day = localTime(now, this.zoneOf(vin, profile)).day;
        const used = this.sentToday.get(vin);
        this.sentToday.set(vin, { day, count: used && used.day === day ? used.count + 1 : 1 });
      }
      this.deps.onSent?.(p);
    }
  }

  /**
   * The car has this prompt: its client PUBACKed it (embedded broker), or the head unit acked it
   * (any outcome; the only confirmation through an external broker). Records the one 'delivered'
   * step; a later confirmation of the same prompt changes nothing. A failure to record it does not
   * reject (it goes to onConfirmFailed), so the broker's event may leave the promise unawaited.
   */
  async confirmed(vin: string, promptId: string): Promise<void> {
    try {
      const change = await this.deps.stores.prompts.markHmiDelivered(promptId, vin, this.deps.clock.now());
      if (change) this.deps.onChanges([change]);
    } catch (err) {
      // called from the broker's PUBACK event: never throw there. The prompt stays 'sent' and is
      // sent again at the vehicle's next birth or subscribe (at least once).
      this.deps.onConfirmFailed?.(err);
    }
  }

  /** Tell the HMI to remove a prompt whose situation ended. */
  async withdraw(p: Prompt): Promise<void> {
    if (this.deps.isLocal && !this.deps.isLocal(p.vin)) return;
    await this.deps.link.publish(topicFor(this.deps.prefix, p.vin, 'prompts'), this.encode(p, true), { qos: 1 });
  }

  private encode(p: Prompt, withdrawn: boolean): Uint8Array {
    return encodeHmiPrompt({
      promptId: p.id,
      kind: p.kind,
      severity: p.severity,
      title: p.title,
      body: p.body,
      locale: p.locale,
      actions: withdrawn ? [] : hmiActions(p),
      createdAt: Date.parse(p.createdAt),
      expiresAt: p.expiresAt ? Date.parse(p.expiresAt) : 0,
      withdrawn,
    });
  }
}
