/**
 * The plain-code parsers of the hot path (src/contract/fast-parse.ts) against the schemas they stand in for:
 * whatever a fast parser accepts, the schema accepts and decodes to the same value; the usual shapes do take
 * the fast path. Inputs are the usual shapes mutated field by field with values of every kind, from a seeded
 * generator so a failure is reproducible.
 */
import { describe, expect, it } from 'vitest';
import { runResultWithSchema } from '../../src/contract/args.js';
import { normalizeRunDispatchWithSchema, terminationFromWire } from '../../src/contract/codec.js';
import {
  fastLiveTarget,
  fastRunDispatch,
  fastRunResult,
  fastTermination,
} from '../../src/contract/fast-parse.js';
import { liveRunTargetSchema } from '../../src/contract/schemas.js';
import { decodeCommonRecord, decodeRecordWithSchema } from '../../src/redis/record.js';

function prng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Values of every kind a field may be handed. */
const ODD_VALUES: unknown[] = [
  undefined,
  null,
  '',
  ' ',
  'x',
  'Queued',
  'Acked',
  'done',
  'waiting',
  'nope',
  0,
  -0,
  1,
  5,
  128,
  255,
  256,
  -1,
  1.5,
  Number.NaN,
  Number.POSITIVE_INFINITY,
  Number.MAX_SAFE_INTEGER,
  Number.MAX_SAFE_INTEGER + 1,
  0xffff_ffff,
  0x1_0000_0000,
  1_733_000_000_000,
  true,
  false,
  [],
  ['x'],
  {},
  { type: 'natural_end' },
  { type: 'cancelled', value: 'extra' },
  { type: 'error', value: 'boom' },
  { type: 'error', value: 7 },
  { type: 'blocked', value: 'why' },
  { type: 'blocked' },
  { type: 'suspended' },
  { type: 'behavior_requested' },
  { type: 'plugin_requested' },
  { type: 'stopped', value: { code: 'c' } },
  { type: 'stopped', value: { code: 'c', detail: null } },
  { type: 'stopped', value: { code: 1 } },
  { type: 'weird' },
  { value: 'no type' },
  '1',
  '12',
];

function schemaResult<T>(decode: () => T): { ok: true; value: T } | { ok: false } {
  try {
    return { ok: true, value: decode() };
  } catch {
    return { ok: false };
  }
}

function mutations(base: Record<string, unknown>, fields: readonly string[], count: number, seed: number) {
  const random = prng(seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(random() * xs.length)] as T;
  const out: Record<string, unknown>[] = [];
  for (let i = 0; i < count; i++) {
    const v: Record<string, unknown> = { ...base };
    const changes = 1 + Math.floor(random() * 3);
    for (let c = 0; c < changes; c++) {
      const field = pick(fields);
      const value = pick(ODD_VALUES);
      if (value === undefined && random() < 0.5) delete v[field];
      else v[field] = value;
    }
    if (random() < 0.1) v.unknown_field = pick(ODD_VALUES);
    out.push(v);
  }
  return out;
}

const DISPATCH_FIELDS = [
  'dispatch_id',
  'thread_id',
  'run_id',
  'priority',
  'dedupe_key',
  'dispatch_epoch',
  'status',
  'available_at',
  'attempt_count',
  'max_attempts',
  'last_error',
  'claim_token',
  'claimed_by',
  'lease_until',
  'dispatch_instance_id',
  'run_status',
  'termination',
  'run_response',
  'run_error',
  'completed_at',
  'created_at',
  'updated_at',
] as const;

const QUEUED = {
  dispatch_id: 'd-1',
  thread_id: 't-1',
  run_id: 'r-1',
  priority: 128,
  dedupe_key: null,
  available_at: 1_733_000_000_000,
  attempt_count: 0,
  max_attempts: 5,
  created_at: 1_733_000_000_000,
  updated_at: 1_733_000_000_000,
};
const ACKED = {
  ...QUEUED,
  status: 'Acked',
  dispatch_epoch: 3,
  attempt_count: 1,
  dispatch_instance_id: 'i-1',
  run_status: 'done',
  termination: { type: 'natural_end' },
  run_response: 'ok',
  completed_at: 1_733_000_000_500,
  updated_at: 1_733_000_000_500,
};

describe('fast parsers agree with the schemas', () => {
  it('a dispatch record: whatever the fast path accepts, the schema decodes to the same record', () => {
    let fast = 0;
    let schemaOnly = 0;
    for (const [i, base] of [
      QUEUED,
      ACKED,
      { dispatch_id: 'd', thread_id: 't', run_id: 'r', created_at: 5 },
    ].entries()) {
      expect(fastRunDispatch(base)).toEqual(normalizeRunDispatchWithSchema(base));
      for (const v of mutations(base, DISPATCH_FIELDS, 3000, 11 + i)) {
        const got = fastRunDispatch(v);
        const want = schemaResult(() => normalizeRunDispatchWithSchema(v));
        if (got !== undefined) {
          fast++;
          expect(want, JSON.stringify(v)).toEqual({ ok: true, value: got });
        } else if (want.ok) {
          schemaOnly++;
        }
      }
    }
    // Both paths were exercised: many mutations stay valid for the fast path, a few need the schema.
    expect(fast).toBeGreaterThan(500);
    expect(schemaOnly).toBeGreaterThan(0);
  });

  it('a run result: the same, and the usual results take the fast path', () => {
    const base = {
      run_id: 'r-1',
      dispatch_instance_id: 'i-1',
      status: 'done',
      termination: { type: 'natural_end' },
      response: 'ok',
    };
    expect(fastRunResult(base)).toEqual(runResultWithSchema(base));
    expect(fastRunResult({ ...base, termination: { type: 'error', value: 'x' }, error: 'x' })).toBeDefined();
    let fast = 0;
    const fields = ['run_id', 'dispatch_instance_id', 'status', 'termination', 'response', 'error'];
    for (const v of mutations(base, fields, 5000, 7)) {
      const got = fastRunResult(v);
      if (got === undefined) continue;
      fast++;
      expect(
        schemaResult(() => runResultWithSchema(v)),
        JSON.stringify(v),
      ).toEqual({ ok: true, value: got });
    }
    expect(fast).toBeGreaterThan(300);
  });

  it('a termination: the same for every value kind', () => {
    for (const v of ODD_VALUES) {
      const got = fastTermination(v);
      if (got === undefined) continue;
      expect(
        schemaResult(() => terminationFromWire(v)),
        JSON.stringify(v),
      ).toEqual({ ok: true, value: got });
    }
    expect(fastTermination({ type: 'cancelled', value: 'extra' })).toEqual({ type: 'cancelled' });
    // Left to the schema: the legacy alias and the nested stopped value.
    expect(fastTermination({ type: 'plugin_requested' })).toBeUndefined();
    expect(fastTermination({ type: 'stopped', value: { code: 'c' } })).toBeUndefined();
  });

  it('a live target: the same, and the usual targets take the fast path', () => {
    const base = { thread_id: 't-1', run_id: 'r-1', dispatch_id: 'd-1' };
    const viaSchema = (v: unknown) => {
      const t = liveRunTargetSchema.parse(v);
      return { thread_id: t.thread_id, run_id: t.run_id, dispatch_id: t.dispatch_id ?? null };
    };
    expect(fastLiveTarget(base)).toEqual(base);
    expect(fastLiveTarget({ thread_id: 't', run_id: 'r' })).toEqual({
      thread_id: 't',
      run_id: 'r',
      dispatch_id: null,
    });
    let fast = 0;
    for (const v of mutations(base, ['thread_id', 'run_id', 'dispatch_id'], 3000, 5)) {
      const got = fastLiveTarget(v);
      if (got === undefined) continue;
      fast++;
      expect(
        schemaResult(() => viaSchema(v)),
        JSON.stringify(v),
      ).toEqual({ ok: true, value: got });
    }
    expect(fast).toBeGreaterThan(300);
  });

  it("a stored record with a termination takes the Redis decoder's fast path and decodes as the schema does", () => {
    const fields: Record<string, string> = {
      dispatch_id: 'd-1',
      thread_id: 't-1',
      run_id: 'r-1',
      status: 'Acked',
      priority: '128',
      dispatch_epoch: '0',
      available_at: '1000',
      attempt_count: '1',
      max_attempts: '5',
      created_at: '1000',
      updated_at: '2000',
      completed_at: '2000',
      dispatch_instance_id: 'i-1',
      run_status: 'done',
      run_response: 'ok',
    };
    for (const termination of [
      '{"type":"natural_end"}',
      '{"type":"error","value":"boom"}',
      '{"type":"blocked","value":"b","extra":1}',
    ]) {
      const f = { ...fields, termination };
      const got = decodeCommonRecord('d-1', f);
      expect(got).toBeDefined();
      expect(got).toEqual(decodeRecordWithSchema('d-1', f));
    }
    // Not for the fast path; the schema path decodes or names the fault.
    for (const termination of ['{"type":"stopped","value":{"code":"c"}}', '{"type":"nope"}', '{oops']) {
      expect(decodeCommonRecord('d-1', { ...fields, termination })).toBeUndefined();
    }
    expect(() => decodeRecordWithSchema('d-1', { ...fields, termination: '{"type":"nope"}' })).toThrow(
      /termination/,
    );
  });
});
