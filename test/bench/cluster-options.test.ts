/** `bench --partitions / --redis-cluster / --local-cluster / --durability / --jetstream-replicas` parsing. */
import { describe, expect, it } from 'vitest';
import { StorageError } from '../../src/contract/errors.js';
import { parseBenchOptions } from '../../src/bench/options.js';
import { clusterStoreOptions } from '../../src/bench/run.js';

describe('bench cluster options', () => {
  it('defaults: one partition, no cluster, async, one JetStream replica', () => {
    const o = parseBenchOptions({}, {});
    expect([o.partitions, o.redisCluster, o.localCluster, o.durability, o.jetstreamReplicas]).toEqual([
      1,
      null,
      false,
      'async',
      1,
    ]);
    expect(clusterStoreOptions(o)).toEqual({});
  });

  it('--redis-cluster seeds replace --redis (the first seed is what is probed) and reach the store options', () => {
    const o = parseBenchOptions(
      { redisCluster: 'redis://127.0.0.1:7000, 127.0.0.1:7001', partitions: '8', durability: 'replicated' },
      {},
    );
    expect(o.redisCluster).toEqual(['redis://127.0.0.1:7000', '127.0.0.1:7001']);
    expect(o.redis).toBe('redis://127.0.0.1:7000');
    expect(o.backend).toBe('redis');
    expect(clusterStoreOptions(o)).toEqual({
      partitions: 8,
      redisCluster: ['redis://127.0.0.1:7000', '127.0.0.1:7001'],
      durability: 'replicated',
    });
  });

  it('--local-cluster gives the JetStream stream 3 replicas unless told otherwise', () => {
    expect(parseBenchOptions({ localCluster: true }, {}).jetstreamReplicas).toBe(3);
    expect(parseBenchOptions({ localCluster: true, jetstreamReplicas: '1' }, {}).jetstreamReplicas).toBe(1);
  });

  it('rejects what cannot work, naming the option', () => {
    for (const [raw, option] of [
      [{ partitions: '0' }, '--partitions'],
      [{ partitions: '2000' }, '--partitions'],
      [{ durability: 'sync' }, '--durability'],
      [{ jetstreamReplicas: '2' }, '--jetstream-replicas'],
      [{ redisCluster: 'http://x' }, '--redis-cluster'],
      [{ redisCluster: ' , ' }, '--redis-cluster'],
      [{ redisCluster: '127.0.0.1:7000', localCluster: true }, '--local-cluster'],
      [{ redisCluster: '127.0.0.1:7000', redis: 'redis://x:1' }, '--redis-cluster'],
      [{ localCluster: true, backend: 'memory' }, '--local-cluster'],
      [{ redisCluster: '127.0.0.1:7000', baseline: 'bullmq' }, '--baseline'],
    ] as const) {
      let err: unknown = null;
      try {
        parseBenchOptions(raw, {});
      } catch (e) {
        err = e;
      }
      expect(err, JSON.stringify(raw)).toBeInstanceOf(StorageError);
      expect((err as StorageError).message, JSON.stringify(raw)).toContain(option);
    }
  });
});
