// The per-vehicle credentials file: salted scrypt, the old unsalted sha256 form (warned about), clear
// secrets, and malformed lines refused with their line number.
import { createHash } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { hashCredential, loadCredentials } from '../../ingest/inbound/credentials.js';

const A = 'LSVAU2180N2183301';
const B = 'LSVAU2180N2183302';
const C = 'LSVAU2180N2183303';
const dir = mkdtempSync(join(tmpdir(), 'odopulse-creds-'));
let n = 0;
const file = (text: string) => {
  const f = join(dir, `creds-${n++}.txt`);
  writeFileSync(f, text);
  return f;
};
const pw = (s: string) => Buffer.from(s);
// small scrypt parameters keep the suite fast; the format and the check are the same
const FAST = { N: 1024, r: 8, p: 1 };

describe('vehicle credentials', () => {
  it('hashCredential makes the salted scrypt form, a fresh salt each time', async () => {
    const h = await hashCredential('secret-a');
    expect(h).toMatch(/^scrypt:16384:8:1:[A-Za-z0-9+/]+={0,2}:[A-Za-z0-9+/]+={0,2}$/);
    expect(h).not.toContain('secret-a');
    expect(await hashCredential('secret-a')).not.toBe(h);
  });

  it('accepts the right secret for the scrypt form and refuses a wrong one', async () => {
    const check = loadCredentials(
      file(`# vehicles\n${A}:${await hashCredential('secret-a', FAST)}\n${B}:${await hashCredential('secret-b')}\n`),
    );
    expect(await check(A, pw('secret-a'))).toBe(true);
    expect(await check(A, pw('secret-b'))).toBe(false);
    expect(await check(A, pw('secret-a '))).toBe(false);
    expect(await check(A, undefined)).toBe(false);
    expect(await check(B, pw('secret-b'))).toBe(true); // default parameters
    expect(await check(C, pw('secret-a'))).toBe(false); // unknown VIN
  });

  it('verifies many connects concurrently without blocking the event loop', async () => {
    const check = loadCredentials(file(`${A}:${await hashCredential('secret-a')}\n`));
    let ticks = 0;
    const timer = setInterval(() => ticks++, 1);
    const results = await Promise.all(Array.from({ length: 8 }, (_, i) => check(A, pw(i % 2 ? 'secret-a' : 'nope'))));
    clearInterval(timer);
    expect(results).toEqual([false, true, false, true, false, true, false, true]);
    expect(ticks).toBeGreaterThan(0); // timers ran while scrypt worked on the thread pool
  });

  it('still reads the unsalted sha256 form, with a warning naming the lines', async () => {
    const warnings: string[] = [];
    const hex = createHash('sha256').update('secret-b').digest('hex');
    const check = loadCredentials(file(`${A}:secret-a\n\n${B}:sha256:${hex}\n${C}:sha256:${hex.toUpperCase()}\n`), (w) => warnings.push(w));
    expect(await check(B, pw('secret-b'))).toBe(true);
    expect(await check(C, pw('secret-b'))).toBe(true);
    expect(await check(B, pw('secret-a'))).toBe(false);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(/2 credential\(s\) in the unsalted sha256 form \(line 3, 4\)/);
    expect(warnings[0]).toMatch(/scrypt/);
  });

  it('reads clear secrets (no warning), including secrets with colons', async () => {
    const warnings: string[] = [];
    const check = loadCredentials(file(`  ${A}:secret-a  \n${B}:pa:ss:word\n`), (w) => warnings.push(w));
    expect(await check(A, pw('secret-a'))).toBe(true);
    expect(await check(B, pw('pa:ss:word'))).toBe(true);
    expect(await check(B, pw('pa'))).toBe(false);
    expect(warnings).toEqual([]);
  });

  it('refuses malformed lines with the file and line number', async () => {
    const good = await hashCredential('x', FAST);
    const [, , , , salt, hash] = good.split(':');
    const cases: Array<[string, RegExp]> = [
      ['no-colon-here', /expected VIN:secret/],
      [':secret', /expected VIN:secret/],
      ['not-a-vin:secret', /is not a VIN/],
      [`${A}:`, /empty secret/],
      [`${A}:sha256:abcd`, /64 hex digits/],
      [`${A}:scrypt:1024:8:1:${salt}`, /scrypt form is/],
      [`${A}:scrypt:1000:8:1:${salt}:${hash}`, /power of two/],
      [`${A}:scrypt:1024:0:1:${salt}:${hash}`, /r must be a positive integer/],
      [`${A}:scrypt:1048576:8:1:${salt}:${hash}`, /too large/],
      [`${A}:scrypt:1024:8:1:!!!:${hash}`, /salt must be base64/],
      [`${A}:scrypt:1024:8:1:${salt}:AAAA`, /hash must be base64 of at least 16 bytes/],
    ];
    for (const [line, why] of cases) {
      const f = file(`# header\n${B}:fine\n${line}\n`);
      expect(() => loadCredentials(f), line).toThrow(new RegExp(`${f.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:3: `));
      expect(() => loadCredentials(f), line).toThrow(why);
    }
    expect(() => loadCredentials(file(`${A}:one\n${A}:two\n`))).toThrow(/:2: .*listed twice/);
  });
});
