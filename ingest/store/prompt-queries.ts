// What the prompt queries of the port mean (PromptRepo.findOpen, pendingHmi): every backend selects
// and orders with these, so every backend agrees (test/ports/prompt-store.suite.ts).
import type { Prompt, PromptStatus } from './ports.js';

export const TERMINAL: readonly PromptStatus[] = ['resolved', 'expired'];
export const isOpen = (p: Prompt): boolean => !TERMINAL.includes(p.status);

/** Order for the HMI queue: urgent first, then higher value, then older. */
export function hmiOrder(a: Prompt, b: Prompt): number {
  if (a.urgent !== b.urgent) return a.urgent ? -1 : 1;
  if (a.value !== b.value) return b.value - a.value;
  return Date.parse(a.createdAt) - Date.parse(b.createdAt) || (a.id < b.id ? -1 : 1);
}

/** Not yet sent; with `unconfirmed`, also sent but not confirmed by the car (re-sent on its birth or subscribe). */
export function isPendingHmi(p: Prompt, vin: string, now: number, unconfirmed = false): boolean {
  return (
    p.vin === vin &&
    p.audience.includes('hmi') &&
    (p.hmiState === 'pending' || (unconfirmed && p.hmiState === 'sent')) &&
    isOpen(p) &&
    (p.expiresAt === null || Date.parse(p.expiresAt) > now)
  );
}
