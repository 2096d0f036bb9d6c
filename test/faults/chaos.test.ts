/**
 * Multi-node chaos: three Mailbox nodes in their own processes (Redis Streams signals on a private
 * redis-server, live commands over NATS) work through a stream of dispatches on a few threads while the
 * test SIGKILLs nodes, stops them gracefully (each replaced by a fresh one), pauses every Redis client
 * (`CLIENT PAUSE 800 ALL`, longer than the nodes' command timeout), interrupts threads and cancels running
 * runs by run id from another Mailbox.
 *
 * Afterwards: no two executions of one thread overlapped (a killed node's runs end when it died), nothing
 * was lost (every dispatch reached a terminal status, none dead-lettered), and no attempt was spent except
 * by a run or claim that was on a node when it was killed (graceful stops hand runs back; lost claim replies are
 * released; Redis pauses shorter than the renewal deadline cost nothing).
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { queuedDispatch } from '../../src/contract/helpers.js';
import type { RunDispatch } from '../../src/contract/types.js';
import { isTerminal } from '../../src/contract/types.js';
import { Mailbox } from '../../src/mailbox/index.js';
import { createMailboxStore } from '../../src/redis/index.js';
import type { RedisMailboxStore } from '../../src/redis/index.js';
import { natsUrl, spawnRedis, testNamespace } from '../support/servers.js';
import type { ChaosNodeConfig } from './fixtures/chaos-node.js';
import { ROOT, Servers, disposeStores, eventually, sleep, within } from './support.js';

const FIXTURE = fileURLToPath(new URL('./fixtures/chaos-node.ts', import.meta.url));
const LEASE_MS = 4_000;
const NODE_COMMAND_TIMEOUT_MS = 500;
const PAUSE_MS = 800;
const THREADS = 8;
/** Enqueued in batches while the chaos lasts: about what the nodes get through, so work is always running. */
const BATCH = 16;
const BATCH_EVERY_MS = 700;
const MAX_ATTEMPTS = 10;
/** The chaos, in order, one step every ~700 ms while work is enqueued and running. */
const ACTIONS = [
  'cancel',
  'pause',
  'stop',
  'interrupt',
  'kill',
  'cancel',
  'pause',
  'interrupt',
  'stop',
  'kill',
];

interface Execution {
  node: string;
  dispatchId: string;
  threadId: string;
  runId: string;
  attempt: number;
  start: number;
  end: number | null;
  reason: string | null;
  killed: boolean;
}

interface Node {
  name: string;
  child: ChildProcessWithoutNullStreams;
  exited: Promise<number>;
  stderr(): string;
  lines: Record<string, unknown>[];
}

const servers = new Servers();
const children = new Set<ChildProcessWithoutNullStreams>();
let control: Redis | null = null;
let store: RedisMailboxStore | null = null;

afterAll(async () => {
  for (const child of children) child.kill('SIGKILL');
  await control?.call('CLIENT', 'UNPAUSE').catch(() => undefined);
  control?.disconnect();
  await disposeStores(store ? [store] : []);
  await servers.stopAll();
});

describe('multi-node chaos (kills, stops, Redis pauses, interrupts, cancels)', () => {
  it('no overlap, nothing lost, no attempt spent by a stop or a pause', { timeout: 180_000 }, async () => {
    const redis = servers.add(await spawnRedis());
    const nats = await natsUrl();
    const namespace = testNamespace('chaos');
    control = new Redis(redis.url, { lazyConnect: true, maxRetriesPerRequest: 1 });
    await control.connect();
    store = await createMailboxStore({
      redis: redis.url,
      nats,
      signals: 'redis-streams',
      namespace,
      commandTimeoutMs: 3_000,
    });
    // Interrupts and cancels come from a Mailbox of their own (never started: it runs nothing).
    const steering = new Mailbox({
      store,
      executor: () => Promise.reject(new Error('the steering Mailbox runs nothing')),
      consumerId: 'steering',
    });

    const executions: Execution[] = [];
    const handedBack: string[] = [];
    const stopReports: unknown[] = [];
    const counts = { kills: 0, stops: 0, pauses: 0, interrupts: 0, cancels: 0 };
    const cancelledRuns = new Set<string>();
    /** Dispatches a node held claimed when it was killed, whether or not their run had started. */
    const killedClaims = new Set<string>();
    const interruptedThreads = new Set<string>();
    let nodeSeq = 0;
    const live = new Map<string, Node>();

    const startNode = async (): Promise<Node> => {
      const name = `node-${++nodeSeq}`;
      const config: ChaosNodeConfig = {
        redis: redis.url,
        nats,
        namespace,
        consumerId: name,
        leaseMs: LEASE_MS,
        commandTimeoutMs: NODE_COMMAND_TIMEOUT_MS,
      };
      const child = spawn(process.execPath, ['--import', 'tsx', FIXTURE, JSON.stringify(config)], {
        cwd: ROOT,
        stdio: 'pipe',
      });
      children.add(child);
      let stderr = '';
      child.stderr.on('data', (d: Buffer) => {
        stderr = (stderr + d.toString()).slice(-20_000);
      });
      const exited = new Promise<number>((resolve) =>
        child.once('exit', () => {
          children.delete(child);
          resolve(Date.now());
        }),
      );
      const node: Node = { name, child, exited, stderr: () => stderr, lines: [] };
      createInterface({ input: child.stdout }).on('line', (line) => {
        let e: Record<string, unknown>;
        try {
          e = JSON.parse(line) as Record<string, unknown>;
        } catch {
          return;
        }
        node.lines.push(e);
        if (e.event === 'started') {
          executions.push({
            node: name,
            dispatchId: String(e.dispatchId),
            threadId: String(e.threadId),
            runId: String(e.runId),
            attempt: Number(e.attempt),
            start: Number(e.at),
            end: null,
            reason: null,
            killed: false,
          });
        } else if (e.event === 'ended') {
          const exec = executions.find(
            (x) => x.node === name && x.dispatchId === e.dispatchId && x.end === null,
          );
          if (exec) {
            exec.end = Number(e.at);
            exec.reason = (e.reason as string | null) ?? null;
          }
        } else if (e.event === 'handedBack') {
          handedBack.push(String(e.dispatchId));
        } else if (e.event === 'stopped') {
          stopReports.push(e.report);
        }
      });
      await eventually(
        () => node.lines.some((l) => l.event === 'ready'),
        30_000,
        `${name} ready (${stderr})`,
      );
      live.set(name, node);
      return node;
    };

    const running = (): Execution[] => executions.filter((e) => e.end === null && live.has(e.node));
    /** Runs in progress right now; waits a little for one when the nodes are between runs. */
    const inProgress = async (): Promise<Execution[]> => {
      await eventually(() => running().length > 0, 5_000, 'a run in progress', 20).catch(() => undefined);
      return running();
    };
    const pick = <T>(items: readonly T[]): T | undefined => items[Math.floor(Math.random() * items.length)];
    /** A live node, preferably one running something. */
    const victim = (): Node => {
      const busy = pick(running().map((e) => e.node));
      return live.get(busy ?? '') ?? [...live.values()][0]!;
    };

    const act = async (action: string): Promise<void> => {
      switch (action) {
        case 'pause':
          counts.pauses++;
          await control!.call('CLIENT', 'PAUSE', String(PAUSE_MS), 'ALL');
          return;
        case 'cancel': {
          const target = pick(await inProgress());
          if (!target) return;
          counts.cancels++;
          if (await steering.cancel(target.runId)) cancelledRuns.add(target.runId);
          return;
        }
        case 'interrupt': {
          const target = pick(await inProgress());
          if (!target) return;
          counts.interrupts++;
          interruptedThreads.add(target.threadId);
          await steering.interrupt(target.threadId);
          return;
        }
        case 'stop': {
          const node = victim();
          counts.stops++;
          live.delete(node.name);
          node.child.stdin.write('{"stop":true}\n');
          await within(node.exited, 15_000, `${node.name} to stop (${node.stderr()})`);
          await startNode();
          return;
        }
        case 'kill': {
          const node = victim();
          counts.kills++;
          live.delete(node.name);
          node.child.kill('SIGKILL');
          const diedAt = await node.exited;
          for (const e of executions) {
            if (e.node === node.name && e.end === null) {
              e.end = diedAt;
              e.killed = true;
            }
          }
          // A claim the node committed but had not started a run for yet (the claim's reply, or a chained
          // completion's, still on its way) dies with it too: it comes back when its lease expires, with an
          // attempt counted, and no execution shows it. The lease (LEASE_MS) outlasts this read.
          for (let t = 0; t < THREADS; t++) {
            for (const d of await store!.listDispatches(`chaos-t${t}`, ['Claimed'], 100, 0)) {
              if (d.claimed_by === node.name) killedClaims.add(d.dispatch_id);
            }
          }
          await startNode();
          return;
        }
      }
    };

    await Promise.all([startNode(), startNode(), startNode()]);

    const ids: string[] = [];
    let chaosOver = false;
    const enqueueAll = (async () => {
      do {
        for (let b = 0; b < BATCH; b++) {
          const i = ids.length;
          ids.push(`chaos-${i}`);
          await store!.enqueue(
            queuedDispatch({
              dispatch_id: `chaos-${i}`,
              thread_id: `chaos-t${i % THREADS}`,
              run_id: `chaos-run-${i}`,
              created_at: Date.now(),
              max_attempts: MAX_ATTEMPTS,
            }),
          );
        }
        await sleep(BATCH_EVERY_MS);
      } while (!chaosOver);
    })();
    for (const action of ACTIONS) {
      await sleep(700);
      await act(action);
    }
    chaosOver = true;
    await enqueueAll;

    const final = await eventually(
      async () => {
        const all = await Promise.all(ids.map((id) => store!.loadDispatch(id)));
        return all.every((d) => d !== null && isTerminal(d.status)) ? (all as RunDispatch[]) : null;
      },
      90_000,
      'every dispatch to reach a terminal status',
      500,
    );
    for (const node of [...live.values()]) {
      live.delete(node.name);
      node.child.stdin.write('{"stop":true}\n');
      await within(node.exited, 15_000, `${node.name} to stop`);
    }

    // ---- invariants ----
    let overlaps = 0;
    const byThread = new Map<string, Execution[]>();
    for (const e of executions) byThread.set(e.threadId, [...(byThread.get(e.threadId) ?? []), e]);
    for (const list of byThread.values()) {
      list.sort((a, b) => a.start - b.start);
      for (let i = 1; i < list.length; i++) {
        if (list[i]!.start < (list[i - 1]!.end ?? Number.POSITIVE_INFINITY)) overlaps++;
      }
    }
    const unfinished = executions.filter((e) => e.end === null).length;
    const lost = final.filter((d) => d.status === 'DeadLetter').map((d) => d.dispatch_id);
    const killedRuns = new Set(executions.filter((e) => e.killed).map((e) => e.dispatchId));
    const burned = final.filter(
      (d) => d.attempt_count > 0 && !killedRuns.has(d.dispatch_id) && !killedClaims.has(d.dispatch_id),
    );
    const ackedUnrun = final.filter(
      (d) => d.status === 'Acked' && !executions.some((e) => e.dispatchId === d.dispatch_id),
    );
    const reasons = new Set(executions.map((e) => e.reason).filter((r) => r !== null));
    const byStatus: Record<string, number> = {};
    for (const d of final) byStatus[d.status] = (byStatus[d.status] ?? 0) + 1;
    console.log(
      `chaos: ${ids.length} dispatches, ${executions.length} executions on ${nodeSeq} nodes; ` +
        `kills ${counts.kills}, stops ${counts.stops}, pauses ${counts.pauses}, interrupts ${counts.interrupts}, ` +
        `cancels ${counts.cancels} (${cancelledRuns.size} delivered), hand-backs ${handedBack.length}; ` +
        `final ${JSON.stringify(byStatus)}; overlaps ${overlaps}, lost ${lost.length}, ` +
        `attempts burned by restarts ${burned.length}, claims held by killed nodes ${killedClaims.size} ` +
        `(${[...killedClaims].filter((id) => !killedRuns.has(id)).length} never started), ` +
        `abort reasons ${JSON.stringify([...reasons])}`,
    );

    expect(overlaps).toBe(0);
    expect(unfinished).toBe(0);
    expect(lost).toEqual([]);
    expect(burned.map((d) => [d.dispatch_id, d.attempt_count])).toEqual([]);
    expect(ackedUnrun.map((d) => d.dispatch_id)).toEqual([]);
    // A run is only ever aborted because someone asked: no fencing abort from a pause.
    expect([...reasons].every((r) => r === 'cancel' || r === 'interrupt' || r === 'shutdown')).toBe(true);
    for (const runId of cancelledRuns) {
      const d = final.find((x) => x.run_id === runId)!;
      if (d.status === 'Acked') expect(d.termination).toEqual({ type: 'cancelled' });
    }
    expect(counts).toEqual({ kills: 2, stops: 2, pauses: 2, interrupts: 2, cancels: 2 });
    expect(stopReports.length).toBeGreaterThanOrEqual(2);
  });
});
