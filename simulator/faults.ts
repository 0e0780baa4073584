// A vehicle's fault codes over time: each is active from `from` until `until` (Infinity = until
// a workshop repairs it). Daily draws come from the caller's per-day random stream.
import type { Powertrain } from '../proto/domain.js';
import { DTC_DEFS } from './catalogue.js';
import { DAY } from './planner.js';
import { between, type Rng } from './rng.js';

interface ActiveDtc {
  code: string;
  from: number;
  until: number;
}

export class Faults {
  private list: ActiveDtc[] = [];

  constructor(
    private readonly powertrain: Powertrain,
    private readonly proneness: number,
  ) {}

  /** Draw today's new faults (catalogue chances x proneness) and forget cleared ones. */
  planDay(r: Rng, dayStart: number, now: number): void {
    this.list = this.list.filter((d) => d.until > now);
    for (const def of DTC_DEFS) {
      const roll = r();
      if (!def.powertrains.includes(this.powertrain) || roll >= def.perDay * this.proneness) continue;
      if (this.list.some((d) => d.code === def.code)) continue;
      const from = dayStart + r() * DAY;
      const until = def.clearDays ? from + between(r, def.clearDays[0], def.clearDays[1]) * DAY : Infinity;
      this.list.push({ code: def.code, from, until });
    }
  }

  /** Raise `code` now for `forMs`, unless it is already pending or active. */
  raise(code: string, now: number, forMs: number): void {
    if (!this.list.some((d) => d.code === code && d.until > now)) this.list.push({ code, from: now, until: now + forMs });
  }

  active(now: number): string[] {
    const out: string[] = [];
    for (const d of this.list) if (d.from <= now && d.until > now && !out.includes(d.code)) out.push(d.code);
    return out;
  }

  /** A workshop visit: clears every active code and returns them. */
  repair(now: number): string[] {
    const fixed = this.active(now);
    for (const d of this.list) if (d.from <= now && d.until > now) d.until = now;
    return fixed;
  }

  /** The next instant (whole ms) at which a code appears or clears. */
  nextChange(now: number): number {
    let next = Infinity;
    for (const d of this.list) {
      const at = d.from > now ? d.from : d.until > now ? d.until : Infinity;
      if (at < next) next = at;
    }
    return Math.ceil(next);
  }
}
