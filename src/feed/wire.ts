/**
 * Wire format of one feed message (a NATS payload, or the `e` field of a Redis Stream entry): UTF-8 JSON
 * `{"v":1,"node":<consumer id|null>,"events":[[type, dispatch_id, thread_id, run_id, status, attempt_count,
 * at, error?, retry_at?], ...]}`. Events are positional arrays: half the bytes of objects and about 40 % less
 * CPU to encode, which is what a publisher pays per transition. `error` is null when absent and `retry_at`
 * follows. Messages come from other processes, so decoding validates every field; a message that does not
 * decode is dropped whole (and counted by the consumer).
 */
import { z } from 'zod';
import { RUN_DISPATCH_STATUSES } from '../contract/types.js';
import { LIFECYCLE_EVENT_TYPES } from './types.js';
import type { LifecycleEvent } from './types.js';

export const FEED_WIRE_VERSION = 1;

const safeInt = z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER);
const id = z.string().min(1);

const eventSchema = z.tuple([
  z.enum(LIFECYCLE_EVENT_TYPES),
  id,
  id,
  id,
  z.enum(RUN_DISPATCH_STATUSES),
  safeInt,
  safeInt,
  z.string().nullable().optional(),
  safeInt.optional(),
]);

const batchSchema = z.object({
  v: z.literal(FEED_WIRE_VERSION),
  node: z.string().nullable(),
  events: z.array(eventSchema),
});

type WireEvent = (string | number | null)[];

function toWire(e: LifecycleEvent): WireEvent {
  const wire: WireEvent = [e.type, e.dispatch_id, e.thread_id, e.run_id, e.status, e.attempt_count, e.at];
  if (e.retry_at !== undefined) wire.push(e.error ?? null, e.retry_at);
  else if (e.error !== undefined) wire.push(e.error);
  return wire;
}

/** Encode events of one node (their `node` field is replaced by `node`). */
export function encodeBatch(node: string | null, events: readonly LifecycleEvent[]): string {
  return JSON.stringify({ v: FEED_WIRE_VERSION, node, events: events.map(toWire) });
}

/** Decode a message; null when it is not a valid feed batch. */
export function decodeBatch(text: string): LifecycleEvent[] | null {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    return null;
  }
  const parsed = batchSchema.safeParse(raw);
  if (!parsed.success) return null;
  const { node, events } = parsed.data;
  return events.map(([type, dispatch_id, thread_id, run_id, status, attempt_count, at, error, retry_at]) => {
    const event: LifecycleEvent = { type, dispatch_id, thread_id, run_id, status, attempt_count, at, node };
    if (error !== undefined && error !== null) event.error = error;
    if (retry_at !== undefined) event.retry_at = retry_at;
    return event;
  });
}
