/**
 * Wire format of one feed message (a NATS payload, or the `e` field of a Redis Stream entry): UTF-8 JSON
 * `{"v":1,"node":<consumer id|null>,"events":[{type, dispatch_id, thread_id, run_id, status, attempt_count,
 * at, error?, retry_at?}, ...]}`. Messages come from other processes, so decoding validates every field; a
 * message that does not decode is dropped whole (and counted by the consumer).
 */
import { z } from 'zod';
import { RUN_DISPATCH_STATUSES } from '../contract/types.js';
import { LIFECYCLE_EVENT_TYPES } from './types.js';
import type { LifecycleEvent } from './types.js';

export const FEED_WIRE_VERSION = 1;

const safeInt = z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER);
const id = z.string().min(1);

const eventSchema = z.object({
  type: z.enum(LIFECYCLE_EVENT_TYPES),
  dispatch_id: id,
  thread_id: id,
  run_id: id,
  status: z.enum(RUN_DISPATCH_STATUSES),
  attempt_count: safeInt,
  at: safeInt,
  error: z.string().optional(),
  retry_at: safeInt.optional(),
});

const batchSchema = z.object({
  v: z.literal(FEED_WIRE_VERSION),
  node: z.string().nullable(),
  events: z.array(eventSchema),
});

type WireEvent = Omit<LifecycleEvent, 'node'>;

/** Encode events of one node (they all carry the same `node`). */
export function encodeBatch(node: string | null, events: readonly LifecycleEvent[]): string {
  const wire: WireEvent[] = events.map(({ node: _node, ...rest }) => rest);
  return JSON.stringify({ v: FEED_WIRE_VERSION, node, events: wire });
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
  return events.map((e) => {
    const event: LifecycleEvent = {
      type: e.type,
      dispatch_id: e.dispatch_id,
      thread_id: e.thread_id,
      run_id: e.run_id,
      status: e.status,
      attempt_count: e.attempt_count,
      at: e.at,
      node,
    };
    if (e.error !== undefined) event.error = e.error;
    if (e.retry_at !== undefined) event.retry_at = e.retry_at;
    return event;
  });
}
