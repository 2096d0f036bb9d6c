/**
 * Fault 1 — a worker process dies holding claims (design.md §4, contract.md §6.3, §13 J).
 *
 * A Mailbox node in a child process (short lease, slow executor) claims the first dispatch of four threads and
 * has a second one queued behind each; it is SIGKILLed mid-run. A Mailbox in this process must take over once
 * the leases expire: every dispatch ends Acked, none is lost, none is completed twice, and the dead node never
 * wrote a terminal transition.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunDispatch } from '../../src/contract/types.js';
import { Mailbox } from '../../src/mailbox/index.js';
import { createMailboxStore } from '../../src/redis/index.js';
import type { RedisMailboxStore } from '../../src/redis/index.js';
import { spawnNats, spawnRedis, testNamespace } from '../support/servers.js';
import type { SpawnedServer } from '../support/servers.js';
import {
  Servers,
  countBy,
  disposeStores,
  eventually,
  killAllNodes,
  loadAll,
  recordingExecutor,
  sleep,
  startWorkerNode,
} from './support.js';
import type { ExecRecord } from './support.js';

const LEASE_MS = 1500;
const THREADS = ['crash-t0', 'crash-t1', 'crash.t2*', 'crash>t3'];
const FIRST = THREADS.map((t) => `${t}/first`);
const SECOND = THREADS.map((t) => `${t}/second`);
const ALL = [...FIRST, ...SECOND];

const servers = new Servers();
let redis: SpawnedServer;
let nats: SpawnedServer;
const stores: RedisMailboxStore[] = [];
const survivors: Mailbox[] = [];

beforeAll(async () => {
  [redis, nats] = await Promise.all([
    spawnRedis().then((s) => servers.add(s)),
    spawnNats().then((s) => servers.add(s)),
  ]);
});

afterAll(async () => {
  killAllNodes();
  await Promise.allSettled(survivors.map((m) => m.stop()));
  await disposeStores(stores);
  await servers.stopAll();
});

describe.each(['jetstream', 'redis-streams'] as const)(
  'worker crash (SIGKILL) while holding claims, %s signals',
  (signals) => {
    it(
      'a surviving Mailbox finishes every dispatch once after the leases expire',
      { timeout: 60_000 },
      async () => {
        const namespace = testNamespace(`fault-crash-${signals}`);
        const nc = signals === 'jetstream' ? { nats: nats.url } : {};
        const store = await createMailboxStore({
          redis: redis.url,
          ...nc,
          signals,
          namespace,
          sweepIntervalMs: 500,
        });
        stores.push(store);
        const doomed = await startWorkerNode({
          redis: redis.url,
          ...nc,
          signals,
          namespace,
          consumerId: 'doomed-node',
          leaseMs: LEASE_MS,
          runMs: 0,
          maxRunMs: 120_000,
        });
        THREADS.forEach((threadId, i) => {
          doomed.send({ submitBackground: { threadId, dispatchId: FIRST[i], runId: `run-${FIRST[i]}` } });
        });
        // The first dispatch of every thread runs on the doomed node...
        const started = await doomed.waitForCount(
          (e) => e.event === 'started',
          FIRST.length,
          30_000,
          'four starts',
        );
        expect(new Set(started.map((e) => e.dispatchId))).toEqual(new Set(FIRST));
        // ...and a second one waits behind it.
        THREADS.forEach((threadId, i) => {
          doomed.send({ submitBackground: { threadId, dispatchId: SECOND[i], runId: `run-${SECOND[i]}` } });
        });
        await doomed.waitForCount((e) => e.event === 'submitted', ALL.length, 20_000, 'eight submits');

        const before = await loadAll(store, ALL);
        for (const id of FIRST) {
          expect(before.get(id)).toMatchObject({
            status: 'Claimed',
            claimed_by: 'doomed-node',
            attempt_count: 0,
          });
        }
        for (const id of SECOND) expect(before.get(id)).toMatchObject({ status: 'Queued' });

        doomed.kill('SIGKILL');
        await doomed.exited;
        const killedAt = Date.now();

        const log: ExecRecord[] = [];
        const completedEvents: RunDispatch[] = [];
        const survivor = new Mailbox({
          store,
          executor: recordingExecutor('survivor', log, 30),
          consumerId: 'survivor-node',
          config: { leaseMs: LEASE_MS, sweepIntervalMs: 300 },
        });
        survivors.push(survivor);
        survivor.on('completed', (d: RunDispatch) => completedEvents.push(d));
        await survivor.start();

        const after = await eventually(
          async () => {
            const records = await loadAll(store, ALL);
            return [...records.values()].every((d) => d?.status === 'Acked') ? records : null;
          },
          40_000,
          'every dispatch Acked by the survivor',
          200,
        );
        // Give stray duplicates (a second reclaim, a late signal) a chance to show up before counting.
        await sleep(2 * LEASE_MS);

        const doomedFinished = doomed.events.filter((e) => e.event === 'finished');
        expect(doomedFinished).toEqual([]);
        const doomedTerminalWrites = doomed.events.filter(
          (e) =>
            e.event === 'call' && e.ok === true && ['ack', 'nack', 'deadLetter'].includes(e.method ?? ''),
        );
        expect(doomedTerminalWrites).toEqual([]);

        const runs = countBy(log, (r) => r.dispatchId);
        const completions = countBy(
          log.filter((r) => r.outcome === 'completed'),
          (r) => r.dispatchId,
        );
        const acks = countBy(completedEvents, (d) => d.dispatch_id);
        for (const id of ALL) {
          expect({ id, runs: runs.get(id) ?? 0 }).toEqual({ id, runs: 1 });
          expect({ id, completions: completions.get(id) ?? 0 }).toEqual({ id, completions: 1 });
          expect({ id, acks: acks.get(id) ?? 0 }).toEqual({ id, acks: 1 });
        }
        // The first wave was re-run after its lease expired (attempt 2); the queued ones ran first time.
        for (const id of FIRST) {
          const rec = log.find((r) => r.dispatchId === id)!;
          expect(rec.attempt).toBe(2);
          expect(rec.startedAt).toBeGreaterThanOrEqual(killedAt);
          expect(after.get(id)).toMatchObject({ status: 'Acked', attempt_count: 1, claim_token: null });
        }
        for (const id of SECOND) {
          expect(log.find((r) => r.dispatchId === id)!.attempt).toBe(1);
          expect(after.get(id)).toMatchObject({ status: 'Acked', attempt_count: 0 });
        }
        // One run at a time per thread on the survivor: the second dispatch of a thread starts after the first ended.
        for (let i = 0; i < THREADS.length; i++) {
          const a = log.find((r) => r.dispatchId === FIRST[i])!;
          const b = log.find((r) => r.dispatchId === SECOND[i])!;
          expect(b.startedAt).toBeGreaterThanOrEqual(a.endedAt!);
        }
        expect(await store.countDispatchesByStatus('Claimed')).toBe(0);
        expect(await store.countDispatchesByStatus('Queued')).toBe(0);
        await survivor.stop();
      },
    );
  },
);
