/**
 * Model-based test (design.md §4): random operation sequences run through the memory store (the reference
 * model) and the Redis store side by side; every return value, error and resulting record must match.
 * Claim tokens are minted independently by each store, so they are compared by order of first appearance.
 * The engine is in model-suite.ts (shared with the Redis Cluster run in test/cluster/model.test.ts).
 */
import { afterAll, beforeAll, describe, it } from 'vitest';
import { createMailboxStore } from '../../src/redis/index.js';
import { redisUrl, testNamespace } from '../support/servers.js';
import { checkModel } from './model-suite.js';

const SEQUENCES = Number(process.env.MODEL_SEQUENCES ?? 200);

describe('model: memory store vs Redis store', () => {
  let url: string;
  beforeAll(async () => {
    url = await redisUrl();
  });
  afterAll(() => {});

  it(`agrees on ${SEQUENCES} random operation sequences`, async () => {
    await checkModel(
      () =>
        createMailboxStore({
          redis: url,
          namespace: testNamespace('model'),
          signals: 'none',
        }),
      SEQUENCES,
    );
  }, 600_000);
});
