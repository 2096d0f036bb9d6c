import { validate, version } from 'uuid';
import { describe, expect, it } from 'vitest';
import { uuidV7 } from '../../src/util/uuid.js';

describe('uuidV7', () => {
  it('makes valid, unique RFC 9562 version 7 ids', () => {
    const seen = new Set<string>();
    for (let i = 0; i < 20_000; i++) {
      const id = uuidV7();
      expect(validate(id)).toBe(true);
      expect(version(id)).toBe(7);
      seen.add(id);
    }
    expect(seen.size).toBe(20_000);
  });

  it('carries the millisecond timestamp and sorts in generation order, also within one millisecond', () => {
    const ms = Date.now() + 86_400_000; // ahead of every id made before, so this millisecond is fresh
    const ids = Array.from({ length: 5000 }, () => uuidV7(ms));
    expect([...ids].sort()).toEqual(ids);
    expect(parseInt(ids[0]!.replace(/-/g, '').slice(0, 12), 16)).toBe(ms);
    const later = uuidV7(ms + 1);
    expect(later > ids[ids.length - 1]!).toBe(true);
    // A clock that steps back never produces an id below the last one.
    expect(uuidV7(ms - 50) > later).toBe(true);
  });
});
