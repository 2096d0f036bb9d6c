import { describe, expect, it } from 'vitest';
import { simulatedExecutor } from '../../src/bench/simulated-executor.js';
import type { RunFlags } from '../../src/bench/simulated-executor.js';
import type { ExecutionOutcome } from '../../src/bench/protocol.js';
import { queuedDispatch } from '../../src/contract/helpers.js';
import type { LiveRunCommandEntry } from '../../src/contract/types.js';
import type { RunAbortedError } from '../../src/mailbox/errors.js';
import type { ExecutorContext } from '../../src/mailbox/types.js';

/** A command stream the test feeds by hand. */
function commandQueue(): {
  iterable: AsyncIterable<LiveRunCommandEntry>;
  push(entry: LiveRunCommandEntry): void;
  end(): void;
} {
  const items: LiveRunCommandEntry[] = [];
  let wake: (() => void) | null = null;
  let ended = false;
  return {
    push(entry) {
      items.push(entry);
      wake?.();
    },
    end() {
      ended = true;
      wake?.();
    },
    iterable: {
      async *[Symbol.asyncIterator]() {
        for (;;) {
          const next = items.shift();
          if (next) {
            yield next;
            continue;
          }
          if (ended) return;
          await new Promise<void>((r) => (wake = r));
          wake = null;
        }
      },
    },
  };
}

function context(signal: AbortSignal, commands: AsyncIterable<LiveRunCommandEntry>): ExecutorContext {
  return {
    dispatch: {
      ...queuedDispatch({ dispatch_id: 'd1', thread_id: 't1', run_id: 'r1', created_at: 1 }),
      status: 'Claimed',
      claim_token: 'c1',
    },
    instanceId: 'i1',
    attempt: 1,
    signal,
    get aborted() {
      return signal.aborted;
    },
    onAbort: (listener) => {
      const call = (): void => listener(signal.reason as RunAbortedError);
      if (signal.aborted) {
        call();
        return () => {};
      }
      signal.addEventListener('abort', call, { once: true });
      return () => signal.removeEventListener('abort', call);
    },
    commands,
    setWaiting: () => {},
  };
}

function recorder() {
  const events: {
    start?: { at: number; flags: RunFlags };
    end?: { at: number; outcome: ExecutionOutcome };
    live: number;
  } = { live: 0 };
  return {
    events,
    hooks: {
      onStart: (_ctx: ExecutorContext, at: number, flags: RunFlags) => (events.start = { at, flags }),
      onEnd: (_ctx: ExecutorContext, at: number, outcome: ExecutionOutcome) => (events.end = { at, outcome }),
      onLiveCommand: () => (events.live += 1),
    },
  };
}

describe('simulated executor', () => {
  it('runs for the drawn time and completes', async () => {
    const { events, hooks } = recorder();
    const exec = simulatedExecutor({ runMs: { kind: 'fixed', ms: 20 }, failRate: 0, ...hooks });
    const q = commandQueue();
    const outcome = await exec(context(new AbortController().signal, q.iterable));
    q.end();
    expect(outcome).toMatchObject({
      kind: 'completed',
      status: 'done',
      termination: { type: 'natural_end' },
    });
    expect(events.start?.flags).toEqual({ steer: false, hold: false });
    expect(events.end!.outcome).toBe('completed');
    expect(events.end!.at - events.start!.at).toBeGreaterThanOrEqual(15);
  });

  it('fails transiently with the fail rate', async () => {
    const { events, hooks } = recorder();
    const exec = simulatedExecutor({ runMs: { kind: 'fixed', ms: 0 }, failRate: 1, ...hooks });
    expect(await exec(context(new AbortController().signal, commandQueue().iterable))).toEqual({
      kind: 'retry',
      error: 'simulated transient failure',
    });
    expect(events.end!.outcome).toBe('retry');
  });

  it('a held run lasts until aborted, then ends as cancelled', async () => {
    const { events, hooks } = recorder();
    const exec = simulatedExecutor({
      runMs: { kind: 'fixed', ms: 0 },
      failRate: 1,
      interruptRate: 1,
      holdCapMs: 60_000,
      ...hooks,
    });
    const abort = new AbortController();
    const running = exec(context(abort.signal, commandQueue().iterable));
    await new Promise((r) => setTimeout(r, 30));
    expect(events.end).toBeUndefined();
    abort.abort('interrupt');
    expect(await running).toMatchObject({ kind: 'completed', termination: { type: 'cancelled' } });
    expect(events.start!.flags).toEqual({ steer: false, hold: true });
    expect(events.end!.outcome).toBe('aborted');
  });

  it('a steered run waits for a live command, acks it, and then finishes', async () => {
    const { events, hooks } = recorder();
    const exec = simulatedExecutor({
      runMs: { kind: 'fixed', ms: 0 },
      failRate: 0,
      liveRate: 1,
      steerCapMs: 60_000,
      ...hooks,
    });
    const q = commandQueue();
    const running = exec(context(new AbortController().signal, q.iterable));
    await new Promise((r) => setTimeout(r, 30));
    expect(events.end).toBeUndefined();
    let acked = 0;
    q.push({ command: 'PendingBoundaryWake', receipt: { ack: async () => void (acked += 1) } });
    expect(await running).toMatchObject({ kind: 'completed' });
    expect(acked).toBe(1);
    expect(events.live).toBe(1);
    expect(events.start!.flags).toEqual({ steer: true, hold: false });
    q.end();
  });

  it('a steered run that hears nothing finishes at its cap', async () => {
    const { events, hooks } = recorder();
    const exec = simulatedExecutor({
      runMs: { kind: 'fixed', ms: 0 },
      failRate: 0,
      liveRate: 1,
      steerCapMs: 30,
      ...hooks,
    });
    const q = commandQueue();
    expect(await exec(context(new AbortController().signal, q.iterable))).toMatchObject({
      kind: 'completed',
    });
    expect(events.end!.at - events.start!.at).toBeGreaterThanOrEqual(25);
    q.end();
  });

  it('rejects rates outside 0..1', () => {
    const { hooks } = recorder();
    expect(() => simulatedExecutor({ runMs: { kind: 'fixed', ms: 0 }, failRate: 1.5, ...hooks })).toThrow(
      /failRate/,
    );
    expect(() =>
      simulatedExecutor({ runMs: { kind: 'fixed', ms: 0 }, failRate: 0, liveRate: -1, ...hooks }),
    ).toThrow(/liveRate/);
  });
});
