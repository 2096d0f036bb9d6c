/**
 * The model-based test (test/model/model-suite.ts) on a namespace of 8 partitions over a 6-node Redis
 * Cluster: the model's three threads land in three different partitions, so every namespace-wide read
 * merges partitions and every dispatch-addressed call goes through the route cache or the directory.
 * Fewer sequences than the single-server run (MODEL_CLUSTER_SEQUENCES, default 100).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createMailboxStore } from '../../src/redis/index.js';
import { partitionOf } from '../../src/redis/partitions.js';
import { checkModel } from '../model/model-suite.js';
import { testNamespace } from '../support/servers.js';
import { clusterBinaries, startRedisCluster, type LocalRedisCluster } from '../support/cluster.js';

const SEQUENCES = Number(process.env.MODEL_CLUSTER_SEQUENCES ?? 100);

describe.skipIf(!clusterBinaries)('model: memory store vs Redis Cluster store (8 partitions)', () => {
  let redis: LocalRedisCluster;

  beforeAll(async () => {
    redis = await startRedisCluster();
  }, 120_000);

  afterAll(async () => {
    await redis?.stop();
  });

  it(`agrees on ${SEQUENCES} random operation sequences`, async () => {
    expect(new Set(['t0', 't1', 't.2'].map((t) => partitionOf(t, 8))).size).toBe(3);
    await checkModel(
      () =>
        createMailboxStore({
          redis: { cluster: redis.seeds },
          namespace: testNamespace('cl-model'),
          signals: 'none',
          partitions: 8,
        }),
      SEQUENCES,
    );
  }, 600_000);
});
