// The PromptStore port on top of a small storage repository (PromptRepo): the path logic lives once
// (model.ts); each backend (SQLite, memory) only finds, writes and queries rows.
import type { AckOutcome } from '../../proto/domain.js';
import type { PromptDraft, RuleEvent } from '../../rules/types.js';
import type {
  DealerSelector,
  Prompt,
  PromptChange,
  PromptFilter,
  PromptRepo,
  PromptStore,
  RenderedText,
  ResolveOutcome,
} from '../store/ports.js';
import { clampLimit, decodeCursor, iso } from '../store/paging.js';
import * as M from './model.js';

export class PromptService implements PromptStore {
  constructor(private readonly repo: PromptRepo) {}

  private async commit(t: M.Transition): Promise<PromptChange | undefined> {
    if (!t) return undefined;
    await this.repo.update(t.prompt);
    return this.record(t.prompt, t.step, t.at, t.by);
  }

  private async record(p: Prompt, step: M.Step, at: number, by: string | null): Promise<PromptChange> {
    const c: Omit<PromptChange, 'seq'> = { promptId: p.id, vin: p.vin, dealerId: p.dealerId, step, at: iso(at), by, prompt: p };
    const seq = await this.repo.appendChange(c);
    return { seq, ...c };
  }

  applyRuleEvents(
    vin: string,
    events: RuleEvent[],
    render: (d: PromptDraft) => RenderedText,
    dealerId: string | null,
    now: number,
  ): Promise<PromptChange[]> {
    return this.repo.tx(async () => {
      const out: PromptChange[] = [];
      for (const ev of events) {
        if (ev.type === 'open') {
          if (await this.repo.findOpen(vin, ev.prompt.dedupKey)) continue; // a situation prompts once
          const p = M.promptFromDraft(ev.prompt, render(ev.prompt), vin, dealerId, now);
          await this.repo.insert(p);
          out.push(await this.record(p, 'created', now, 'system'));
        } else if (ev.type === 'resolve') {
          const open = await this.repo.findOpen(vin, ev.dedupKey);
          const c = open && (await this.commit(M.resolveBySystem(open, ev.reason, now)));
          if (c) out.push(c);
        }
        // charging_session and segments events belong to the vehicle store, not here.
      }
      return out;
    });
  }

  get(id: string): Promise<Prompt | undefined> {
    return this.repo.get(id);
  }

  async list(filter: PromptFilter): Promise<{ items: Prompt[]; nextCursor: string | null }> {
    if (filter.cursor !== undefined) decodeCursor(filter.cursor); // validate before querying
    return this.repo.list({ ...filter, limit: clampLimit(filter.limit) });
  }

  pendingHmi(vin: string, now: number, unconfirmed = false): Promise<Prompt[]> {
    return this.repo.pendingHmi(vin, now, unconfirmed);
  }

  private step(id: string, f: (p: Prompt) => M.Transition): Promise<PromptChange | undefined> {
    return this.repo.tx(async () => {
      const p = await this.repo.get(id);
      return p ? this.commit(f(p)) : undefined;
    });
  }

  markHmiSent(id: string, now: number): Promise<Prompt | undefined> {
    return this.repo.tx(async () => {
      const p = await this.repo.get(id);
      const next = p && M.markHmiSent(p, now);
      if (next) await this.repo.update(next);
      return next;
    });
  }

  markHmiDelivered(id: string, vin: string, now: number): Promise<PromptChange | undefined> {
    return this.step(id, (p) => M.markHmiDelivered(p, vin, now));
  }

  recordHmiAck(id: string, vin: string, outcome: AckOutcome, at: number): Promise<PromptChange | undefined> {
    return this.step(id, (p) => M.recordHmiAck(p, vin, outcome, at));
  }

  acknowledge(id: string, by: string, note: string | undefined, now: number): Promise<PromptChange | undefined> {
    return this.step(id, (p) => M.acknowledge(p, by, note, now));
  }

  resolve(id: string, by: string, outcome: ResolveOutcome, note: string | undefined, now: number): Promise<PromptChange | undefined> {
    return this.step(id, (p) => M.resolveByAdvisor(p, by, outcome, note, now));
  }

  expire(now: number): Promise<PromptChange[]> {
    return this.repo.tx(async () => {
      const out: PromptChange[] = [];
      for (const p of await this.repo.expiring(now)) {
        const c = await this.commit(M.expire(p, now));
        if (c) out.push(c);
      }
      return out;
    });
  }

  changesSince(seq: number, dealers: DealerSelector, limit: number): Promise<PromptChange[]> {
    return this.repo.changesSince(Number.isFinite(seq) ? seq : 0, dealers, clampLimit(limit));
  }

  lastChangeSeq(): Promise<number> {
    return this.repo.lastChangeSeq();
  }

  async stats(from: number, to: number, dealers?: DealerSelector): Promise<M.StatsRow[]> {
    return M.aggregateStats(await this.repo.stepsBetween(from, to, dealers));
  }
}
