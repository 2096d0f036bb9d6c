import { describe, expect, it } from 'vitest';
import { checkInvariants, emptyStatusCounts } from '../../src/bench/invariants.js';
import type { ExecutionEntry, RecordView, StatusCounts } from '../../src/bench/invariants.js';
import type { RunDispatchStatus } from '../../src/contract/types.js';

const exec = (
  over: Partial<ExecutionEntry> & Pick<ExecutionEntry, 'dispatch_id' | 'start'>,
): ExecutionEntry => ({
  thread_id: 't1',
  claim_token: `c-${over.dispatch_id}`,
  instance_id: `i-${over.dispatch_id}-${over.start}`,
  node: 'node-1',
  end: over.start + 5,
  ...over,
});

const rec = (dispatch_id: string, status: RunDispatchStatus, instance: string | null): RecordView => ({
  dispatch_id,
  status,
  dispatch_instance_id: instance,
});

function countsOf(records: RecordView[]): StatusCounts {
  const c = emptyStatusCounts();
  for (const r of records) c[r.status] += 1;
  return c;
}

/** A clean run: two threads, three dispatches, sequential per thread. */
function cleanRun(): { executions: ExecutionEntry[]; records: RecordView[] } {
  const executions = [
    exec({ dispatch_id: 'd0', start: 100 }),
    exec({ dispatch_id: 'd1', start: 106, node: 'node-2' }),
    exec({ dispatch_id: 'd2', thread_id: 't2', start: 101 }),
  ];
  const records = executions.map((e) => rec(e.dispatch_id, 'Acked', e.instance_id));
  return { executions, records };
}

function check(
  executions: ExecutionEntry[],
  records: (RecordView | null)[],
  ids: string[],
  extra: Partial<Parameters<typeof checkInvariants>[0]> = {},
) {
  const present = records.filter((r): r is RecordView => r !== null);
  return checkInvariants({
    submitted: ids,
    executions,
    records: ids.map((id, i) => [id, records[i] ?? null] as const),
    storeCounts: countsOf(present),
    runEnd: 10_000,
    ...extra,
  });
}

describe('invariant checker', () => {
  it('passes a clean run and tallies the records', () => {
    const { executions, records } = cleanRun();
    const report = check(executions, records, ['d0', 'd1', 'd2']);
    expect(report.ok).toBe(true);
    expect(report).toMatchObject({
      lost: 0,
      duplicated_runs: 0,
      exclusivity_violations: 0,
      count_mismatches: 0,
      acked_without_execution: 0,
    });
    expect(report.record_counts.Acked).toBe(3);
  });

  it('accepts a retry: two executions of one dispatch under different claims, back to back', () => {
    const executions = [
      exec({ dispatch_id: 'd0', start: 100, claim_token: 'c1', instance_id: 'i1' }),
      exec({ dispatch_id: 'd0', start: 200, claim_token: 'c2', instance_id: 'i2', node: 'node-2' }),
    ];
    const report = check(executions, [rec('d0', 'Acked', 'i2')], ['d0']);
    expect(report.ok).toBe(true);
  });

  it('detects a lost dispatch: missing record or non-terminal status', () => {
    const { executions, records } = cleanRun();
    const report = check(executions, [records[0]!, rec('d1', 'Claimed', null), null], ['d0', 'd1', 'd2']);
    expect(report.lost).toBe(2);
    expect(report.ok).toBe(false);
    expect(report.examples.lost.join('\n')).toMatch(/d1 ended Claimed/);
    expect(report.examples.lost.join('\n')).toMatch(/d2 is missing/);
  });

  it('detects a submitted dispatch whose record was never checked', () => {
    const report = checkInvariants({ submitted: ['d0'], executions: [], records: [], runEnd: 1 });
    expect(report.lost).toBe(1);
  });

  it('detects a dispatch executed twice under the same claim', () => {
    const executions = [
      exec({ dispatch_id: 'd0', start: 100, claim_token: 'same', instance_id: 'i1' }),
      exec({ dispatch_id: 'd0', start: 300, claim_token: 'same', instance_id: 'i2', node: 'node-2' }),
    ];
    const report = check(executions, [rec('d0', 'Acked', 'i2')], ['d0']);
    expect(report.duplicated_runs).toBe(1);
    expect(report.exclusivity_violations).toBe(0);
    expect(report.ok).toBe(false);
  });

  it('detects two executions of one thread overlapping in time', () => {
    const executions = [
      exec({ dispatch_id: 'd0', start: 100, end: 110 }),
      exec({ dispatch_id: 'd1', start: 109.5, end: 120, node: 'node-2' }),
    ];
    const report = check(
      executions,
      executions.map((e) => rec(e.dispatch_id, 'Acked', e.instance_id)),
      ['d0', 'd1'],
    );
    expect(report.exclusivity_violations).toBe(1);
    expect(report.examples.exclusivity_violations[0]).toMatch(
      /thread t1: d1 on node-2 started 0\.500 ms before d0/,
    );
  });

  it('detects an overlap with a long execution that started before a short one ended', () => {
    // a: 100..200, b: 150..160 and c: 170..180 both overlap a (not only their direct predecessor).
    const executions = [
      exec({ dispatch_id: 'a', start: 100, end: 200 }),
      exec({ dispatch_id: 'b', start: 150, end: 160 }),
      exec({ dispatch_id: 'c', start: 170, end: 180 }),
    ];
    const report = check(
      executions,
      executions.map((e) => rec(e.dispatch_id, 'Acked', e.instance_id)),
      ['a', 'b', 'c'],
    );
    expect(report.exclusivity_violations).toBe(2);
  });

  it('does not count executions on different threads, or touching end-to-start ones, as overlapping', () => {
    const executions = [
      exec({ dispatch_id: 'd0', start: 100, end: 110 }),
      exec({ dispatch_id: 'd1', start: 110, end: 120 }),
      exec({ dispatch_id: 'd2', thread_id: 't2', start: 105, end: 115 }),
    ];
    const report = check(
      executions,
      executions.map((e) => rec(e.dispatch_id, 'Acked', e.instance_id)),
      ['d0', 'd1', 'd2'],
    );
    expect(report.exclusivity_violations).toBe(0);
  });

  it('ends an unfinished execution of a killed node at the kill time', () => {
    const executions = [
      exec({
        dispatch_id: 'd0',
        start: 100,
        end: null,
        node: 'node-2',
        claim_token: 'c1',
        instance_id: 'i1',
      }),
      exec({ dispatch_id: 'd0', start: 2000, claim_token: 'c2', instance_id: 'i2' }),
    ];
    const records = [rec('d0', 'Acked', 'i2')];
    expect(check(executions, records, ['d0'], { killedNodes: new Map([['node-2', 150]]) }).ok).toBe(true);
    // Killed after the second execution started: the killed node's execution overlaps it.
    expect(
      check(executions, records, ['d0'], { killedNodes: new Map([['node-2', 2500]]) }).exclusivity_violations,
    ).toBe(1);
    // A live node that never reported the end is held open until the end of the run.
    expect(check(executions, records, ['d0']).exclusivity_violations).toBe(1);
  });

  it('detects store counters disagreeing with the records', () => {
    const { executions, records } = cleanRun();
    const storeCounts = { ...countsOf(records), Acked: 2, Queued: 1 };
    const report = check(executions, records, ['d0', 'd1', 'd2'], { storeCounts });
    // Acked and Queued differ per status; the totals agree (3 = 3).
    expect(report.count_mismatches).toBe(2);
    const extra = check(executions, records, ['d0', 'd1', 'd2'], {
      storeCounts: { ...countsOf(records), Cancelled: 4 },
    });
    // Cancelled differs, and the store holds more dispatches in total than were found.
    expect(extra.count_mismatches).toBe(2);
    expect(extra.examples.count_mismatches.join('\n')).toMatch(/7 dispatches in all but 3/);
  });

  it('detects an Acked record whose instance no node reported running', () => {
    const { executions, records } = cleanRun();
    records[1] = rec('d1', 'Acked', 'i-unknown');
    const report = check(executions, records, ['d0', 'd1', 'd2']);
    expect(report.acked_without_execution).toBe(1);
    expect(report.ok).toBe(false);
  });

  it('keeps at most maxExamples examples but counts every violation', () => {
    const ids = Array.from({ length: 30 }, (_, i) => `d${i}`);
    const report = checkInvariants({
      submitted: ids,
      executions: [],
      records: ids.map((id) => [id, null] as const),
      runEnd: 1,
      maxExamples: 5,
    });
    expect(report.lost).toBe(30);
    expect(report.examples.lost).toHaveLength(5);
  });
});
