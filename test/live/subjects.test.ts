import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { StorageError } from '../../src/contract/errors.js';
import {
  MAX_LIVE_SUBJECT_BYTES,
  decodeSegment,
  encodeSegment,
  idBytes,
  liveSubjectPrefix,
  targetLiveSubject,
  threadLiveSubject,
  validateLivePrefix,
} from '../../src/live/subjects.js';

/** Any UTF-16 code units, lone surrogates included. */
const anyCodeUnits = (minLength = 0): fc.Arbitrary<string> =>
  fc.string({ unit: fc.integer({ min: 0, max: 0xffff }).map((c) => String.fromCharCode(c)), minLength });

const tokens = (subject: string): string[] => subject.split('.');

function expectValidation(fn: () => unknown, field: string): void {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(StorageError);
    expect((err as StorageError).kind).toBe('Validation');
    expect((err as StorageError).detail).toContain(field);
    return;
  }
  throw new Error('expected a Validation error');
}

describe('segment encoding', () => {
  it('matches upstream examples', () => {
    expect(encodeSegment('t1')).toBe('h7431');
    expect(encodeSegment('')).toBe('h');
    expect(encodeSegment('r1')).toBe('h7231');
    expect(encodeSegment('d1')).toBe('h6431');
  });

  it('is lowercase hex of the UTF-8 bytes', () => {
    expect(encodeSegment('é')).toBe('hc3a9');
    expect(encodeSegment('😀')).toBe('hf09f9880');
    expect(encodeSegment('A.B')).toBe('h412e42');
  });

  it('decodes upper- and lowercase hex and rejects malformed segments', () => {
    expect(decodeSegment('h7431')).toBe('t1');
    expect(decodeSegment('hC3A9')).toBe('é');
    expect(decodeSegment('h')).toBe('');
    for (const bad of [
      '7431',
      'x7431',
      'h743',
      'h74zz',
      'hc3',
      'hff',
      'hc0af',
      'heda080edb080',
      'hf4908080',
    ]) {
      expect(() => decodeSegment(bad), bad).toThrow(StorageError);
      try {
        decodeSegment(bad);
      } catch (err) {
        expect((err as StorageError).kind).toBe('Serialization');
      }
    }
  });

  it('keeps lone surrogates distinct from U+FFFD (WTF-8), and UTF-8 for well-formed strings', () => {
    expect(encodeSegment('\uD800')).toBe('heda080');
    expect(encodeSegment('\uFFFD')).toBe('hefbfbd');
    expect(encodeSegment('\uDC00x')).toBe('hedb08078');
    expect(decodeSegment(encodeSegment('a\uD800b'))).toBe('a\uD800b');
    expect(encodeSegment('😀\uD83D')).toBe('hf09f9880eda0bd');
  });

  it('round-trips any string (property)', () => {
    fc.assert(
      fc.property(fc.oneof(anyCodeUnits(), fc.string({ unit: 'binary' })), (s) => {
        const seg = encodeSegment(s);
        expect(seg).toMatch(/^h[0-9a-f]*$/);
        expect(decodeSegment(seg)).toBe(s);
      }),
      { numRuns: 500 },
    );
    fc.assert(
      fc.property(fc.string({ unit: 'grapheme' }), (s) => {
        expect(idBytes(s).equals(Buffer.from(s, 'utf8'))).toBe(true);
      }),
      { numRuns: 300 },
    );
  });

  it('is injective (property)', () => {
    fc.assert(
      fc.property(anyCodeUnits(), anyCodeUnits(), (a, b) => {
        if (a !== b) expect(encodeSegment(a)).not.toBe(encodeSegment(b));
      }),
      { numRuns: 500 },
    );
  });
});

describe('live subjects', () => {
  it('are byte-identical to upstream without a namespace', () => {
    const p = liveSubjectPrefix(null);
    expect(p).toBe('live');
    expect(threadLiveSubject(p, 't1')).toBe('live.thread.h7431');
    expect(targetLiveSubject(p, { thread_id: 't1', run_id: 'r1', dispatch_id: 'd1' })).toBe(
      'live.thread.h7431.run.h7231.dispatch.h6431',
    );
    expect(targetLiveSubject(p, { thread_id: 't1', run_id: 'r1' })).toBe('live.thread.h7431.run.h7231');
    expect(targetLiveSubject(p, { thread_id: 't1', run_id: 'r1', dispatch_id: null })).toBe(
      'live.thread.h7431.run.h7231',
    );
  });

  it('use <namespace>.live with a namespace, and the override wins', () => {
    expect(liveSubjectPrefix('ns_1-a')).toBe('ns_1-a.live');
    expect(threadLiveSubject(liveSubjectPrefix('ns'), 't1')).toBe('ns.live.thread.h7431');
    expect(liveSubjectPrefix('ns', 'custom.prefix')).toBe('custom.prefix');
    expect(liveSubjectPrefix(null, 'x')).toBe('x');
    expect(liveSubjectPrefix(undefined)).toBe('live');
  });

  it('rejects bad namespaces and prefixes as Validation', () => {
    expectValidation(() => liveSubjectPrefix('a.b'), 'namespace');
    expectValidation(() => liveSubjectPrefix('has space'), 'namespace');
    expectValidation(() => liveSubjectPrefix(''), 'namespace');
    for (const bad of ['', 'a..b', '.a', 'a.', 'a.*', 'a.>', 'a b', 'x\u00e9', 'a\tb', 'x'.repeat(300)]) {
      expectValidation(() => validateLivePrefix(bad), 'subjectPrefix');
    }
    expectValidation(() => liveSubjectPrefix(null, 'a.*.b'), 'liveSubjectPrefix');
  });

  it('keep a fixed token count whatever the ids contain', () => {
    const nasty = [
      'a.b.c',
      '*',
      '>',
      'a.*.>',
      'with space',
      ' ',
      'scope:5:tenant:thread-1',
      'naïve—ünïcødé',
      '日本語.スレッド',
      '😀.🎉*>',
      '\t\r\n',
      '.',
      '..',
      'a\u0000b',
    ];
    for (const id of nasty) {
      const t = threadLiveSubject('live', id);
      expect(tokens(t), id).toHaveLength(3);
      expect(t).toMatch(/^[a-z0-9.]+$/);
      expect(decodeSegment(tokens(t)[2]!)).toBe(id);
      const full = targetLiveSubject('live', { thread_id: id, run_id: id, dispatch_id: id });
      expect(tokens(full), id).toHaveLength(7);
      expect(full).toMatch(/^[a-z0-9.]+$/);
      expect(tokens(targetLiveSubject('ns.live', { thread_id: id, run_id: id }))).toHaveLength(6);
    }
  });

  it('never produces wildcard or empty tokens (property)', () => {
    fc.assert(
      fc.property(anyCodeUnits(1), anyCodeUnits(1), (t, r) => {
        const s = targetLiveSubject('live', { thread_id: t, run_id: r, dispatch_id: t + r });
        const parts = tokens(s);
        expect(parts).toHaveLength(7);
        for (const p of parts) {
          expect(p.length).toBeGreaterThan(0);
          expect(p).not.toMatch(/[*> ]/);
        }
      }),
      { numRuns: 300 },
    );
  });

  it('thread-level, run-level and dispatch-level subjects of the same ids all differ', () => {
    const subjects = new Set([
      threadLiveSubject('live', 't'),
      targetLiveSubject('live', { thread_id: 't', run_id: 'r' }),
      targetLiveSubject('live', { thread_id: 't', run_id: 'r', dispatch_id: 'd' }),
      targetLiveSubject('live', { thread_id: 't', run_id: 'r', dispatch_id: 'e' }),
      targetLiveSubject('live', { thread_id: 't', run_id: 'r2', dispatch_id: 'd' }),
    ]);
    expect(subjects.size).toBe(5);
  });

  it('digest long segments only when the full subject would not fit', () => {
    const long = 'x'.repeat(1910); // 3821 hex chars: fits in a thread subject, not in a target one
    const thread = threadLiveSubject('live', long);
    expect(thread).toBe(`live.thread.h${'78'.repeat(1910)}`);
    const target = targetLiveSubject('live', { thread_id: long, run_id: 'r1', dispatch_id: 'd1' });
    expect(target.length).toBeLessThanOrEqual(MAX_LIVE_SUBJECT_BYTES);
    expect(tokens(target)).toHaveLength(7);
    expect(tokens(target)[2]).toMatch(/^s[0-9a-f]{64}$/);
    expect(tokens(target)[4]).toBe('h7231');
    expect(tokens(target)[6]).toBe('h6431');

    const max = '語'.repeat(4096); // MAX_ID_LENGTH characters of 3 UTF-8 bytes each
    const huge = targetLiveSubject('a'.repeat(200), { thread_id: max, run_id: max, dispatch_id: max });
    expect(huge.length).toBeLessThanOrEqual(MAX_LIVE_SUBJECT_BYTES);
    // Ids differing only in their last character still route apart.
    const other = targetLiveSubject('a'.repeat(200), {
      thread_id: max,
      run_id: max,
      dispatch_id: max.slice(0, -1) + 'x',
    });
    expect(other).not.toBe(huge);
  });
});
