/**
 * The model-based test (test/model/model-suite.ts) on a namespace of 4 partitions on one Redis server: the
 * model's threads spread over partitions, so namespace-wide reads merge and dispatch-addressed calls route
 * (MODEL_SEQUENCES, default 200, as the single-partition run).
 */
import { describe, it } from 'vitest';
import { createMailboxStore } from '../../src/redis/index.js';
import { checkModel } from '../model/model-suite.js';
import { redisUrl, testNamespace } from '../support/servers.js';

const SEQUENCES = Number(process.env.MODEL_SEQUENCES ?? 200);

describe('model: memory store vs Redis store with 4 partitions', () => {
  it(`agrees on ${SEQUENCES} random operation sequences`, async () => {
    const url = await redisUrl();
    await checkModel(
      () =>
        createMailboxStore({
          redis: url,
          namespace: testNamespace('part-model'),
          signals: 'none',
          partitions: 4,
        }),
      SEQUENCES,
    );
  }, 600_000);
});
