import { describe, expect, it } from 'vitest';
import { newBootId } from '../../../agent/main.js';

describe('newBootId', () => {
  it('is a random version-4 UUID, different at every call', () => {
    const ids = Array.from({ length: 200 }, () => newBootId());
    for (const id of ids) expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(new Set(ids).size).toBe(ids.length);
  });
});
