/** The feed's wire format: round trip, optional fields, and what decoding refuses. */
import { describe, expect, it } from 'vitest';
import { decodeBatch, encodeBatch } from '../../src/feed/index.js';
import type { LifecycleEvent } from '../../src/feed/index.js';

const base: LifecycleEvent = {
  type: 'completed',
  dispatch_id: 'd.1 ünïcode',
  thread_id: 't1',
  run_id: 'r1',
  status: 'Acked',
  attempt_count: 2,
  at: 1_764_600_000_000,
  node: 'ignored: the batch names the node',
};

describe('feed wire format', () => {
  it('round-trips events with and without error / retry_at', () => {
    const events: LifecycleEvent[] = [
      base,
      { ...base, type: 'retried', status: 'Queued', error: 'boom', retry_at: 1_764_600_001_000 },
      { ...base, type: 'deadLettered', status: 'DeadLetter', error: 'fatal' },
      { ...base, type: 'retried', status: 'Queued', retry_at: 5 },
    ];
    const decoded = decodeBatch(encodeBatch('node-7', events));
    expect(decoded).toEqual(events.map((e) => ({ ...e, node: 'node-7' })));
    expect(decodeBatch(encodeBatch(null, [base]))?.[0]?.node).toBeNull();
  });

  it('refuses anything that is not a valid batch', () => {
    for (const bad of [
      'not json',
      '{}',
      '{"v":2,"node":null,"events":[]}',
      '{"v":1,"node":null,"events":[["completed","d","t","r","Acked",0]]}',
      '{"v":1,"node":null,"events":[["exploded","d","t","r","Acked",0,1]]}',
      '{"v":1,"node":null,"events":[["completed","","t","r","Acked",0,1]]}',
      '{"v":1,"node":null,"events":[["completed","d","t","r","Lost",0,1]]}',
      '{"v":1,"node":null,"events":[["completed","d","t","r","Acked",-1,1]]}',
      '{"v":1,"node":null,"events":[["completed","d","t","r","Acked",0,1,null,2,3]]}',
    ]) {
      expect(decodeBatch(bad), bad).toBeNull();
    }
  });
});
