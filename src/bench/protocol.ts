/**
 * The line protocol between the bench coordinator and its node processes.
 *
 * Node → coordinator: one JSON object per line on stdout. stdout is a pipe, and pipe writes are synchronous on
 * Linux, so a line written before a SIGKILL is not lost: the execution log of a killed node stays complete up to
 * the kill.
 * Coordinator → node: one JSON object per line on stdin: `stop`, or `cpu` (the node answers with its
 * `process.cpuUsage()`, so the coordinator can charge the node's CPU to the measured phase only); the node also
 * stops when stdin closes, so an orphaned node never outlives its coordinator.
 */

export type ExecutionOutcome = 'completed' | 'retry' | 'fail' | 'aborted';
export type NodeEventKind = 'completed' | 'retried' | 'deadLettered' | 'superseded' | 'cancelled';

export type NodeMessage =
  | { t: 'ready'; node: string; pid: number }
  /**
   * An executor started: dispatch `d` of thread `th`, run `r`, claim token `c`, instance id `i`, attempt `a`, at
   * `at`. `l`: the run waits for a live command (send it one); `x`: the run lasts until interrupted.
   */
  | {
      t: 'start';
      d: string;
      th: string;
      r: string;
      c: string;
      i: string;
      a: number;
      at: number;
      l?: boolean;
      x?: boolean;
    }
  /** The executor returned (or threw). */
  | { t: 'end'; d: string; c: string; at: number; o: ExecutionOutcome }
  /** A Mailbox event. */
  | { t: 'event'; e: NodeEventKind; d: string }
  /** The executor accepted (acked) a live command. */
  | { t: 'live'; d: string }
  | { t: 'stopped'; node: string }
  | { t: 'error'; node: string; message: string }
  /** The answer to a `cpu` request: `process.cpuUsage()` of the node process, in microseconds. */
  | { t: 'cpu'; node: string; user: number; system: number };

export type CoordinatorMessage = { t: 'stop' } | { t: 'cpu' };

export function encodeMessage(msg: NodeMessage | CoordinatorMessage): string {
  return `${JSON.stringify(msg)}\n`;
}

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);
const str = (o: Record<string, unknown>, k: string): boolean => typeof o[k] === 'string';
const numeric = (o: Record<string, unknown>, k: string): boolean =>
  typeof o[k] === 'number' && Number.isFinite(o[k]);

const optionalBool = (o: Record<string, unknown>, k: string): boolean =>
  o[k] === undefined || typeof o[k] === 'boolean';

const OUTCOMES: readonly string[] = ['completed', 'retry', 'fail', 'aborted'];
const EVENTS: readonly string[] = ['completed', 'retried', 'deadLettered', 'superseded', 'cancelled'];

/** Parse one line from a node; null for anything malformed (the caller counts those). */
export function parseNodeMessage(line: string): NodeMessage | null {
  let v: unknown;
  try {
    v = JSON.parse(line);
  } catch {
    return null;
  }
  if (!isObject(v) || typeof v.t !== 'string') return null;
  switch (v.t) {
    case 'ready':
      return str(v, 'node') && numeric(v, 'pid') ? (v as NodeMessage) : null;
    case 'start':
      return str(v, 'd') &&
        str(v, 'th') &&
        str(v, 'r') &&
        str(v, 'c') &&
        str(v, 'i') &&
        numeric(v, 'a') &&
        numeric(v, 'at') &&
        optionalBool(v, 'l') &&
        optionalBool(v, 'x')
        ? (v as NodeMessage)
        : null;
    case 'end':
      return str(v, 'd') && str(v, 'c') && numeric(v, 'at') && OUTCOMES.includes(String(v.o))
        ? (v as NodeMessage)
        : null;
    case 'event':
      return str(v, 'd') && EVENTS.includes(String(v.e)) ? (v as NodeMessage) : null;
    case 'live':
      return str(v, 'd') ? (v as NodeMessage) : null;
    case 'stopped':
      return str(v, 'node') ? (v as NodeMessage) : null;
    case 'error':
      return str(v, 'node') && str(v, 'message') ? (v as NodeMessage) : null;
    case 'cpu':
      return str(v, 'node') && numeric(v, 'user') && numeric(v, 'system') ? (v as NodeMessage) : null;
    default:
      return null;
  }
}

export function parseCoordinatorMessage(line: string): CoordinatorMessage | null {
  try {
    const v: unknown = JSON.parse(line);
    if (!isObject(v)) return null;
    return v.t === 'stop' ? { t: 'stop' } : v.t === 'cpu' ? { t: 'cpu' } : null;
  } catch {
    return null;
  }
}

/** Wall-clock epoch milliseconds with sub-millisecond precision, comparable across processes on one machine. */
export function preciseNow(): number {
  return performance.timeOrigin + performance.now();
}
