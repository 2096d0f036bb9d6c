/**
 * The JetStream stream leader SIGKILLed under load: two Mailboxes take dispatches signalled through a
 * replicas-3 signal stream on a 3-node JetStream cluster while the server leading that stream dies. The
 * sweeper is set so it never republishes during the test (republish delay 10 minutes), so every dispatch
 * must be woken by its own signal: each is Acked, none is lost, none runs twice under one claim; publishes
 * and pulls that fail while no leader exists are retried by the transport instead of being dropped.
 * Redis is the shared single server here (4 partitions).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { queuedDispatch } from '../../src/contract/helpers.js';
import { Mailbox } from '../../src/mailbox/index.js';
import type { Executor } from '../../src/mailbox/types.js';
import { createMailboxStore } from '../../src/redis/index.js';
import type { RedisMailboxStore } from '../../src/redis/store.js';
import { signalStreamName } from '../../src/signals/jetstream.js';
import { redisUrl, testNamespace } from '../support/servers.js';
import {
  clusterBinaries,
  startNatsCluster,
  waitUntil,
  type LocalNatsCluster,
  type LocalNode,
} from '../support/cluster.js';

const THREADS = 20;
const DISPATCHES = 200;
const RUN_MS = 5;

interface Line {
  level: string;
  msg: string;
}

describe.skipIf(!clusterBinaries)('JetStream stream leader lost under load', () => {
  let nats: LocalNatsCluster;

  beforeAll(async () => {
    nats = await startNatsCluster();
  }, 120_000);

  afterAll(async () => {
    await nats?.stop();
  });

  it(
    'every dispatch is woken by its own signal: none lost, none run twice, no error storm',
    { timeout: 120_000 },
    async () => {
      const namespace = testNamespace('cl-js-leader');
      const lines: Line[] = [];
      const logger = {
        warn: (msg: string) => lines.push({ level: 'warn', msg }),
        error: (msg: string) => lines.push({ level: 'error', msg }),
        info: () => undefined,
        debug: () => undefined,
      };
      const options = {
        redis: await redisUrl(),
        nats: nats.urls.join(','),
        namespace,
        partitions: 4,
        signals: 'jetstream' as const,
        jetstream: { replicas: 3 as const },
        // Only signals wake dispatches in this test: the sweeper would republish after 10 minutes.
        republishAfterMs: 600_000,
        sweepIntervalMs: 1000,
        commandTimeoutMs: 5000,
        logger,
      };
      const stores: RedisMailboxStore[] = [];
      for (let i = 0; i < 3; i++) stores.push(await createMailboxStore(options));
      const [submitter, storeA, storeB] = stores as [RedisMailboxStore, RedisMailboxStore, RedisMailboxStore];
      const executions: { dispatch: string; token: string; at: number }[] = [];
      const executor: Executor = async (ctx) => {
        executions.push({
          dispatch: ctx.dispatch.dispatch_id,
          token: ctx.dispatch.claim_token ?? '',
          at: performance.now(),
        });
        await new Promise((r) => setTimeout(r, RUN_MS));
        return { kind: 'completed', status: 'done', termination: { type: 'natural_end' } };
      };
      const config = { leaseMs: 10_000, signalFetchExpiresMs: 500, concurrency: 16, defaultMaxAttempts: 20 };
      const mailboxes = [
        new Mailbox({ store: storeA, executor, consumerId: 'node-a', config, logger }),
        new Mailbox({ store: storeB, executor, consumerId: 'node-b', config, logger }),
      ];
      await Promise.all(mailboxes.map((m) => m.start()));
      const stream = signalStreamName(namespace);
      let leader: LocalNode | null = null;
      let killedAt = Infinity;
      let newLeaderAt = Infinity;
      const submitted: string[] = [];
      try {
        const submissions = (async () => {
          for (let i = 0; i < DISPATCHES; i++) {
            const id = `js-${i}`;
            await submitter.enqueue(
              queuedDispatch({
                dispatch_id: id,
                thread_id: `js-thread-${i % THREADS}`,
                run_id: `run-${id}`,
                created_at: Date.now(),
                max_attempts: 20,
              }),
            );
            submitted.push(id);
            await new Promise((r) => setTimeout(r, 10));
          }
        })();
        const failover = (async () => {
          await waitUntil(async () => executions.length >= DISPATCHES / 4, 30_000, 'first executions');
          leader = await nats.streamLeader(stream);
          leader.signal('SIGKILL');
          killedAt = performance.now();
          const old = leader.name;
          await waitUntil(
            async () =>
              (await nats.streamLeader(stream).catch(() => null))?.name !== undefined &&
              (await nats.streamLeader(stream)).name !== old,
            30_000,
            'a new stream leader',
          );
          newLeaderAt = performance.now();
        })();
        await Promise.all([submissions, failover]);
        await waitUntil(
          async () => (await submitter.loadDispatches(submitted)).every((r) => r?.status === 'Acked'),
          60_000,
          'every dispatch Acked by a signal',
        );
      } finally {
        await Promise.allSettled(mailboxes.map((m) => m.stop()));
      }
      const records = await submitter.loadDispatches(submitted);
      expect(submitted).toHaveLength(DISPATCHES);
      expect(submitted.filter((_, i) => records[i]?.status !== 'Acked')).toEqual([]);
      const byClaim = new Map<string, number>();
      for (const e of executions)
        byClaim.set(`${e.dispatch}/${e.token}`, (byClaim.get(`${e.dispatch}/${e.token}`) ?? 0) + 1);
      expect([...byClaim].filter(([, n]) => n > 1)).toEqual([]);
      const warnings = lines.filter((l) => l.level !== 'info');
      console.info(
        `jetstream leader loss: new stream leader ${(newLeaderAt - killedAt).toFixed(0)} ms after the kill; ` +
          `${executions.filter((e) => e.at > killedAt).length} runs after the kill; ${warnings.length} warnings: ` +
          JSON.stringify([...new Set(warnings.map((w) => w.msg))]),
      );
      // One line per kind of trouble, not one per failed call.
      expect(warnings.length).toBeLessThan(40);

      await submitter.destroyNamespace();
      for (const s of stores) await s.close();
    },
  );
});
