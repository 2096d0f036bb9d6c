/**
 * The boundary validators every store calls first (`args.*`), the `StorageError` display texts (the Rust
 * `Display` strings, contract.md §3), `isTerminal`, `queuedDispatch` defaults (§2.2) and the persist /
 * enqueue invariants with their exact messages.
 */
import { describe, expect, it } from 'vitest';
import * as args from '../../src/contract/args.js';
import { StorageError, isStorageError } from '../../src/contract/errors.js';
import type { StorageErrorKind } from '../../src/contract/errors.js';
import { DEFAULT_MAX_ATTEMPTS, DEFAULT_PRIORITY, queuedDispatch } from '../../src/contract/helpers.js';
import type { RunDispatch } from '../../src/contract/types.js';
import { RUN_DISPATCH_STATUSES, TERMINAL_STATUSES, isTerminal } from '../../src/contract/types.js';
import { validateForEnqueue, validateForPersist } from '../../src/contract/validate.js';

function validationError(action: () => unknown): StorageError {
  let caught: unknown = null;
  try {
    action();
  } catch (err) {
    caught = err;
  }
  expect(caught).toBeInstanceOf(StorageError);
  const err = caught as StorageError;
  expect(err.kind, err.message).toBe('Validation');
  expect(err.message).toBe(`validation error: ${err.detail}`);
  return err;
}

const base = (): RunDispatch =>
  queuedDispatch({ dispatch_id: 'd1', thread_id: 't1', run_id: 'r1', created_at: 1000 });

describe('StorageError', () => {
  it('display texts match the Rust Display strings', () => {
    const cases: [StorageError, StorageErrorKind, string, string][] = [
      [StorageError.validation('bad input'), 'Validation', 'bad input', 'validation error: bad input'],
      [StorageError.notFound('d1'), 'NotFound', 'd1', 'not found: d1'],
      [StorageError.alreadyExists('d1'), 'AlreadyExists', 'd1', 'already exists: d1'],
      [StorageError.io('connection reset'), 'Io', 'connection reset', 'io error: connection reset'],
      [StorageError.serialization('bad json'), 'Serialization', 'bad json', 'serialization error: bad json'],
    ];
    for (const [err, kind, detail, message] of cases) {
      expect(err.kind).toBe(kind);
      expect(err.detail).toBe(detail);
      expect(err.message).toBe(message);
      expect(String(err)).toBe(`StorageError: ${message}`);
      expect(err.expected).toBeUndefined();
      expect(err.actual).toBeUndefined();
    }
  });

  it('version conflict: expected/actual values and display text', () => {
    const err = StorageError.versionConflict(0, 1);
    expect(err.kind).toBe('VersionConflict');
    expect(err.message).toBe('version conflict: expected 0, actual 1');
    expect(err.detail).toBe('expected 0, actual 1');
    expect(err.expected).toBe(0);
    expect(err.actual).toBe(1);
    const stale = StorageError.versionConflict(3, 7);
    expect(stale.message).toBe('version conflict: expected 3, actual 7');
    expect([stale.expected, stale.actual]).toEqual([3, 7]);
  });

  it('is an Error named StorageError with a stack', () => {
    const err = StorageError.notFound('x');
    expect(err).toBeInstanceOf(Error);
    expect(err).toBeInstanceOf(StorageError);
    expect(err.name).toBe('StorageError');
    expect(typeof err.stack).toBe('string');
  });

  it('fromKind rebuilds every kind identically', () => {
    for (const kind of ['Validation', 'NotFound', 'AlreadyExists', 'Io', 'Serialization'] as const) {
      const err = StorageError.fromKind(kind, 'detail text');
      expect(err.kind).toBe(kind);
      expect(err.detail).toBe('detail text');
    }
    expect(StorageError.fromKind('AlreadyExists', 'd1').message).toBe('already exists: d1');
    const vc = StorageError.fromKind('VersionConflict', 'ignored', [2, 5]);
    expect(vc.message).toBe('version conflict: expected 2, actual 5');
    expect([vc.expected, vc.actual]).toEqual([2, 5]);
  });

  it('isStorageError narrows by kind', () => {
    const err = StorageError.validation('x');
    expect(isStorageError(err)).toBe(true);
    expect(isStorageError(err, 'Validation')).toBe(true);
    expect(isStorageError(err, 'NotFound')).toBe(false);
    expect(isStorageError(new Error('x'))).toBe(false);
    expect(isStorageError({ kind: 'Validation' })).toBe(false);
    expect(isStorageError(null)).toBe(false);
  });
});

describe('isTerminal', () => {
  it('Acked, Cancelled, Superseded, DeadLetter are terminal; Queued and Claimed are not', () => {
    const terminal = RUN_DISPATCH_STATUSES.filter((s) => isTerminal(s));
    expect(terminal).toEqual(['Acked', 'Cancelled', 'Superseded', 'DeadLetter']);
    expect([...TERMINAL_STATUSES]).toEqual(terminal);
    expect(isTerminal('Queued')).toBe(false);
    expect(isTerminal('Claimed')).toBe(false);
  });

  it('lists the six statuses in the Rust order', () => {
    expect([...RUN_DISPATCH_STATUSES]).toEqual([
      'Queued',
      'Claimed',
      'Acked',
      'Cancelled',
      'Superseded',
      'DeadLetter',
    ]);
  });
});

describe('queuedDispatch', () => {
  it('builds a valid Queued record with the §2.2 defaults', () => {
    expect(DEFAULT_PRIORITY).toBe(128);
    expect(DEFAULT_MAX_ATTEMPTS).toBe(5);
    const d = base();
    expect(d).toEqual({
      dispatch_id: 'd1',
      thread_id: 't1',
      run_id: 'r1',
      priority: 128,
      dedupe_key: null,
      dispatch_epoch: 0,
      status: 'Queued',
      available_at: 1000,
      attempt_count: 0,
      max_attempts: 5,
      last_error: null,
      claim_token: null,
      claimed_by: null,
      lease_until: null,
      dispatch_instance_id: null,
      run_status: null,
      termination: null,
      run_response: null,
      run_error: null,
      completed_at: null,
      created_at: 1000,
      updated_at: 1000,
    });
    expect(() => validateForEnqueue(d)).not.toThrow();
    expect(() => validateForPersist(d)).not.toThrow();
  });

  it('overrides win', () => {
    const d = queuedDispatch({
      dispatch_id: 'd1',
      thread_id: 't1',
      run_id: 'r1',
      created_at: 1000,
      priority: 3,
      available_at: 61_000,
      max_attempts: 1,
      dedupe_key: 'k',
      updated_at: 999,
    });
    expect(d.priority).toBe(3);
    expect(d.available_at).toBe(61_000);
    expect(d.max_attempts).toBe(1);
    expect(d.dedupe_key).toBe('k');
    expect(d.updated_at).toBe(999);
    expect(d.created_at).toBe(1000);
  });

  it('returns a fresh object each time', () => {
    const a = base();
    const b = base();
    expect(a).not.toBe(b);
    a.priority = 1;
    expect(b.priority).toBe(128);
  });
});

describe('validateForEnqueue / validateForPersist (exact §2.2 messages)', () => {
  const cases: [string, Partial<RunDispatch>, string, 'both' | 'enqueue' | 'persist'][] = [
    ['blank dispatch_id', { dispatch_id: '  ' }, 'dispatch_id must not be empty', 'both'],
    ['blank thread_id', { thread_id: '' }, 'thread_id must not be empty', 'both'],
    ['blank run_id', { run_id: '\t' }, 'run_id must not be empty', 'both'],
    ['max_attempts 0', { max_attempts: 0 }, "dispatch 'd1' max_attempts must be greater than zero", 'both'],
    [
      'attempt_count > max',
      { attempt_count: 6 },
      "dispatch 'd1' attempt_count must not exceed max_attempts",
      'both',
    ],
    [
      'Queued with claim fields',
      { claim_token: 'tok' },
      "Queued dispatch 'd1' must not carry claim fields",
      'both',
    ],
    [
      'Queued with completed_at',
      { completed_at: 5 },
      "Queued dispatch 'd1' must not carry completed_at",
      'both',
    ],
    [
      'Queued with projection',
      { run_status: 'done' },
      "Queued dispatch 'd1' must not carry runtime result fields",
      'both',
    ],
    [
      'Queued with termination',
      { termination: { type: 'natural_end' } },
      "Queued dispatch 'd1' must not carry runtime result fields",
      'both',
    ],
    [
      'Claimed at enqueue',
      { status: 'Claimed', claim_token: 'tok', claimed_by: 'c', lease_until: 5 },
      "enqueued dispatch 'd1' must start as Queued",
      'enqueue',
    ],
    [
      'Claimed without token',
      { status: 'Claimed', claimed_by: 'c', lease_until: 5 },
      "Claimed dispatch 'd1' must carry claim_token, claimed_by, and lease_until",
      'persist',
    ],
    [
      'Claimed with blank claimed_by',
      { status: 'Claimed', claim_token: 'tok', claimed_by: ' ', lease_until: 5 },
      "Claimed dispatch 'd1' must carry claim_token, claimed_by, and lease_until",
      'persist',
    ],
    [
      'Claimed without lease',
      { status: 'Claimed', claim_token: 'tok', claimed_by: 'c' },
      "Claimed dispatch 'd1' must carry claim_token, claimed_by, and lease_until",
      'persist',
    ],
    [
      'Acked with a lease',
      { status: 'Acked', lease_until: 5, completed_at: 5 },
      "Acked dispatch 'd1' must not carry active lease fields",
      'persist',
    ],
    [
      'DeadLetter without completed_at',
      { status: 'DeadLetter' },
      "DeadLetter dispatch 'd1' must carry completed_at",
      'persist',
    ],
  ];
  for (const [label, patch, detail, where] of cases) {
    it(label, () => {
      const d = { ...base(), ...patch };
      if (where !== 'persist') expect(validationError(() => validateForEnqueue(d)).detail).toBe(detail);
      if (where !== 'enqueue') expect(validationError(() => validateForPersist(d)).detail).toBe(detail);
    });
  }

  it('accepts valid records of every status', () => {
    const claimed = {
      ...base(),
      status: 'Claimed' as const,
      claim_token: 'tok',
      claimed_by: 'c',
      lease_until: 5,
    };
    expect(() => validateForPersist(claimed)).not.toThrow();
    expect(() => validateForPersist({ ...claimed, run_status: 'done', completed_at: 7 })).not.toThrow();
    for (const status of ['Acked', 'Cancelled', 'Superseded', 'DeadLetter'] as const) {
      expect(() =>
        validateForPersist({ ...base(), status, completed_at: 9, run_status: 'done' }),
      ).not.toThrow();
    }
    expect(() => validateForEnqueue({ ...base(), attempt_count: 5 })).not.toThrow();
  });
});

describe('args validators', () => {
  it('id: strings that are non-blank and not too long', () => {
    expect(args.id('thread_id', 't-1')).toBe('t-1');
    expect(args.id('thread_id', ' padded ')).toBe(' padded ');
    expect(args.id('thread_id', 'x'.repeat(args.MAX_ID_LENGTH))).toHaveLength(args.MAX_ID_LENGTH);
    expect(validationError(() => args.id('thread_id', 5)).detail).toBe('thread_id must be a string');
    expect(validationError(() => args.id('thread_id', null)).detail).toBe('thread_id must be a string');
    expect(validationError(() => args.id('thread_id', undefined)).detail).toBe('thread_id must be a string');
    expect(validationError(() => args.id('thread_id', '')).detail).toBe('thread_id must not be empty');
    expect(validationError(() => args.id('consumer_id', ' \t\n')).detail).toBe(
      'consumer_id must not be empty',
    );
    expect(validationError(() => args.id('thread_id', 'x'.repeat(args.MAX_ID_LENGTH + 1))).detail).toBe(
      `thread_id must be at most ${args.MAX_ID_LENGTH} characters`,
    );
    expect(validationError(() => args.id('thread_id', 5)).message).toBe(
      'validation error: thread_id must be a string',
    );
  });

  it('text: any string (even empty) up to MAX_TEXT_LENGTH', () => {
    expect(args.text('error', '')).toBe('');
    expect(args.text('error', 'boom')).toBe('boom');
    expect(validationError(() => args.text('error', 5)).detail).toBe('error must be a string');
    expect(validationError(() => args.text('error', null)).detail).toBe('error must be a string');
    expect(validationError(() => args.text('reason', 'x'.repeat(args.MAX_TEXT_LENGTH + 1))).detail).toBe(
      `reason must be at most ${args.MAX_TEXT_LENGTH} characters`,
    );
  });

  it('u64: non-negative safe integers only', () => {
    for (const ok of [0, 1, 1718000000000, Number.MAX_SAFE_INTEGER]) expect(args.u64('now', ok)).toBe(ok);
    for (const bad of [
      -1,
      -0.5,
      1.5,
      Number.NaN,
      Number.POSITIVE_INFINITY,
      Number.NEGATIVE_INFINITY,
      Number.MAX_SAFE_INTEGER + 1,
      2 ** 64,
      '5',
      null,
      undefined,
      10n,
      {},
    ]) {
      expect(validationError(() => args.u64('now', bad)).detail).toBe(
        'now must be a non-negative safe integer',
      );
    }
  });

  it('bounded: u64 and at most max', () => {
    expect(args.bounded('limit', args.MAX_BATCH, args.MAX_BATCH)).toBe(args.MAX_BATCH);
    expect(args.bounded('limit', 0, args.MAX_BATCH)).toBe(0);
    expect(validationError(() => args.bounded('limit', args.MAX_BATCH + 1, args.MAX_BATCH)).detail).toBe(
      `limit must be at most ${args.MAX_BATCH}`,
    );
    expect(validationError(() => args.bounded('limit', -1, args.MAX_BATCH)).detail).toBe(
      'limit must be a non-negative safe integer',
    );
  });

  it('deadline: now + delta must stay a safe integer', () => {
    expect(args.deadline(1000, 30_000, 'lease_ms')).toBe(31_000);
    expect(args.deadline(Number.MAX_SAFE_INTEGER - 5, 5, 'lease_ms')).toBe(Number.MAX_SAFE_INTEGER);
    expect(validationError(() => args.deadline(Number.MAX_SAFE_INTEGER - 5, 6, 'lease_ms')).detail).toBe(
      'now + lease_ms must be a safe integer',
    );
  });

  it('status / statusFilter', () => {
    for (const s of RUN_DISPATCH_STATUSES) expect(args.status('status', s)).toBe(s);
    for (const bad of ['queued', 'Running', '', null, 1, 'dead_letter']) {
      expect(validationError(() => args.status('status', bad)).message).toContain('status');
    }
    expect(args.statusFilter(null)).toBeNull();
    expect(args.statusFilter(undefined)).toBeNull();
    expect(args.statusFilter([])).toEqual([]);
    expect(args.statusFilter(['Queued', 'Claimed'])).toEqual(['Queued', 'Claimed']);
    expect(validationError(() => args.statusFilter('Queued')).detail).toBe(
      'status_filter must be null or an array of statuses',
    );
    expect(validationError(() => args.statusFilter(['Queued', 'Bogus'])).detail).toContain('status_filter.1');
    expect(validationError(() => args.statusFilter(Array(17).fill('Queued'))).detail).toBe(
      'status_filter must have at most 16 entries',
    );
  });

  it('dispatchForEnqueue: normalizes defaults and enforces the enqueue invariants', () => {
    const d = args.dispatchForEnqueue({ dispatch_id: 'd1', thread_id: 't1', run_id: 'r1', created_at: 1000 });
    expect(d).toEqual(base());
    expect(args.dispatchForEnqueue(base())).toEqual(base());
    expect(args.dispatchForEnqueue({ ...base(), attempt_count: 2, last_error: 'x' }).attempt_count).toBe(2);

    expect(validationError(() => args.dispatchForEnqueue(null)).detail).toBe('dispatch must be an object');
    expect(validationError(() => args.dispatchForEnqueue([base()])).detail).toBe(
      'dispatch must be an object',
    );
    expect(validationError(() => args.dispatchForEnqueue('d1')).detail).toBe('dispatch must be an object');
    expect(validationError(() => args.dispatchForEnqueue({ ...base(), priority: 256 })).detail).toContain(
      'priority',
    );
    expect(validationError(() => args.dispatchForEnqueue({ ...base(), created_at: -1 })).detail).toContain(
      'created_at',
    );
    expect(validationError(() => args.dispatchForEnqueue({ ...base(), status: 'Bogus' })).detail).toContain(
      'status',
    );
    expect(
      validationError(() =>
        args.dispatchForEnqueue({
          ...base(),
          status: 'Claimed',
          claim_token: 't',
          claimed_by: 'c',
          lease_until: 1,
        }),
      ).detail,
    ).toBe("enqueued dispatch 'd1' must start as Queued");
    expect(validationError(() => args.dispatchForEnqueue({ ...base(), dedupe_key: ' ' })).detail).toBe(
      'dedupe_key must not be empty',
    );
    expect(validationError(() => args.dispatchForEnqueue({ ...base(), dispatch_id: '' })).detail).toBe(
      'dispatch_id must not be empty',
    );
    expect(
      validationError(() =>
        args.dispatchForEnqueue({ ...base(), run_id: 'x'.repeat(args.MAX_ID_LENGTH + 1) }),
      ).detail,
    ).toBe(`run_id must be at most ${args.MAX_ID_LENGTH} characters`);
    expect(
      validationError(() =>
        args.dispatchForEnqueue({ ...base(), last_error: 'x'.repeat(args.MAX_TEXT_LENGTH + 1) }),
      ).detail,
    ).toBe(`last_error must be at most ${args.MAX_TEXT_LENGTH} characters`);
  });

  it('runResult: validated, ids non-blank, absent optionals → null', () => {
    expect(args.runResult({ run_id: 'r1', dispatch_instance_id: 'i1', status: 'done' })).toEqual({
      run_id: 'r1',
      dispatch_instance_id: 'i1',
      status: 'done',
      termination: null,
      response: null,
      error: null,
    });
    expect(
      args.runResult({
        run_id: 'r1',
        dispatch_instance_id: 'i1',
        status: 'done',
        termination: { type: 'plugin_requested' },
        response: 'ok',
        error: 'e',
      }),
    ).toEqual({
      run_id: 'r1',
      dispatch_instance_id: 'i1',
      status: 'done',
      termination: { type: 'behavior_requested' },
      response: 'ok',
      error: 'e',
    });
    expect(validationError(() => args.runResult(null)).detail).toBe('result must be an object');
    expect(validationError(() => args.runResult([])).detail).toBe('result must be an object');
    expect(
      validationError(() => args.runResult({ dispatch_instance_id: 'i', status: 'done' })).detail,
    ).toContain('result.run_id');
    expect(
      validationError(() => args.runResult({ run_id: ' ', dispatch_instance_id: 'i', status: 'done' }))
        .detail,
    ).toBe('result.run_id must not be empty');
    expect(
      validationError(() => args.runResult({ run_id: 'r', dispatch_instance_id: '', status: 'done' })).detail,
    ).toBe('result.dispatch_instance_id must not be empty');
    expect(
      validationError(() => args.runResult({ run_id: 'r', dispatch_instance_id: 'i', status: 'ok' })).detail,
    ).toContain('result.status');
    expect(
      validationError(() =>
        args.runResult({
          run_id: 'r',
          dispatch_instance_id: 'i',
          status: 'done',
          termination: { type: 'x' },
        }),
      ).detail,
    ).toContain('result.termination');
  });

  it('liveCommand: the four variants pass, anything else is Validation naming "command"', () => {
    expect(args.liveCommand('Cancel')).toBe('Cancel');
    expect(args.liveCommand('PendingBoundaryWake')).toBe('PendingBoundaryWake');
    expect(args.liveCommand({ Messages: [] })).toEqual({ Messages: [] });
    expect(args.liveCommand({ Decision: [['c', { action: 'cancel' }]] })).toEqual({
      Decision: [['c', { decision_id: '', action: 'cancel', updated_at: 0 }]],
    });
    for (const bad of ['Pause', { Steer: [] }, null, 5, { Messages: 'x' }]) {
      expect(validationError(() => args.liveCommand(bad)).message).toContain('command');
    }
  });

  it('liveTarget: non-blank ids, dispatch_id optional', () => {
    expect(args.liveTarget({ thread_id: 't', run_id: 'r' })).toEqual({
      thread_id: 't',
      run_id: 'r',
      dispatch_id: null,
    });
    expect(args.liveTarget({ thread_id: 't', run_id: 'r', dispatch_id: 'd' })).toEqual({
      thread_id: 't',
      run_id: 'r',
      dispatch_id: 'd',
    });
    expect(validationError(() => args.liveTarget(null)).detail).toBe('target must be an object');
    expect(validationError(() => args.liveTarget({ thread_id: '', run_id: 'r' })).detail).toBe(
      'target.thread_id must not be empty',
    );
    expect(validationError(() => args.liveTarget({ thread_id: 't', run_id: ' ' })).detail).toBe(
      'target.run_id must not be empty',
    );
    expect(
      validationError(() => args.liveTarget({ thread_id: 't', run_id: 'r', dispatch_id: '' })).detail,
    ).toBe('target.dispatch_id must not be empty');
    expect(validationError(() => args.liveTarget({ thread_id: 't' })).detail).toContain('target.run_id');
  });
});
