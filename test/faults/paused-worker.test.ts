/**
 * Fault 2 — a worker process is paused (SIGSTOP) past its lease, then resumed (contract.md §6.3, §5.4–§5.10).
 *
 * While it is frozen, a Mailbox in this process reclaims the dispatch and runs it to Acked. After SIGCONT the
 * stale node still holds the old claim token: every owner-side write it (or anyone) makes with that token must
 * be rejected (VersionConflict / false), the dispatch must have run elsewhere and stay Acked exactly once, and
 * the stale node's executor must be aborted (its AbortSignal reason is reported on stdout).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { StorageError } from '../../src/contract/errors.js';
import type { RunDispatch } from '../../src/contract/types.js';
import { Mailbox } from '../../src/mailbox/index.js';
import { createMailboxStore } from '../../src/redis/index.js';
import type { RedisMailboxStore } from '../../src/redis/index.js';
import { spawnNats, spawnRedis, testNamespace } from '../support/servers.js';
import type { SpawnedServer } from '../support/servers.js';
import {
  Servers,
  attempt,
  countBy,
  describeError,
  disposeStores,
  eventually,
  killAllNodes,
  recordingExecutor,
  sleep,
  startWorkerNode,
} from './support.js';
import type { ExecRecord, WorkerNode } from './support.js';

const LEASE_MS = 1500;
const THREAD = 'paused.thread>*';
const DISPATCH = 'paused-dispatch-1';
const RUN = 'paused-run-1';

const servers = new Servers();
let redis: SpawnedServer;
let nats: SpawnedServer;
let store: RedisMailboxStore;
let survivor: Mailbox | null = null;
let stale: WorkerNode | null = null;
const nodes: WorkerNode[] = [];
const survivors: Mailbox[] = [];
const namespace = testNamespace('fault-pause');

beforeAll(async () => {
  [redis, nats] = await Promise.all([
    spawnRedis().then((s) => servers.add(s)),
    spawnNats().then((s) => servers.add(s)),
  ]);
  store = await createMailboxStore({ redis: redis.url, nats: nats.url, namespace, sweepIntervalMs: 500 });
});

afterAll(async () => {
  for (const node of nodes) {
    try {
      node.kill('SIGCONT');
    } catch {
      /* gone */
    }
  }
  killAllNodes();
  await Promise.allSettled(survivors.map((m) => m.stop()));
  await disposeStores(store ? [store] : []);
  await servers.stopAll();
});

function expectRejected(outcome: Awaited<ReturnType<typeof attempt>>, what: string): void {
  if (outcome.ok) throw new Error(`${what}: expected a rejection, got ${JSON.stringify(outcome.value)}`);
  expect(outcome.error, `${what}: ${describeError(outcome.error)}`).toBeInstanceOf(StorageError);
  expect((outcome.error as StorageError).kind, `${what}: ${describeError(outcome.error)}`).toBe(
    'VersionConflict',
  );
}

describe('paused worker (SIGSTOP past its lease, then SIGCONT)', () => {
  it(
    'loses its claim: the dispatch runs elsewhere once, the stale node is rejected and aborted',
    { timeout: 60_000 },
    async () => {
      stale = await startWorkerNode({
        redis: redis.url,
        nats: nats.url,
        namespace,
        consumerId: 'paused-node',
        leaseMs: LEASE_MS,
        runMs: 0,
        maxRunMs: 60_000,
      });
      nodes.push(stale);
      stale.send({ submitBackground: { threadId: THREAD, dispatchId: DISPATCH, runId: RUN } });
      const started = await stale.waitFor(
        (e) => e.event === 'started' && e.dispatchId === DISPATCH,
        30_000,
        'start',
      );
      const staleToken = started.claimToken;
      expect(typeof staleToken).toBe('string');

      stale.kill('SIGSTOP');
      const stoppedAt = Date.now();

      const log: ExecRecord[] = [];
      const completed: RunDispatch[] = [];
      survivor = new Mailbox({
        store,
        executor: recordingExecutor('survivor', log, 50),
        consumerId: 'survivor-node',
        config: { leaseMs: LEASE_MS, sweepIntervalMs: 300 },
      });
      survivors.push(survivor);
      survivor.on('completed', (d: RunDispatch) => completed.push(d));
      await survivor.start();

      const acked = await eventually(
        async () => {
          const d = await store.loadDispatch(DISPATCH);
          return d?.status === 'Acked' ? d : null;
        },
        30_000,
        'the survivor to run the dispatch to Acked',
        200,
      );
      expect(Date.now() - stoppedAt).toBeGreaterThanOrEqual(LEASE_MS);
      expect(acked).toMatchObject({ status: 'Acked', attempt_count: 1, claim_token: null, claimed_by: null });
      expect(log.map((r) => [r.node, r.dispatchId, r.attempt, r.outcome])).toEqual([
        ['survivor', DISPATCH, 2, 'completed'],
      ]);
      expect(log[0]!.claimToken).not.toBe(staleToken);

      // The stale token is worthless now, whoever presents it.
      const now = Date.now();
      const token = staleToken as string;
      expectRejected(await attempt(() => store.ack(DISPATCH, token, now), 5000), 'ack with the stale token');
      expectRejected(
        await attempt(
          () =>
            store.recordRunResult(
              DISPATCH,
              token,
              {
                run_id: RUN,
                dispatch_instance_id: 'late-instance',
                status: 'done',
                termination: { type: 'natural_end' },
              },
              now,
            ),
          5000,
        ),
        'recordRunResult with the stale token',
      );
      expectRejected(
        await attempt(() => store.recordDispatchStart(DISPATCH, token, 'late-instance', now), 5000),
        'recordDispatchStart',
      );
      expectRejected(await attempt(() => store.nack(DISPATCH, token, now, 'late', now), 5000), 'nack');
      expectRejected(await attempt(() => store.deadLetter(DISPATCH, token, 'late', now), 5000), 'deadLetter');
      expect(await store.extendLease(DISPATCH, token, LEASE_MS, now)).toBe(false);
      expect(await store.supersedeClaimed(DISPATCH, token, now, 'late')).toBeNull();
      expect(await store.loadDispatch(DISPATCH)).toEqual(acked);

      // Wake the stale node: its lease renewal finds the claim gone and aborts the run.
      const resumedAt = Date.now();
      stale.kill('SIGCONT');
      const aborted = await stale.waitFor(
        (e) => e.event === 'aborted' && e.dispatchId === DISPATCH,
        20_000,
        'abort',
      );
      expect(aborted.reason).toBe('lease-lost');
      expect(stale.events.filter((e) => e.event === 'finished')).toEqual([]);
      // Let it settle whatever it does after the abort, then check every owner-side write it made after resuming.
      await sleep(1500);
      const lateCalls = stale.events.filter(
        (e) => e.event === 'call' && e.dispatchId === DISPATCH && e.at >= resumedAt,
      );
      for (const call of lateCalls) {
        const rejected =
          call.ok === false
            ? call.errorKind === 'VersionConflict'
            : call.result === false || call.result === null;
        expect(rejected, `late ${call.method}: ${JSON.stringify(call)}`).toBe(true);
      }
      // Its lease deadline passed while it was frozen: the Mailbox aborts the run on its own clock (fencing)
      // instead of asking Redis first, so there may be no late call at all; any it still makes is rejected.
      expect(lateCalls.filter((c) => c.method === 'extendLease' && c.result === true)).toEqual([]);

      // Still Acked exactly once, untouched by the late node; nobody runs it again.
      await sleep(2 * LEASE_MS);
      expect(await store.loadDispatch(DISPATCH)).toEqual(acked);
      expect(countBy(log, (r) => r.dispatchId).get(DISPATCH)).toBe(1);
      expect(completed.map((d) => d.dispatch_id)).toEqual([DISPATCH]);
      expect(
        stale.events.filter(
          (e) =>
            e.event === 'mailbox' && e.dispatchId === DISPATCH && e.status === 'Acked' && e.at >= resumedAt,
        ),
      ).toEqual([]);
      // Leave the stage empty for the next scenario: neither node may pick up its dispatch.
      stale.kill('SIGKILL');
      await stale.exited;
      await survivor.stop();
    },
  );

  it(
    'finishing its run right after SIGCONT: the late writes are rejected, the record stays Acked once',
    { timeout: 60_000 },
    async () => {
      const dispatchId = 'paused-dispatch-2';
      const threadId = 'paused-thread-2';
      const runId = 'paused-run-2';
      // The run is told to finish while the process is frozen (the command waits in its stdin pipe): on SIGCONT
      // it completes and the node goes for recordRunResult / ack with its stale token, racing its own overdue
      // lease renewal. Either way, every write with that token must be rejected.
      const node = await startWorkerNode({
        redis: redis.url,
        nats: nats.url,
        namespace,
        consumerId: 'paused-node-2',
        leaseMs: LEASE_MS,
        runMs: 0,
        maxRunMs: 60_000,
      });
      nodes.push(node);
      node.send({ submitBackground: { threadId, dispatchId, runId } });
      await node.waitFor((e) => e.event === 'started' && e.dispatchId === dispatchId, 30_000, 'start');
      node.kill('SIGSTOP');

      const log: ExecRecord[] = [];
      const other = new Mailbox({
        store,
        executor: recordingExecutor('survivor-2', log, 50),
        consumerId: 'survivor-node-2',
        config: { leaseMs: LEASE_MS, sweepIntervalMs: 300 },
      });
      survivors.push(other);
      await other.start();
      const acked = await eventually(
        async () => {
          const d = await store.loadDispatch(dispatchId);
          return d?.status === 'Acked' ? d : null;
        },
        30_000,
        'the survivor to run the dispatch to Acked',
        200,
      );
      await other.stop();
      node.send({ finish: dispatchId });
      await sleep(200);

      const resumedAt = Date.now();
      node.kill('SIGCONT');
      // Whichever comes first — the overdue run finishing or the renewal — the node then touches the record.
      await node.waitFor(
        (e) => (e.event === 'finished' || e.event === 'aborted') && e.dispatchId === dispatchId,
        20_000,
        'the stale run to end',
      );
      await sleep(2000);
      const lateCalls = node.events.filter(
        (e) => e.event === 'call' && e.dispatchId === dispatchId && e.at >= resumedAt,
      );
      // The run outlived its lease while frozen: the Mailbox settles it as lost and writes nothing with the
      // stale token (fencing by the local lease deadline); whatever call it still makes must be rejected.
      for (const call of lateCalls) {
        const rejected =
          call.ok === false
            ? call.errorKind === 'VersionConflict'
            : call.result === false || call.result === null;
        expect(rejected, `late ${call.method}: ${JSON.stringify(call)}`).toBe(true);
      }
      expect(await store.loadDispatch(dispatchId)).toEqual(acked);
      expect(log.map((r) => [r.dispatchId, r.attempt, r.outcome])).toEqual([[dispatchId, 2, 'completed']]);
      expect(
        node.events.filter(
          (e) => e.event === 'mailbox' && e.dispatchId === dispatchId && e.name === 'completed',
        ),
      ).toEqual([]);
    },
  );
});
