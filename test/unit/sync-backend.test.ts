// The async gate over a synchronous backend (ingest/store/sync-backend.ts): one transaction at a
// time on the one connection, calls from outside an open transaction wait for it, calls inside it
// pass, nested transactions join, and a transaction that cannot commit is rolled back.
import { describe, expect, it } from 'vitest';
import { createMemoryBackend } from '../../ingest/store/index.js';
import { TxGate } from '../../ingest/store/sync-backend.js';
import { T0 } from '../ports/fixtures.js';

/** Transaction steps that log what the gate asked for; commit fails while `failCommit` is set. */
function steps(log: string[], o: { failCommit?: boolean; failBegin?: boolean } = {}) {
  return {
    begin: () => {
      if (o.failBegin) throw new Error('cannot begin');
      log.push('begin');
    },
    commit: () => {
      log.push('commit');
      if (o.failCommit) throw new Error('disk full');
    },
    rollback: () => log.push('rollback'),
  };
}

function latch(): { promise: Promise<void>; release: () => void } {
  let release!: () => void;
  const promise = new Promise<void>((r) => (release = r));
  return { promise, release };
}

/** Every pending microtask and I/O callback has run. */
const settle = () => new Promise<void>((r) => setImmediate(r));

const letter = (topic: string) => ({ topic, clientId: null, reason: 'r', payload: new Uint8Array(), at: T0 });

describe('TxGate', () => {
  it('runs a call at once when no transaction is open, and turns a synchronous throw into a rejection', async () => {
    const gate = new TxGate();
    let ran = false;
    const p = gate.call(() => {
      ran = true;
      return 7;
    });
    expect(ran).toBe(true);
    expect(await p).toBe(7);
    let failed: Promise<unknown> | undefined;
    expect(() => {
      failed = gate.call(() => {
        throw new Error('constraint');
      });
    }).not.toThrow();
    await expect(failed).rejects.toThrow('constraint');
  });

  it('serialises transactions: the second begins only after the first committed', async () => {
    const gate = new TxGate();
    const log: string[] = [];
    const s = steps(log);
    const first = latch();
    const a = gate.transaction(s, async () => {
      log.push('A in');
      await first.promise;
      log.push('A out');
      return 'a';
    });
    const b = gate.transaction(s, async () => {
      log.push('B in');
      return 'b';
    });
    await settle();
    expect(log).toEqual(['begin', 'A in']);
    first.release();
    expect(await Promise.all([a, b])).toEqual(['a', 'b']);
    expect(log).toEqual(['begin', 'A in', 'A out', 'commit', 'begin', 'B in', 'commit']);
  });

  it('makes a call from outside an open transaction wait for it to end; a call inside passes at once', async () => {
    const gate = new TxGate();
    const log: string[] = [];
    const open = latch();
    const a = gate.transaction(steps(log), async () => {
      await gate.call(() => log.push('inside'));
      await open.promise;
    });
    await settle();
    const outside = gate.call(() => log.push('outside'));
    await settle();
    expect(log).toEqual(['begin', 'inside']);
    open.release();
    await a;
    await outside;
    expect(log).toEqual(['begin', 'inside', 'commit', 'outside']);
  });

  it('keeps a call carried over from an ended transaction out of the next one', async () => {
    const gate = new TxGate();
    const log: string[] = [];
    const later = latch();
    let carried: Promise<number> | undefined;
    await gate.transaction(steps(log), async () => {
      // started inside A (its async context), run only after A ended
      carried = later.promise.then(() => gate.call(() => log.push('carried')));
    });
    const second = latch();
    const b = gate.transaction(steps(log), async () => {
      log.push('B in');
      await second.promise;
    });
    await settle();
    later.release();
    await settle();
    expect(log).toEqual(['begin', 'commit', 'begin', 'B in']);
    second.release();
    await b;
    await carried;
    expect(log).toEqual(['begin', 'commit', 'begin', 'B in', 'commit', 'carried']);
  });

  it('rolls back when the work throws, and does not commit', async () => {
    const gate = new TxGate();
    const log: string[] = [];
    await expect(
      gate.transaction(steps(log), async () => {
        await gate.call(() => log.push('write'));
        throw new Error('batch failed');
      }),
    ).rejects.toThrow('batch failed');
    expect(log).toEqual(['begin', 'write', 'rollback']);
  });

  it('rolls back a transaction whose commit failed, rejects with the commit error, and frees the connection', async () => {
    const gate = new TxGate();
    const log: string[] = [];
    await expect(gate.transaction(steps(log, { failCommit: true }), async () => 'done')).rejects.toThrow('disk full');
    expect(log).toEqual(['begin', 'commit', 'rollback']);
    // nothing is left waiting for that transaction
    expect(await gate.call(() => 'next')).toBe('next');
    expect(await gate.transaction(steps(log), async () => 'again')).toBe('again');
    expect(log).toEqual(['begin', 'commit', 'rollback', 'begin', 'commit']);
  });

  it('frees the connection when begin itself fails (nothing to roll back)', async () => {
    const gate = new TxGate();
    const log: string[] = [];
    let ran = false;
    await expect(
      gate.transaction(steps(log, { failBegin: true }), async () => {
        ran = true;
      }),
    ).rejects.toThrow('cannot begin');
    expect(ran).toBe(false);
    expect(log).toEqual([]);
    expect(await gate.call(() => 'next')).toBe('next');
  });

  it('a nested transaction joins the outer one: one begin and one commit, or one rollback when its error propagates', async () => {
    const gate = new TxGate();
    const log: string[] = [];
    const s = steps(log);
    const r = await gate.transaction(s, async () => {
      const inner = await gate.transaction(s, async () => {
        await gate.call(() => log.push('inner write'));
        return 1;
      });
      return inner + 1;
    });
    expect(r).toBe(2);
    expect(log).toEqual(['begin', 'inner write', 'commit']);
    log.length = 0;
    await expect(
      gate.transaction(s, async () => {
        await gate.transaction(s, async () => {
          throw new Error('inner failed');
        });
      }),
    ).rejects.toThrow('inner failed');
    expect(log).toEqual(['begin', 'rollback']);
  });
});

describe('asyncBackend over the memory backend', () => {
  it('a call waiting outside a transaction lands after its rollback, not inside it', async () => {
    const b = createMemoryBackend();
    const open = latch();
    const a = b.transaction(async () => {
      await b.deadLetters.add(letter('X'));
      await open.promise;
      throw new Error('A failed');
    });
    await settle();
    const y = b.deadLetters.add(letter('Y'));
    const count = b.deadLetters.count(); // a read waits too: it would otherwise see X
    await settle();
    open.release();
    await expect(a).rejects.toThrow('A failed');
    await y;
    expect(await count).toBe(1);
    expect((await b.deadLetters.list(10)).map((d) => d.topic)).toEqual(['Y']);
    await b.close();
  });

  it('the prompt repository joins the same transactions (PromptRepo.tx is Stores.transaction)', async () => {
    const b = createMemoryBackend();
    await expect(
      b.transaction(async () => {
        await b.promptRepo.tx(async () => {
          await b.deadLetters.add(letter('in repo tx'));
        });
        throw new Error('outer failed');
      }),
    ).rejects.toThrow('outer failed');
    expect(await b.deadLetters.count()).toBe(0);
    await b.close();
  });

  it('a store call that throws (bad cursor) rejects instead of throwing', async () => {
    const b = createMemoryBackend();
    let p: Promise<unknown> | undefined;
    expect(() => {
      p = b.vehicles.list({ limit: 2, cursor: '%%%' });
    }).not.toThrow();
    await expect(p).rejects.toThrow(/cursor/);
    await b.close();
  });
});
