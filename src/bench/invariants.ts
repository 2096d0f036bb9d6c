/**
 * The invariant check run after every bench run, over plain data: the store's own records of every submitted
 * dispatch, the store's counters, and the execution logs the nodes reported.
 *
 *   lost                    a submitted dispatch that is missing or not terminal at the end
 *   duplicated_runs         a (dispatch, claim token) pair executed more than once
 *   exclusivity_violations  two executions of one thread overlapping in time
 *   count_mismatches        `countDispatchesByStatus` disagreeing with the records (per status, and in total)
 *   acked_without_execution an Acked record whose `dispatch_instance_id` no node reported executing
 *
 * Executions a node never reported the end of (it was SIGKILLed) end at the node's kill time; any other open
 * execution ends at the end of the run, which is the most conservative choice for the overlap check.
 */
import { RUN_DISPATCH_STATUSES, isTerminal } from '../contract/types.js';
import { ExecutionLog } from './execution-log.js';
import type { RunDispatchStatus } from '../contract/types.js';

export interface ExecutionEntry {
  dispatch_id: string;
  thread_id: string;
  claim_token: string;
  /** The runtime attempt id (`ExecutorContext.instanceId`), recorded on the dispatch by the Mailbox. */
  instance_id: string;
  node: string;
  /** Epoch milliseconds with sub-millisecond precision. */
  start: number;
  /** null when the node never reported the end. */
  end: number | null;
}

/** The part of a stored record the check needs. */
export interface RecordView {
  dispatch_id: string;
  status: RunDispatchStatus;
  dispatch_instance_id: string | null;
}

export type StatusCounts = Record<RunDispatchStatus, number>;

export const INVARIANT_KINDS = [
  'lost',
  'duplicated_runs',
  'exclusivity_violations',
  'count_mismatches',
  'acked_without_execution',
] as const;
export type InvariantKind = (typeof INVARIANT_KINDS)[number];

export interface InvariantReport {
  lost: number;
  duplicated_runs: number;
  exclusivity_violations: number;
  count_mismatches: number;
  acked_without_execution: number;
  ok: boolean;
  /** Tally of the records' statuses. */
  record_counts: StatusCounts;
  /** What the store's counters said (null when not asked). */
  store_counts: StatusCounts | null;
  /** Up to `maxExamples` human-readable examples per kind. */
  examples: Record<InvariantKind, string[]>;
}

export interface InvariantInput {
  /** Every dispatch id the workload submitted. */
  submitted: Iterable<string>;
  /** Records loaded back from the store (null for ids the store no longer has). */
  records: Iterable<readonly [dispatchId: string, record: RecordView | null]>;
  executions: Iterable<ExecutionEntry>;
  storeCounts?: StatusCounts | null;
  /** node → time it was killed (epoch ms). */
  killedNodes?: ReadonlyMap<string, number>;
  /** When the run ended (epoch ms): the end of executions nobody reported finishing. */
  runEnd: number;
  maxExamples?: number;
}

export function emptyStatusCounts(): StatusCounts {
  return { Queued: 0, Claimed: 0, Acked: 0, Cancelled: 0, Superseded: 0, DeadLetter: 0 };
}

/**
 * Incremental checker, so the coordinator can stream records through it without holding them: the executions
 * come from an `ExecutionLog` (columnar, compact), then every record is fed with `addRecord`, then `finish()`.
 */
export class InvariantChecker {
  private readonly maxExamples: number;
  private readonly examples: Record<InvariantKind, string[]>;
  private readonly counts: Record<InvariantKind, number>;
  private readonly recordCounts = emptyStatusCounts();
  private readonly submitted = new Set<string>();
  private readonly seenRecords = new Set<string>();
  private storeCounts: StatusCounts | null = null;
  private finished = false;

  constructor(
    private readonly log: ExecutionLog,
    private readonly runEnd: number,
    private readonly killedNodes: ReadonlyMap<string, number> = new Map(),
    maxExamples = 20,
  ) {
    this.maxExamples = maxExamples;
    this.examples = {
      lost: [],
      duplicated_runs: [],
      exclusivity_violations: [],
      count_mismatches: [],
      acked_without_execution: [],
    };
    this.counts = {
      lost: 0,
      duplicated_runs: 0,
      exclusivity_violations: 0,
      count_mismatches: 0,
      acked_without_execution: 0,
    };
  }

  private violation(kind: InvariantKind, example: string): void {
    this.counts[kind] += 1;
    if (this.examples[kind].length < this.maxExamples) this.examples[kind].push(example);
  }

  /** Also require a record for this id (the coordinator, whose ids are d0…dN-1, checks every one anyway). */
  addSubmitted(dispatchId: string): void {
    this.submitted.add(dispatchId);
  }

  /** Feed after every execution is in the log (the Acked check looks the instance up there). */
  addRecord(dispatchId: string, record: RecordView | null): void {
    if (this.submitted.size > 0) this.seenRecords.add(dispatchId);
    if (!record) {
      this.violation('lost', `dispatch ${dispatchId} is missing from the store`);
      return;
    }
    this.recordCounts[record.status] += 1;
    if (!isTerminal(record.status)) {
      this.violation('lost', `dispatch ${dispatchId} ended ${record.status}, not terminal`);
    }
    if (
      record.status === 'Acked' &&
      (record.dispatch_instance_id === null || !this.log.hasInstance(dispatchId, record.dispatch_instance_id))
    ) {
      this.violation(
        'acked_without_execution',
        `dispatch ${dispatchId} is Acked with instance ${record.dispatch_instance_id ?? 'null'} that no node reported running`,
      );
    }
  }

  setStoreCounts(counts: StatusCounts): void {
    this.storeCounts = { ...counts };
  }

  private effectiveEnd(row: number): number {
    return this.log.endOf(row) ?? this.killedNodes.get(this.log.nodeOf(row)) ?? this.runEnd;
  }

  private checkDuplicates(): void {
    for (const rows of this.log.duplicateClaims()) {
      const first = this.log.entry(rows[0]!);
      const nodes = rows.map((r) => this.log.nodeOf(r)).join(', ');
      // One violation per execution beyond the first.
      for (let i = 1; i < rows.length; i += 1) {
        this.violation(
          'duplicated_runs',
          `dispatch ${first.dispatch_id} executed ${rows.length}× under claim ${first.claim_token} (on ${nodes})`,
        );
      }
    }
  }

  private checkOverlaps(): void {
    const { order, threadOf, sameThread } = this.log.byThreadAndStart();
    let holder = -1;
    let holderEnd = -Infinity;
    for (const row of order) {
      if (holder >= 0 && !sameThread(holder, row)) {
        holder = -1;
        holderEnd = -Infinity;
      }
      const start = this.log.startOf(row);
      if (holder >= 0 && start < holderEnd) {
        const a = this.log.entry(holder);
        const b = this.log.entry(row);
        this.violation(
          'exclusivity_violations',
          `thread ${threadOf(row)}: ${b.dispatch_id} on ${b.node} started ${(holderEnd - start).toFixed(3)} ms ` +
            `before ${a.dispatch_id} on ${a.node} ended`,
        );
      }
      const end = this.effectiveEnd(row);
      if (holder < 0 || end > holderEnd) {
        holder = row;
        holderEnd = end;
      }
    }
  }

  private checkCounts(): void {
    for (const id of this.submitted) {
      if (!this.seenRecords.has(id)) this.violation('lost', `dispatch ${id} was submitted but never checked`);
    }
    const store = this.storeCounts;
    if (!store) return;
    let storeTotal = 0;
    for (const status of RUN_DISPATCH_STATUSES) {
      storeTotal += store[status];
      if (store[status] !== this.recordCounts[status]) {
        this.violation(
          'count_mismatches',
          `count(${status}) is ${store[status]} but ${this.recordCounts[status]} records have that status`,
        );
      }
    }
    const recordTotal = RUN_DISPATCH_STATUSES.reduce((sum, s) => sum + this.recordCounts[s], 0);
    if (storeTotal !== recordTotal) {
      this.violation(
        'count_mismatches',
        `the store counts ${storeTotal} dispatches in all but ${recordTotal} were found`,
      );
    }
  }

  finish(): InvariantReport {
    if (this.finished) throw new Error('InvariantChecker.finish() called twice');
    this.finished = true;
    this.checkDuplicates();
    this.checkOverlaps();
    this.checkCounts();
    const c = this.counts;
    return {
      ...c,
      ok: INVARIANT_KINDS.every((k) => c[k] === 0),
      record_counts: { ...this.recordCounts },
      store_counts: this.storeCounts ? { ...this.storeCounts } : null,
      examples: this.examples,
    };
  }
}

/** One-shot check over plain data (what the tests use). */
export function checkInvariants(input: InvariantInput): InvariantReport {
  const log = new ExecutionLog();
  for (const entry of input.executions) log.start(entry);
  const checker = new InvariantChecker(log, input.runEnd, input.killedNodes, input.maxExamples);
  for (const id of input.submitted) checker.addSubmitted(id);
  for (const [id, record] of input.records) checker.addRecord(id, record);
  if (input.storeCounts) checker.setStoreCounts(input.storeCounts);
  return checker.finish();
}
