/**
 * The executor every bench node plugs into its Mailbox: it "runs" for a `--run-ms` distributed time, fails with
 * probability `--fail-rate` (a transient failure the Mailbox retries), stops early when its AbortSignal fires
 * (interrupt, cancel, lost lease; `ctx.onAbort`), and acks every live command addressed to its run.
 *
 * Two kinds of runs exist so that steering is measured on runs that are really running (a 2 ms run would mostly be
 * over before a command reaches it):
 *   - with probability `liveRate` a run is *steered*: after its work it waits (up to `steerCapMs`) for a live
 *     command; the coordinator sends one to every steered run it hears about;
 *   - with probability `interruptRate` a run is *held*: it runs until aborted (up to `holdCapMs`); the coordinator
 *     interrupts its thread and measures how long the release takes.
 */
import type { Executor, ExecutorContext, ExecutorOutcome } from '../mailbox/types.js';
import type { ExecutionOutcome } from './protocol.js';
import { preciseNow } from './protocol.js';
import { sampleRunMs } from './run-ms.js';
import type { RandomSource, RunMsDistribution } from './run-ms.js';

export interface RunFlags {
  /** The run waits for a live command. */
  steer: boolean;
  /** The run lasts until it is aborted. */
  hold: boolean;
}

export interface SimulatedExecutorOptions {
  runMs: RunMsDistribution;
  failRate: number;
  liveRate?: number;
  interruptRate?: number;
  steerCapMs?: number;
  holdCapMs?: number;
  random?: RandomSource;
  /** Called once per execution, before any simulated work. */
  onStart(ctx: ExecutorContext, at: number, flags: RunFlags): void;
  /** Called once per execution, right before the outcome goes back to the Mailbox. */
  onEnd(ctx: ExecutorContext, at: number, outcome: ExecutionOutcome): void;
  /** Called after the executor acked a live command. */
  onLiveCommand?(ctx: ExecutorContext): void;
}

export const DEFAULT_STEER_CAP_MS = 2000;
export const DEFAULT_HOLD_CAP_MS = 5000;

/**
 * Resolves after `ms`, or early (without throwing) when the run is aborted or `until` settles. A plain timer
 * and the context's `onAbort`: an AbortSignal listener needs the run's AbortController, which on Node 20
 * costs several microseconds per run to create (and an abortable sleep a DOMException per finished run).
 */
function work(ms: number, ctx: ExecutorContext, until?: Promise<void>): Promise<void> {
  if (ms <= 0 || ctx.aborted) return Promise.resolve();
  return new Promise<void>((resolve) => {
    const finish = (): void => {
      clearTimeout(timer);
      stopListening();
      resolve();
    };
    const timer = setTimeout(finish, ms);
    const stopListening = ctx.onAbort(finish);
    void until?.then(finish);
  });
}

/** Ack live commands until the run ends; the Mailbox closes the stream when the run is over. */
async function acceptCommands(
  ctx: ExecutorContext,
  done: { value: boolean },
  onAck: () => void,
): Promise<void> {
  try {
    for await (const entry of ctx.commands) {
      if (done.value) break; // the run is over: an un-acked command reads as not delivered, which is the truth
      await entry.receipt.ack();
      onAck();
    }
  } catch {
    // A closed or failed command stream ends acceptance, never the run.
  }
}

function checkRate(name: string, v: number): void {
  if (!(v >= 0 && v <= 1)) throw new RangeError(`${name} must be within 0..1`);
}

export function simulatedExecutor(opts: SimulatedExecutorOptions): Executor {
  const random = opts.random ?? Math.random;
  const liveRate = opts.liveRate ?? 0;
  const interruptRate = opts.interruptRate ?? 0;
  checkRate('failRate', opts.failRate);
  checkRate('liveRate', liveRate);
  checkRate('interruptRate', interruptRate);
  const steerCapMs = opts.steerCapMs ?? DEFAULT_STEER_CAP_MS;
  const holdCapMs = opts.holdCapMs ?? DEFAULT_HOLD_CAP_MS;

  return async (ctx): Promise<ExecutorOutcome> => {
    const steer = liveRate > 0 && random() < liveRate;
    const hold = !steer && interruptRate > 0 && random() < interruptRate;
    opts.onStart(ctx, preciseNow(), { steer, hold });
    const done = { value: false };
    let commandSeen!: () => void;
    const firstCommand = new Promise<void>((resolve) => (commandSeen = resolve));
    void acceptCommands(ctx, done, () => {
      commandSeen();
      opts.onLiveCommand?.(ctx);
    });
    let outcome: ExecutionOutcome = 'completed';
    try {
      if (hold) {
        await work(holdCapMs, ctx);
      } else {
        await work(sampleRunMs(opts.runMs, random), ctx);
        if (steer) await work(steerCapMs, ctx, firstCommand);
      }
      if (ctx.aborted) {
        outcome = 'aborted';
        return { kind: 'completed', status: 'done', termination: { type: 'cancelled' } };
      }
      if (opts.failRate > 0 && random() < opts.failRate) {
        outcome = 'retry';
        return { kind: 'retry', error: 'simulated transient failure' };
      }
      return { kind: 'completed', status: 'done', termination: { type: 'natural_end' }, response: 'ok' };
    } finally {
      done.value = true;
      opts.onEnd(ctx, preciseNow(), outcome);
    }
  };
}
