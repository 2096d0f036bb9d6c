/**
 * The coordinator's execution log, stored by column so a long run stays small: about 60 bytes per execution
 * (two doubles, three interned ids, and the claim token and instance id packed as 16-byte UUIDs) instead of a few
 * hundred for an object with strings. Only executions still running are also kept in a map, to pair their end.
 */
import type { ExecutionEntry } from './invariants.js';

const INITIAL_CAPACITY = 1024;
const UUID_BYTES = 16;
/** A canonical lowercase UUID with a valid version nibble: these pack into 16 bytes (losslessly). */
const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[1-8][0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}$/;
/** Dispatch ids of the form `d<index>` are stored as the index; others are interned above this offset. */
const INTERNED_DISPATCH_OFFSET = 0x8000_0000;
/** `d<index>` without leading zeros, so that the index maps back to exactly this id. */
const BENCH_DISPATCH_RE = /^d(0|[1-9]\d{0,8})$/;

class Interner {
  private readonly index = new Map<string, number>();
  readonly names: string[] = [];

  id(name: string): number {
    let i = this.index.get(name);
    if (i === undefined) {
      i = this.names.length;
      this.names.push(name);
      this.index.set(name, i);
    }
    return i;
  }

  lookup(name: string): number | undefined {
    return this.index.get(name);
  }
}

/**
 * Tokens pack to 16 bytes: canonical UUIDs as their bytes; anything else (other runtimes' tokens) as a marker
 * whose version byte (0xff) no valid UUID has, followed by an interned index.
 */
class TokenPacker {
  private readonly others = new Interner();

  pack(token: string, into: Uint8Array, at: number): void {
    if (UUID_RE.test(token)) {
      // Hex digits read by char code: no intermediate strings (this runs once per execution).
      let b = at;
      for (let i = 0; i < token.length; i += 1) {
        if (i === 8 || i === 13 || i === 18 || i === 23) continue;
        into[b] = (hexValue(token.charCodeAt(i)) << 4) | hexValue(token.charCodeAt(i + 1));
        b += 1;
        i += 1;
      }
      return;
    }
    into.fill(0xff, at, at + UUID_BYTES);
    const i = this.others.id(token);
    into[at + 12] = (i >>> 24) & 0xff;
    into[at + 13] = (i >>> 16) & 0xff;
    into[at + 14] = (i >>> 8) & 0xff;
    into[at + 15] = i & 0xff;
  }

  unpack(from: Uint8Array, at: number): string {
    if (from[at + 6] === 0xff) {
      const i =
        ((from[at + 12]! << 24) | (from[at + 13]! << 16) | (from[at + 14]! << 8) | from[at + 15]!) >>> 0;
      return this.others.names[i] ?? '';
    }
    let hex = '';
    for (let b = 0; b < UUID_BYTES; b += 1) hex += from[at + b]!.toString(16).padStart(2, '0');
    return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
  }
}

/** Value of a lowercase hex digit's char code (the caller checked the token with UUID_RE). */
function hexValue(code: number): number {
  return code <= 57 ? code - 48 : code - 87;
}

function compareBytes(a: Uint8Array, ai: number, b: Uint8Array, bi: number): number {
  for (let k = 0; k < UUID_BYTES; k += 1) {
    const d = a[ai + k]! - b[bi + k]!;
    if (d !== 0) return d;
  }
  return 0;
}

export class ExecutionLog {
  private count = 0;
  private capacity = INITIAL_CAPACITY;
  private starts = new Float64Array(INITIAL_CAPACITY);
  /** NaN while the execution has not reported its end. */
  private ends = new Float64Array(INITIAL_CAPACITY);
  private dispatches = new Uint32Array(INITIAL_CAPACITY);
  private threads = new Uint32Array(INITIAL_CAPACITY);
  private nodes = new Uint32Array(INITIAL_CAPACITY);
  private claims = new Uint8Array(INITIAL_CAPACITY * UUID_BYTES);
  private instances = new Uint8Array(INITIAL_CAPACITY * UUID_BYTES);
  private readonly threadNames = new Interner();
  private readonly nodeNames = new Interner();
  private readonly dispatchNames = new Interner();
  private readonly tokens = new TokenPacker();
  /** Executions still running: `dispatch \0 claim` → row. Bounded by what is in flight. */
  private readonly open = new Map<string, number>();
  private byDispatch: Uint32Array | null = null;

  get size(): number {
    return this.count;
  }

  /** Executions started but not ended so far. */
  get openCount(): number {
    return this.open.size;
  }

  private grow(): void {
    const cap = this.capacity * 2;
    const grow64 = (a: Float64Array): Float64Array<ArrayBuffer> => {
      const b = new Float64Array(cap);
      b.set(a);
      return b;
    };
    const grow32 = (a: Uint32Array): Uint32Array<ArrayBuffer> => {
      const b = new Uint32Array(cap);
      b.set(a);
      return b;
    };
    const grow8 = (a: Uint8Array): Uint8Array<ArrayBuffer> => {
      const b = new Uint8Array(cap * UUID_BYTES);
      b.set(a);
      return b;
    };
    this.starts = grow64(this.starts);
    this.ends = grow64(this.ends);
    this.dispatches = grow32(this.dispatches);
    this.threads = grow32(this.threads);
    this.nodes = grow32(this.nodes);
    this.claims = grow8(this.claims);
    this.instances = grow8(this.instances);
    this.capacity = cap;
  }

  private dispatchKey(id: string): number {
    const m = BENCH_DISPATCH_RE.exec(id);
    if (m) return Number(m[1]);
    return INTERNED_DISPATCH_OFFSET + this.dispatchNames.id(id);
  }

  private dispatchName(key: number): string {
    return key >= INTERNED_DISPATCH_OFFSET
      ? (this.dispatchNames.names[key - INTERNED_DISPATCH_OFFSET] ?? '')
      : `d${key}`;
  }

  /** Record the start of an execution; returns its row. */
  start(e: Omit<ExecutionEntry, 'end'> & { end?: number | null }): number {
    if (this.byDispatch) throw new Error('the execution log is sealed: no executions after the check began');
    if (this.count === this.capacity) this.grow();
    const row = this.count;
    this.count += 1;
    this.starts[row] = e.start;
    this.ends[row] = e.end ?? Number.NaN;
    this.dispatches[row] = this.dispatchKey(e.dispatch_id);
    this.threads[row] = this.threadNames.id(e.thread_id);
    this.nodes[row] = this.nodeNames.id(e.node);
    this.tokens.pack(e.claim_token, this.claims, row * UUID_BYTES);
    this.tokens.pack(e.instance_id, this.instances, row * UUID_BYTES);
    if (e.end === undefined || e.end === null) this.open.set(`${e.dispatch_id}\u0000${e.claim_token}`, row);
    return row;
  }

  /** Record the end of a running execution; false when no such execution is open. */
  end(dispatchId: string, claimToken: string, at: number): boolean {
    const key = `${dispatchId}\u0000${claimToken}`;
    const row = this.open.get(key);
    if (row === undefined) return false;
    this.open.delete(key);
    this.ends[row] = at;
    return true;
  }

  /** Open executions of `node` (e.g. when it is killed). */
  openOn(node: string): number {
    const id = this.nodeNames.lookup(node);
    if (id === undefined) return 0;
    let n = 0;
    for (const row of this.open.values()) if (this.nodes[row] === id) n += 1;
    return n;
  }

  /** One row as a plain entry (for violation examples and tests). */
  entry(row: number): ExecutionEntry {
    const end = this.ends[row]!;
    return {
      dispatch_id: this.dispatchName(this.dispatches[row]!),
      thread_id: this.threadNames.names[this.threads[row]!] ?? '',
      claim_token: this.tokens.unpack(this.claims, row * UUID_BYTES),
      instance_id: this.tokens.unpack(this.instances, row * UUID_BYTES),
      node: this.nodeNames.names[this.nodes[row]!] ?? '',
      start: this.starts[row]!,
      end: Number.isNaN(end) ? null : end,
    };
  }

  nodeOf(row: number): string {
    return this.nodeNames.names[this.nodes[row]!] ?? '';
  }

  startOf(row: number): number {
    return this.starts[row]!;
  }

  /** The reported end, or null. */
  endOf(row: number): number | null {
    const end = this.ends[row]!;
    return Number.isNaN(end) ? null : end;
  }

  private rows(): Uint32Array {
    const order = new Uint32Array(this.count);
    for (let i = 0; i < this.count; i += 1) order[i] = i;
    return order;
  }

  /** Groups of rows sharing a dispatch and a claim token, of size > 1. */
  *duplicateClaims(): Generator<number[]> {
    const { dispatches, claims } = this;
    const order = this.rows().sort(
      (a, b) =>
        dispatches[a]! - dispatches[b]! || compareBytes(claims, a * UUID_BYTES, claims, b * UUID_BYTES),
    );
    let group: number[] = [];
    for (const row of order) {
      const first = group[0];
      if (
        first !== undefined &&
        dispatches[first] === dispatches[row] &&
        compareBytes(claims, first * UUID_BYTES, claims, row * UUID_BYTES) === 0
      ) {
        group.push(row);
        continue;
      }
      if (group.length > 1) yield group;
      group = [row];
    }
    if (group.length > 1) yield group;
  }

  /** Rows ordered by thread, then start time. */
  byThreadAndStart(): {
    order: Uint32Array;
    threadOf(row: number): string;
    sameThread(a: number, b: number): boolean;
  } {
    const { threads, starts } = this;
    const order = this.rows().sort((a, b) => threads[a]! - threads[b]! || starts[a]! - starts[b]!);
    return {
      order,
      threadOf: (row) => this.threadNames.names[threads[row]!] ?? '',
      sameThread: (a, b) => threads[a] === threads[b],
    };
  }

  /** Whether any execution of `dispatchId` ran with instance id `instanceId`. Seals the log on first use. */
  hasInstance(dispatchId: string, instanceId: string): boolean {
    const { dispatches, instances } = this;
    this.byDispatch ??= this.rows().sort((a, b) => dispatches[a]! - dispatches[b]!);
    const order = this.byDispatch;
    const key =
      BENCH_DISPATCH_RE.test(dispatchId) || this.dispatchNames.lookup(dispatchId) !== undefined
        ? this.dispatchKey(dispatchId)
        : -1;
    if (key < 0) return false;
    const packed = new Uint8Array(UUID_BYTES);
    this.tokens.pack(instanceId, packed, 0);
    let lo = 0;
    let hi = order.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (dispatches[order[mid]!]! < key) lo = mid + 1;
      else hi = mid;
    }
    for (let i = lo; i < order.length && dispatches[order[i]!] === key; i += 1) {
      if (compareBytes(instances, order[i]! * UUID_BYTES, packed, 0) === 0) return true;
    }
    return false;
  }

  /** Approximate bytes held by the columns. */
  get footprint(): number {
    return this.capacity * (8 + 8 + 4 + 4 + 4 + UUID_BYTES * 2);
  }
}
