/**
 * A Redis Cluster master SIGKILLed under load, with `durability: 'replicated'`: two Mailboxes run a stream of
 * dispatches over 8 partitions (Redis Streams signals) while the master of the busiest partitions dies. Its
 * replica takes over (its writes were all confirmed by that replica), the killed node is restarted and
 * rejoins as the new master's replica, and the run finishes with
 *   - 0 lost (every submitted dispatch ends Acked),
 *   - 0 duplicated (no claim token executed twice),
 *   - 0 overlapping (no two executions of one thread at the same time),
 * and dispatches of the failed-over partitions completing after the takeover.
 *
 * Submissions that fail with `Io` ("may have happened") are retried; `AlreadyExists(<id>)` then means the
 * first attempt did happen.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { StorageError } from '../../src/contract/errors.js';
import { queuedDispatch } from '../../src/contract/helpers.js';
import { Mailbox } from '../../src/mailbox/index.js';
import type { Executor } from '../../src/mailbox/types.js';
import { keySlot } from '../../src/redis/cluster.js';
import { createMailboxStore } from '../../src/redis/index.js';
import type { PartitionedRedisMailboxStore } from '../../src/redis/partitioned-store.js';
import { testNamespace } from '../support/servers.js';
import {
  clusterBinaries,
  startRedisCluster,
  waitUntil,
  type LocalNode,
  type LocalRedisCluster,
} from '../support/cluster.js';

const PARTITIONS = 8;
const THREADS = 32;
const DISPATCHES = 240;
const RUN_MS = 10;

interface Execution {
  dispatch: string;
  thread: string;
  token: string;
  start: number;
  end: number | null;
}

describe.skipIf(!clusterBinaries)('Redis Cluster master failover under load', () => {
  let redis: LocalRedisCluster;

  beforeAll(async () => {
    redis = await startRedisCluster();
  }, 120_000);

  afterAll(async () => {
    await redis?.stop();
  });

  it(
    "durability 'replicated': 0 lost, 0 duplicated, 0 overlapping, work continues after the replica takes over",
    { timeout: 120_000 },
    async () => {
      const namespace = testNamespace('cl-failover');
      const options = {
        redis: { cluster: redis.seeds },
        namespace,
        partitions: PARTITIONS,
        signals: 'redis-streams' as const,
        durability: 'replicated' as const,
        commandTimeoutMs: 5000,
        sweepIntervalMs: 250,
        republishAfterMs: 1000,
      };
      const stores = (await Promise.all([
        createMailboxStore(options),
        createMailboxStore(options),
        createMailboxStore(options),
      ])) as PartitionedRedisMailboxStore[];
      const [submitter, storeA, storeB] = stores as [
        PartitionedRedisMailboxStore,
        PartitionedRedisMailboxStore,
        PartitionedRedisMailboxStore,
      ];
      const executions: Execution[] = [];
      const executor: Executor = async (ctx) => {
        const e: Execution = {
          dispatch: ctx.dispatch.dispatch_id,
          thread: ctx.dispatch.thread_id,
          token: ctx.dispatch.claim_token ?? '',
          start: performance.now(),
          end: null,
        };
        executions.push(e);
        await new Promise((r) => setTimeout(r, RUN_MS));
        e.end = performance.now();
        return { kind: 'completed', status: 'done', termination: { type: 'natural_end' } };
      };
      const config = {
        leaseMs: 8000,
        leaseRenewalIntervalMs: 1000,
        sweepIntervalMs: 500,
        defaultMaxAttempts: 20,
        signalFetchExpiresMs: 200,
        concurrency: 16,
      };
      const mailboxes = [
        new Mailbox({ store: storeA, executor, consumerId: 'node-a', config }),
        new Mailbox({ store: storeB, executor, consumerId: 'node-b', config }),
      ];
      await Promise.all(mailboxes.map((m) => m.start()));

      // The master serving the most partitions dies.
      const owners = new Map<number, number[]>();
      for (let p = 0; p < PARTITIONS; p++) {
        const port = (await redis.masterOfSlot(keySlot(submitter.partitionKeyList[p]!.prefix))).port;
        owners.set(port, [...(owners.get(port) ?? []), p]);
      }
      const [victimPort, victimPartitions] = [...owners].sort((a, b) => b[1].length - a[1].length)[0]!;
      const victim = redis.nodes.find((n) => n.port === victimPort) as LocalNode;
      let killedAt = Infinity;
      let retriedSubmissions = 0;

      const submitted: string[] = [];
      const submit = async (i: number): Promise<void> => {
        const id = `fo-${i}`;
        const d = queuedDispatch({
          dispatch_id: id,
          thread_id: `fo-thread-${i % THREADS}`,
          run_id: `run-${id}`,
          created_at: Date.now(),
          max_attempts: 20,
        });
        for (;;) {
          try {
            await submitter.enqueue(d);
            break;
          } catch (err) {
            if (err instanceof StorageError && err.kind === 'AlreadyExists' && err.detail === id) break;
            if (!(err instanceof StorageError) || err.kind !== 'Io') throw err;
            retriedSubmissions++;
            await new Promise((r) => setTimeout(r, 100));
          }
        }
        submitted.push(id);
      };

      let promotedAt = Infinity;
      let healthyAt = Infinity;
      const failover = async (): Promise<void> => {
        await waitUntil(async () => executions.length >= DISPATCHES / 4, 30_000, 'first executions');
        victim.signal('SIGKILL');
        killedAt = performance.now();
        // Its replica takes over; then the killed node comes back as the new master's replica.
        const slot = keySlot(submitter.partitionKeyList[victimPartitions[0]!]!.prefix);
        await waitUntil(
          async () => (await redis.masterOfSlot(slot)).port !== victimPort,
          30_000,
          'replica promoted',
        );
        promotedAt = performance.now();
        await victim.restart();
        await redis.waitHealthy(30_000);
        healthyAt = performance.now();
      };
      try {
        // Submissions keep coming (one every 5 ms) while the master dies and its replica takes over.
        const submissions = (async () => {
          for (let i = 0; i < DISPATCHES; i++) {
            await submit(i);
            await new Promise((r) => setTimeout(r, 5));
          }
        })();
        await Promise.all([submissions, failover()]);
        await waitUntil(
          async () => {
            const records = await submitter.loadDispatches(submitted);
            return records.every((r) => r?.status === 'Acked');
          },
          60_000,
          'every dispatch Acked',
        );
      } finally {
        await Promise.allSettled(mailboxes.map((m) => m.stop()));
      }

      const records = await submitter.loadDispatches(submitted);
      const lost = submitted.filter((_, i) => records[i]?.status !== 'Acked');
      const byToken = new Map<string, number>();
      for (const e of executions)
        byToken.set(`${e.dispatch}/${e.token}`, (byToken.get(`${e.dispatch}/${e.token}`) ?? 0) + 1);
      const duplicated = [...byToken].filter(([, n]) => n > 1);
      const overlapping: string[] = [];
      const byThread = new Map<string, Execution[]>();
      for (const e of executions) byThread.set(e.thread, [...(byThread.get(e.thread) ?? []), e]);
      for (const [thread, list] of byThread) {
        list.sort((a, b) => a.start - b.start);
        for (let i = 1; i < list.length; i++) {
          const prev = list[i - 1]!;
          if ((prev.end ?? Infinity) > list[i]!.start)
            overlapping.push(`${thread}: ${prev.dispatch} / ${list[i]!.dispatch}`);
        }
      }
      const afterTakeover = executions.filter(
        (e) => e.start > killedAt && victimPartitions.includes(submitter.partitionOfThread(e.thread)),
      );
      expect(submitted).toHaveLength(DISPATCHES);
      expect(lost).toEqual([]);
      expect(duplicated).toEqual([]);
      expect(overlapping).toEqual([]);
      expect(afterTakeover.length, 'executions on the failed-over partitions after the kill').toBeGreaterThan(
        0,
      );
      expect(killedAt).toBeLessThan(Infinity);
      const firstAfter = Math.min(...afterTakeover.map((e) => e.start));
      console.info(
        `redis failover: replica promoted ${(promotedAt - killedAt).toFixed(0)} ms after the kill, ` +
          `first run on its partitions ${(firstAfter - killedAt).toFixed(0)} ms after, ` +
          `cluster healthy again (old master back as replica) after ${(healthyAt - killedAt).toFixed(0)} ms; ` +
          `${retriedSubmissions} submissions retried after Io; ${executions.length} executions for ${DISPATCHES} dispatches`,
      );

      for (const s of stores) await s.close().catch(() => undefined);
      const cleanup = (await createMailboxStore(options)) as PartitionedRedisMailboxStore;
      await cleanup.destroyNamespace();
      await cleanup.close();
    },
  );
});
