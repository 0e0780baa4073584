// The one polling helper of the tests: wait for a positive marker, with a deadline. Tests assert
// behaviour, never time: the deadline only turns a hang into a clear failure.
import { inspect } from 'node:util';

export interface WaitForOptions {
  /** Give up after this long (default 30 s). */
  timeoutMs?: number;
  /** Pause between attempts (default 50 ms). */
  intervalMs?: number;
  /** What is awaited, for the error at the deadline. */
  what?: string;
}

const describeValue = (v: unknown): string => {
  const s = inspect(v, { depth: 3, breakLength: Infinity });
  return s.length > 600 ? `${s.slice(0, 600)}…` : s;
};

class AttemptExpired extends Error {}

/**
 * Call `fn` until it returns (or resolves to) a truthy value and resolve with that value. A throw or
 * rejection counts as "not yet". At the deadline, reject with an error naming `what` and the last
 * value or error seen; an attempt still pending at the deadline fails too.
 */
/** What a truthy result of `T` can be. */
export type Truthy<T> = Exclude<T, null | undefined | false | 0 | ''>;

export async function waitFor<T>(fn: () => T | Promise<T>, opts: WaitForOptions = {}): Promise<Truthy<T>> {
  const { timeoutMs = 30_000, intervalMs = 50, what = 'a condition' } = opts;
  const deadline = Date.now() + timeoutMs;
  let last = 'nothing (no attempt finished)';
  for (;;) {
    const left = deadline - Date.now();
    let timer: NodeJS.Timeout | undefined;
    try {
      const attempt = Promise.resolve().then(fn);
      attempt.catch(() => {}); // a late rejection after the deadline is not an unhandled one
      const expired = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new AttemptExpired()), Math.max(0, left));
      });
      const v = await Promise.race([attempt, expired]);
      if (v) return v as Truthy<T>;
      last = `value ${describeValue(v)}`;
    } catch (err) {
      if (err instanceof AttemptExpired)
        throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}: an attempt was still pending (before it: ${last})`);
      last = `error ${err instanceof Error ? err.message : describeValue(err)}`;
    } finally {
      clearTimeout(timer);
    }
    if (Date.now() >= deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}; last ${last}`);
    await new Promise((r) => setTimeout(r, Math.min(intervalMs, Math.max(0, deadline - Date.now()))));
  }
}
