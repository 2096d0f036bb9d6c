import { v7 as uuidv7 } from 'uuid';
import { describe, expect, it } from 'vitest';
import { ExecutionLog } from '../../src/bench/execution-log.js';
import { InvariantChecker } from '../../src/bench/invariants.js';

describe('execution log', () => {
  it('stores rows compactly and gives them back exactly', () => {
    const log = new ExecutionLog();
    const claim = uuidv7();
    const instance = uuidv7();
    const row = log.start({
      dispatch_id: 'd7',
      thread_id: 't3',
      claim_token: claim,
      instance_id: instance,
      node: 'node-2',
      start: 1234.5,
    });
    expect(log.entry(row)).toEqual({
      dispatch_id: 'd7',
      thread_id: 't3',
      claim_token: claim,
      instance_id: instance,
      node: 'node-2',
      start: 1234.5,
      end: null,
    });
    expect(log.openCount).toBe(1);
    expect(log.openOn('node-2')).toBe(1);
    expect(log.openOn('node-1')).toBe(0);
    expect(log.end('d7', claim, 1240.25)).toBe(true);
    expect(log.end('d7', claim, 1300)).toBe(false); // already ended
    expect(log.entry(row).end).toBe(1240.25);
    expect(log.openCount).toBe(0);
  });

  it('keeps ids and tokens that are not bench ids or lowercase UUIDs as they are', () => {
    const log = new ExecutionLog();
    const upper = uuidv7().toUpperCase();
    const odd = ['job:42', 'd007', 'd-1', ''];
    odd.forEach((id, i) =>
      log.start({
        dispatch_id: id,
        thread_id: 'x y',
        claim_token: upper,
        instance_id: `bullmq:${i}`,
        node: 'n',
        start: i,
      }),
    );
    odd.forEach((id, i) => {
      expect(log.entry(i)).toMatchObject({
        dispatch_id: id,
        claim_token: upper,
        instance_id: `bullmq:${i}`,
        thread_id: 'x y',
      });
    });
  });

  it('grows past its initial capacity and finds duplicates and instances', () => {
    const log = new ExecutionLog();
    const n = 5000;
    const claims = Array.from({ length: n }, () => uuidv7());
    const instances = Array.from({ length: n }, () => uuidv7());
    for (let i = 0; i < n; i += 1) {
      log.start({
        dispatch_id: `d${i}`,
        thread_id: `t${i % 7}`,
        claim_token: claims[i]!,
        instance_id: instances[i]!,
        node: 'node-1',
        start: i,
      });
    }
    // The same claim executed again (and once more) for d42.
    log.start({
      dispatch_id: 'd42',
      thread_id: 't0',
      claim_token: claims[42]!,
      instance_id: uuidv7(),
      node: 'node-2',
      start: n,
    });
    log.start({
      dispatch_id: 'd42',
      thread_id: 't0',
      claim_token: claims[42]!,
      instance_id: uuidv7(),
      node: 'node-2',
      start: n + 1,
    });
    // Same dispatch, different claim: a legitimate retry.
    log.start({
      dispatch_id: 'd43',
      thread_id: 't1',
      claim_token: uuidv7(),
      instance_id: uuidv7(),
      node: 'node-2',
      start: n + 2,
    });
    expect(log.size).toBe(n + 3);
    const groups = [...log.duplicateClaims()];
    expect(groups).toHaveLength(1);
    expect(groups[0]!.map((r) => log.entry(r).dispatch_id)).toEqual(['d42', 'd42', 'd42']);
    expect(log.hasInstance('d100', instances[100]!)).toBe(true);
    expect(log.hasInstance('d100', instances[101]!)).toBe(false);
    expect(log.hasInstance('d99999', instances[100]!)).toBe(false);
    expect(log.hasInstance('unknown', instances[100]!)).toBe(false);
    // Sealed once the record check began.
    expect(() =>
      log.start({
        dispatch_id: 'd1',
        thread_id: 't',
        claim_token: 'c',
        instance_id: 'i',
        node: 'n',
        start: 0,
      }),
    ).toThrow(/sealed/);
    // ~60 bytes per execution in the columns.
    expect(log.footprint / log.size).toBeLessThan(150);
  });

  it('feeds the checker: duplicates count once per extra execution, overlaps use kill times', () => {
    const log = new ExecutionLog();
    const c = uuidv7();
    const i1 = uuidv7();
    log.start({
      dispatch_id: 'd0',
      thread_id: 't',
      claim_token: c,
      instance_id: i1,
      node: 'node-1',
      start: 10,
      end: 20,
    });
    log.start({
      dispatch_id: 'd0',
      thread_id: 't',
      claim_token: c,
      instance_id: uuidv7(),
      node: 'node-2',
      start: 30,
      end: 40,
    });
    log.start({
      dispatch_id: 'd0',
      thread_id: 't',
      claim_token: c,
      instance_id: uuidv7(),
      node: 'node-2',
      start: 50,
      end: 60,
    });
    log.start({
      dispatch_id: 'd1',
      thread_id: 't',
      claim_token: uuidv7(),
      instance_id: uuidv7(),
      node: 'node-3',
      start: 65,
    });
    log.start({
      dispatch_id: 'd2',
      thread_id: 't',
      claim_token: uuidv7(),
      instance_id: uuidv7(),
      node: 'node-1',
      start: 70,
      end: 80,
    });
    const checker = new InvariantChecker(log, 1000, new Map([['node-3', 68]]));
    checker.addRecord('d0', { dispatch_id: 'd0', status: 'Acked', dispatch_instance_id: i1 });
    const report = checker.finish();
    expect(report.duplicated_runs).toBe(2);
    expect(report.exclusivity_violations).toBe(0); // node-3's open execution ended at its kill (68 < 70)
    expect(report.acked_without_execution).toBe(0);
    expect(report.examples.duplicated_runs[0]).toMatch(/executed 3× under claim/);
  });
});
