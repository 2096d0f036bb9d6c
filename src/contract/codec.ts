/**
 * JSON codec, wire-identical to the Rust serde shapes of upstream Awaken: field order as the Rust structs,
 * `Option` fields serialized as null unless the Rust side skips them, unknown input fields ignored.
 * Decoders validate and throw `StorageError` kind `Serialization` naming what was wrong.
 */
import type { z } from 'zod';
import { StorageError } from './errors.js';
import { fastRunDispatch } from './fast-parse.js';
import {
  describeZodError,
  liveRunCommandSchema,
  liveRunTargetSchema,
  runDispatchResultSchema,
  runDispatchSchema,
  terminationReason as terminationSchema,
} from './schemas.js';
import type {
  ContentBlock,
  JsonValue,
  LiveRunCommand,
  LiveRunTarget,
  MailboxInterrupt,
  MailboxInterruptDetails,
  MediaSource,
  Message,
  RunDispatch,
  RunDispatchResult,
  TerminationReason,
  ToolCallResume,
} from './types.js';
import { validateForPersist } from './validate.js';

type Wire = { [key: string]: JsonValue };

function put(target: Wire, key: string, value: JsonValue | undefined, omitWhenNull: boolean): void {
  if (value === undefined || (value === null && omitWhenNull)) {
    if (!omitWhenNull) target[key] = null;
    return;
  }
  target[key] = value;
}

function parseJson(text: string, what: string): unknown {
  try {
    return JSON.parse(text);
  } catch (err) {
    throw StorageError.serialization(`${what}: invalid JSON (${(err as Error).message})`);
  }
}

function decodeWith<S extends z.ZodType>(schema: S, value: unknown, what: string): z.output<S> {
  const parsed = schema.safeParse(value);
  if (!parsed.success) throw StorageError.serialization(describeZodError(parsed.error, what));
  return parsed.data;
}

// ---- TerminationReason ----

export function terminationToWire(t: TerminationReason): Wire {
  switch (t.type) {
    case 'stopped': {
      const value: Wire = { code: t.value.code };
      put(value, 'detail', t.value.detail ?? null, true);
      return { type: 'stopped', value };
    }
    case 'blocked':
    case 'error':
      return { type: t.type, value: t.value };
    default:
      return { type: t.type };
  }
}

export function terminationFromWire(value: unknown): TerminationReason {
  const t = decodeWith(terminationSchema, value, 'termination');
  if (t.type === 'stopped')
    return { type: 'stopped', value: { code: t.value.code, detail: t.value.detail ?? null } };
  return t as TerminationReason;
}

// ---- RunDispatch ----

export function runDispatchToWire(d: RunDispatch): Wire {
  const w: Wire = {
    dispatch_id: d.dispatch_id,
    thread_id: d.thread_id,
    run_id: d.run_id,
    priority: d.priority,
    dedupe_key: d.dedupe_key,
    dispatch_epoch: d.dispatch_epoch,
    status: d.status,
    available_at: d.available_at,
    attempt_count: d.attempt_count,
    max_attempts: d.max_attempts,
    last_error: d.last_error,
    claim_token: d.claim_token,
    claimed_by: d.claimed_by,
    lease_until: d.lease_until,
  };
  put(w, 'dispatch_instance_id', d.dispatch_instance_id, true);
  put(w, 'run_status', d.run_status, true);
  put(w, 'termination', d.termination === null ? null : terminationToWire(d.termination), true);
  put(w, 'run_response', d.run_response, true);
  put(w, 'run_error', d.run_error, true);
  put(w, 'completed_at', d.completed_at, true);
  w.created_at = d.created_at;
  w.updated_at = d.updated_at;
  return w;
}

/**
 * Parse a wire object into a normalized record (missing fields get the contract defaults: priority 128,
 * max_attempts 5, status Queued, null optionals) without lifecycle validation.
 */
export function normalizeRunDispatch(value: unknown, what = 'dispatch'): RunDispatch {
  // The usual record, with plainly typed fields, needs no schema (see fast-parse.ts).
  return fastRunDispatch(value) ?? normalizeRunDispatchWithSchema(value, what);
}

/** `normalizeRunDispatch` through the schema alone (what the fast path must agree with). */
export function normalizeRunDispatchWithSchema(value: unknown, what = 'dispatch'): RunDispatch {
  const p = decodeWith(runDispatchSchema, value, what);
  return {
    dispatch_id: p.dispatch_id,
    thread_id: p.thread_id,
    run_id: p.run_id,
    priority: p.priority,
    dedupe_key: p.dedupe_key,
    dispatch_epoch: p.dispatch_epoch,
    status: p.status,
    available_at: p.available_at ?? p.created_at,
    attempt_count: p.attempt_count,
    max_attempts: p.max_attempts,
    last_error: p.last_error,
    claim_token: p.claim_token,
    claimed_by: p.claimed_by,
    lease_until: p.lease_until,
    dispatch_instance_id: p.dispatch_instance_id,
    run_status: p.run_status,
    termination: p.termination === null ? null : terminationFromWire(p.termination),
    run_response: p.run_response,
    run_error: p.run_error,
    completed_at: p.completed_at,
    created_at: p.created_at,
    updated_at: p.updated_at ?? p.created_at,
  };
}

/** Decode a persisted or received record: shape, then the persist invariants (`validateForPersist`). */
export function runDispatchFromWire(value: unknown): RunDispatch {
  const d = normalizeRunDispatch(value);
  try {
    validateForPersist(d);
  } catch (err) {
    throw StorageError.serialization(`dispatch '${d.dispatch_id}': ${(err as StorageError).detail}`);
  }
  return d;
}

export const encodeRunDispatch = (d: RunDispatch): string => JSON.stringify(runDispatchToWire(d));
export const decodeRunDispatch = (text: string): RunDispatch =>
  runDispatchFromWire(parseJson(text, 'dispatch'));

// ---- RunDispatchResult ----

export function runDispatchResultToWire(r: RunDispatchResult): Wire {
  const w: Wire = { run_id: r.run_id, dispatch_instance_id: r.dispatch_instance_id, status: r.status };
  put(w, 'termination', r.termination ? terminationToWire(r.termination) : null, true);
  put(w, 'response', r.response ?? null, true);
  put(w, 'error', r.error ?? null, true);
  return w;
}

export function runDispatchResultFromWire(value: unknown): RunDispatchResult {
  const r = decodeWith(runDispatchResultSchema, value, 'result');
  return {
    run_id: r.run_id,
    dispatch_instance_id: r.dispatch_instance_id,
    status: r.status,
    termination: r.termination ? terminationFromWire(r.termination) : null,
    response: r.response ?? null,
    error: r.error ?? null,
  };
}

// ---- MailboxInterrupt ----

export function mailboxInterruptToWire(i: MailboxInterrupt | MailboxInterruptDetails): Wire {
  const w: Wire = {
    new_dispatch_epoch: i.new_dispatch_epoch,
    active_dispatch: i.active_dispatch ? runDispatchToWire(i.active_dispatch) : null,
    superseded_count: i.superseded_count,
  };
  if ('superseded_dispatches' in i) w.superseded_dispatches = i.superseded_dispatches.map(runDispatchToWire);
  return w;
}

export function mailboxInterruptDetailsFromWire(value: unknown): MailboxInterruptDetails {
  if (!value || typeof value !== 'object' || Array.isArray(value)) {
    throw StorageError.serialization('interrupt: expected an object');
  }
  const o = value as Record<string, unknown>;
  const epoch = o.new_dispatch_epoch;
  const count = o.superseded_count;
  if (!Number.isSafeInteger(epoch) || (epoch as number) < 0) {
    throw StorageError.serialization('interrupt.new_dispatch_epoch: must be a non-negative safe integer');
  }
  if (!Number.isSafeInteger(count) || (count as number) < 0) {
    throw StorageError.serialization('interrupt.superseded_count: must be a non-negative safe integer');
  }
  const list = o.superseded_dispatches ?? [];
  if (!Array.isArray(list))
    throw StorageError.serialization('interrupt.superseded_dispatches: must be an array');
  return {
    new_dispatch_epoch: epoch as number,
    active_dispatch: o.active_dispatch == null ? null : runDispatchFromWire(o.active_dispatch),
    superseded_count: count as number,
    superseded_dispatches: list.map(runDispatchFromWire),
  };
}

export function mailboxInterruptFromWire(value: unknown): MailboxInterrupt {
  const { new_dispatch_epoch, active_dispatch, superseded_count } = mailboxInterruptDetailsFromWire(
    value && typeof value === 'object' ? { ...value, superseded_dispatches: [] } : value,
  );
  return { new_dispatch_epoch, active_dispatch, superseded_count };
}

// ---- Messages and live commands ----

function mediaToWire(s: MediaSource): Wire {
  return s.type === 'url'
    ? { type: 'url', url: s.url }
    : { type: 'base64', media_type: s.media_type, data: s.data };
}

function contentToWire(b: ContentBlock): Wire {
  switch (b.type) {
    case 'text':
      return { type: 'text', text: b.text };
    case 'image':
    case 'audio':
    case 'video':
      return { type: b.type, source: mediaToWire(b.source) };
    case 'document': {
      const w: Wire = { type: 'document', source: mediaToWire(b.source) };
      put(w, 'title', b.title ?? null, true);
      return w;
    }
    case 'tool_use':
      return { type: 'tool_use', id: b.id, name: b.name, input: b.input };
    case 'tool_result':
      return { type: 'tool_result', tool_use_id: b.tool_use_id, content: b.content.map(contentToWire) };
    case 'thinking':
      return { type: 'thinking', thinking: b.thinking };
  }
}

export function messageToWire(m: Message): Wire {
  const w: Wire = {};
  put(w, 'id', m.id ?? null, true);
  w.role = m.role;
  w.content = m.content.map(contentToWire);
  put(
    w,
    'tool_calls',
    m.tool_calls ? m.tool_calls.map((c) => ({ id: c.id, name: c.name, arguments: c.arguments })) : null,
    true,
  );
  put(w, 'tool_call_id', m.tool_call_id ?? null, true);
  if (m.visibility === 'internal') w.visibility = 'internal';
  if (m.metadata) {
    const md: Wire = {};
    put(md, 'run_id', m.metadata.run_id ?? null, true);
    put(md, 'step_index', m.metadata.step_index ?? null, true);
    put(md, 'sender_agent_id', m.metadata.sender_agent_id ?? null, true);
    const c = m.metadata.compaction;
    put(md, 'compaction', c ? { from_seq: c.from_seq, to_seq: c.to_seq } : null, true);
    w.metadata = md;
  }
  return w;
}

export function toolCallResumeToWire(r: ToolCallResume): Wire {
  const w: Wire = { decision_id: r.decision_id, action: r.action };
  put(w, 'result', r.result ?? null, true);
  put(w, 'reason', r.reason ?? null, true);
  w.updated_at = r.updated_at;
  return w;
}

export function liveRunCommandToWire(c: LiveRunCommand): JsonValue {
  if (c === 'Cancel' || c === 'PendingBoundaryWake') return c;
  if ('Messages' in c) return { Messages: c.Messages.map(messageToWire) };
  return { Decision: c.Decision.map(([id, resume]) => [id, toolCallResumeToWire(resume)]) };
}

/** Validate and normalize a command (from the wire or from a caller). Throws Serialization. */
export function liveRunCommandFromWire(value: unknown): LiveRunCommand {
  return decodeWith(liveRunCommandSchema, value, 'live command') as LiveRunCommand;
}

export const encodeLiveRunCommand = (c: LiveRunCommand): string => JSON.stringify(liveRunCommandToWire(c));
export const decodeLiveRunCommand = (text: string): LiveRunCommand =>
  liveRunCommandFromWire(parseJson(text, 'live command'));

export function liveRunTargetToWire(t: LiveRunTarget): Wire {
  const w: Wire = { thread_id: t.thread_id, run_id: t.run_id };
  put(w, 'dispatch_id', t.dispatch_id ?? null, true);
  return w;
}

export function liveRunTargetFromWire(value: unknown): LiveRunTarget {
  const t = decodeWith(liveRunTargetSchema, value, 'target');
  return { thread_id: t.thread_id, run_id: t.run_id, dispatch_id: t.dispatch_id ?? null };
}
