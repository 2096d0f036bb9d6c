/**
 * The hot-path record decoder (`decodeCommonRecord`) must agree with the schema-validating path on every
 * hash it accepts, and leave every hash the schema rejects to that path (so corrupt data still answers
 * `Serialization` naming the field).
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { StorageError } from '../../src/contract/errors.js';
import {
  decodeCommonRecord,
  decodeRecordWithSchema,
  recordFromHash,
  SIGNAL_TARGET_FIELDS,
  signalTargetFromFields,
} from '../../src/redis/record.js';

const intText = fc.oneof(
  fc.nat({ max: 300 }).map(String),
  fc.constantFrom('0', '1', '255', '256', '4294967295', '4294967296', '9007199254740991', '9007199254740992'),
  fc.constantFrom('', '-1', '1.5', 'yesterday', '007', ' 1', '1e3', '99999999999999999'),
);
const mutation = fc.record({
  dispatch_id: fc.constantFrom('d1', 'd2', ''),
  thread_id: fc.constantFrom('t1', ' ', ''),
  run_id: fc.constantFrom('r1', ''),
  priority: intText,
  dedupe_key: fc.constantFrom('k', ''),
  dispatch_epoch: intText,
  status: fc.constantFrom('Queued', 'Claimed', 'Acked', 'DeadLetter', 'queued', 'Bogus'),
  available_at: intText,
  attempt_count: intText,
  max_attempts: intText,
  last_error: fc.constantFrom('boom', ''),
  claim_token: fc.constantFrom('tok', ' '),
  claimed_by: fc.constantFrom('node', ''),
  lease_until: intText,
  dispatch_instance_id: fc.constantFrom('inst'),
  run_status: fc.constantFrom('running', 'done', 'Running'),
  termination: fc.constantFrom('{"type":"natural_end"}', '{"type":"nope"}', 'not json'),
  run_response: fc.constantFrom('ok'),
  run_error: fc.constantFrom('e'),
  completed_at: intText,
  created_at: intText,
  updated_at: intText,
  extra_field: fc.constantFrom('x'),
});

const base = {
  dispatch_id: 'd1',
  thread_id: 't1',
  run_id: 'r1',
  priority: '0',
  dispatch_epoch: '0',
  available_at: '1000',
  attempt_count: '0',
  max_attempts: '3',
  created_at: '1000',
  updated_at: '1000',
};
const shapes: Record<string, string>[] = [
  { ...base, status: 'Queued' },
  { ...base, status: 'Queued', dedupe_key: 'k', last_error: 'boom', attempt_count: '2' },
  { ...base, status: 'Claimed', claim_token: 'tok', claimed_by: 'n', lease_until: '5000' },
  {
    ...base,
    status: 'Claimed',
    claim_token: 'tok',
    claimed_by: 'n',
    lease_until: '5000',
    dispatch_instance_id: 'inst',
    run_status: 'running',
  },
  { ...base, status: 'Acked', completed_at: '2000', run_status: 'done', run_response: 'ok' },
];

/** A valid record of one of the shapes above with up to 3 fields replaced by arbitrary text or removed. */
const hash = fc
  .tuple(
    fc.constantFrom(...shapes),
    mutation,
    fc.subarray(
      Object.keys(base).concat([
        'status',
        'claim_token',
        'lease_until',
        'termination',
        'completed_at',
        'run_status',
        'extra_field',
      ]),
      { maxLength: 3 },
    ),
    fc.boolean(),
  )
  .map(([shape, values, fields, remove]) => {
    const out: Record<string, string> = { ...shape };
    for (const f of fields) {
      if (remove) delete out[f];
      else out[f] = values[f as keyof typeof values];
    }
    return out;
  });

function schemaResult(id: string, fields: Record<string, string>): unknown {
  try {
    return decodeRecordWithSchema(id, fields);
  } catch (err) {
    if (err instanceof StorageError) return err;
    throw err;
  }
}

describe('hot-path record decoder', () => {
  it('returns exactly what the schema path returns, or defers to it', () => {
    let accepted = 0;
    fc.assert(
      fc.property(hash, (fields) => {
        const fast = decodeCommonRecord('d1', fields);
        const slow = schemaResult('d1', fields);
        if (fast !== undefined) {
          accepted++;
          expect(slow).toEqual(fast);
        }
        const combined = (() => {
          try {
            return recordFromHash('d1', fields);
          } catch (err) {
            return err;
          }
        })();
        expect(combined).toEqual(slow);
      }),
      { numRuns: 3000 },
    );
    // The generator must reach the fast path too, or this test proves nothing.
    expect(accepted).toBeGreaterThan(0);
  });

  it('accepts the records a running node sees (a started claim)', () => {
    const started = {
      dispatch_id: 'd1',
      thread_id: 't1',
      run_id: 'r1',
      priority: '0',
      dispatch_epoch: '3',
      status: 'Claimed',
      available_at: '1000',
      attempt_count: '0',
      max_attempts: '3',
      claim_token: 'tok',
      claimed_by: 'node',
      lease_until: '31000',
      dispatch_instance_id: 'inst',
      run_status: 'running',
      created_at: '1000',
      updated_at: '1001',
    };
    expect(decodeCommonRecord('d1', started)).toEqual(decodeRecordWithSchema('d1', started));
    expect(decodeCommonRecord('d1', started)?.lease_until).toBe(31000);
  });
});

describe('signalTargetFromFields (the HMGET a pulled signal reads)', () => {
  // A whole valid record; the cases below change only the four fields the signal target reads.
  const full: Record<string, string> = {
    dispatch_id: 'd1',
    thread_id: 't1',
    run_id: 'r1',
    priority: '128',
    dispatch_epoch: '0',
    status: 'Queued',
    available_at: '1000',
    attempt_count: '0',
    max_attempts: '5',
    created_at: '1000',
    updated_at: '1000',
  };
  const withFields = (over: Partial<Record<string, string | null>>): Record<string, string> => {
    const f: Record<string, string> = { ...full };
    for (const [k, v] of Object.entries(over)) {
      if (v === null || v === undefined) delete f[k];
      else f[k] = v;
    }
    return f;
  };
  const targetOf = (f: Record<string, string>) =>
    signalTargetFromFields(
      'd1',
      SIGNAL_TARGET_FIELDS.map((n) => f[n] ?? null),
    );

  it('answers the four fields of a well-formed record, as the full decoder reads them, and null for a missing one', () => {
    const d = decodeRecordWithSchema('d1', full);
    expect(targetOf(full)).toEqual({
      dispatch_id: d.dispatch_id,
      thread_id: d.thread_id,
      status: d.status,
      available_at: d.available_at,
    });
    expect(signalTargetFromFields('d1', [null, null, null, null])).toBeNull();
  });

  it('rejects a bad value of any field it reads wherever the full decoder does, with Serialization naming it', () => {
    const cases: [Partial<Record<string, string | null>>, string][] = [
      [{ dispatch_id: 'd2' }, 'dispatch_id field does not match its key'],
      [{ dispatch_id: null }, 'dispatch_id'],
      [{ thread_id: ' ' }, 'thread_id'],
      [{ thread_id: null }, 'thread_id'],
      [{ status: 'Exploded' }, 'status'],
      [{ status: null }, 'status'],
      [{ available_at: 'soon' }, 'available_at'],
      [{ available_at: '-1' }, 'available_at'],
      [{ available_at: '9007199254740992' }, 'available_at'],
      [{ available_at: null }, 'available_at'],
    ];
    for (const [over, named] of cases) {
      const f = withFields(over);
      for (const decode of [() => targetOf(f), () => decodeRecordWithSchema('d1', f)]) {
        let caught: unknown = null;
        try {
          decode();
        } catch (err) {
          caught = err;
        }
        expect(caught, JSON.stringify(over)).toBeInstanceOf(StorageError);
        expect((caught as StorageError).kind).toBe('Serialization');
        expect((caught as StorageError).detail).toContain("dispatch 'd1'");
        expect((caught as StorageError).detail).toContain(named);
      }
    }
  });

  it('does not judge the fields it does not read: the claim that takes the record checks those', () => {
    const f = withFields({ run_id: null });
    expect(() => decodeRecordWithSchema('d1', f)).toThrow(StorageError);
    expect(targetOf(f)).toEqual({ dispatch_id: 'd1', thread_id: 't1', status: 'Queued', available_at: 1000 });
  });
});
