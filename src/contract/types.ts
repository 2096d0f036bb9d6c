/**
 * The mailbox vocabulary. Data records keep the Rust field names (snake_case) so that their JSON is the
 * upstream Awaken wire format.
 */

export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };

export const RUN_DISPATCH_STATUSES = [
  'Queued',
  'Claimed',
  'Acked',
  'Cancelled',
  'Superseded',
  'DeadLetter',
] as const;
export type RunDispatchStatus = (typeof RUN_DISPATCH_STATUSES)[number];

export const TERMINAL_STATUSES: readonly RunDispatchStatus[] = [
  'Acked',
  'Cancelled',
  'Superseded',
  'DeadLetter',
];

export function isTerminal(status: RunDispatchStatus): boolean {
  return status !== 'Queued' && status !== 'Claimed';
}

export const RUN_STATUSES = ['created', 'running', 'waiting', 'done'] as const;
export type RunStatus = (typeof RUN_STATUSES)[number];

export interface StoppedReason {
  code: string;
  detail?: string | null;
}

export type TerminationReason =
  | { type: 'natural_end' }
  | { type: 'behavior_requested' }
  | { type: 'stopped'; value: StoppedReason }
  | { type: 'cancelled' }
  | { type: 'blocked'; value: string }
  | { type: 'suspended' }
  | { type: 'error'; value: string };

/** A dispatch record. Every field is present in memory; the codec omits the runtime projection when null. */
export interface RunDispatch {
  dispatch_id: string;
  thread_id: string;
  run_id: string;
  priority: number;
  dedupe_key: string | null;
  dispatch_epoch: number;
  status: RunDispatchStatus;
  available_at: number;
  attempt_count: number;
  max_attempts: number;
  last_error: string | null;
  claim_token: string | null;
  claimed_by: string | null;
  lease_until: number | null;
  dispatch_instance_id: string | null;
  run_status: RunStatus | null;
  termination: TerminationReason | null;
  run_response: string | null;
  run_error: string | null;
  completed_at: number | null;
  created_at: number;
  updated_at: number;
}

/**
 * What callers may pass to `enqueue`: optional fields may be omitted (they default to null, or priority 128,
 * max_attempts 5, status Queued, available_at = created_at).
 */
export type RunDispatchInput = Pick<RunDispatch, 'dispatch_id' | 'thread_id' | 'run_id' | 'created_at'> &
  Partial<Omit<RunDispatch, 'dispatch_id' | 'thread_id' | 'run_id' | 'created_at'>>;

export interface RunDispatchResult {
  run_id: string;
  dispatch_instance_id: string;
  status: RunStatus;
  termination?: TerminationReason | null;
  response?: string | null;
  error?: string | null;
}

export interface MailboxInterrupt {
  new_dispatch_epoch: number;
  active_dispatch: RunDispatch | null;
  superseded_count: number;
}

export interface MailboxInterruptDetails extends MailboxInterrupt {
  superseded_dispatches: RunDispatch[];
}

// ---- Messages (live `Messages` payloads) ----

export type MediaSource = { type: 'url'; url: string } | { type: 'base64'; media_type: string; data: string };

export type ContentBlock =
  | { type: 'text'; text: string }
  | { type: 'image'; source: MediaSource }
  | { type: 'document'; source: MediaSource; title?: string | null }
  | { type: 'audio'; source: MediaSource }
  | { type: 'video'; source: MediaSource }
  | { type: 'tool_use'; id: string; name: string; input: JsonValue }
  | { type: 'tool_result'; tool_use_id: string; content: ContentBlock[] }
  | { type: 'thinking'; thinking: string };

export type MessageRole = 'system' | 'user' | 'assistant' | 'tool';

export interface ToolCall {
  id: string;
  name: string;
  arguments: JsonValue;
}

export interface MessageMetadata {
  run_id?: string | null;
  step_index?: number | null;
  sender_agent_id?: string | null;
  compaction?: { from_seq: number; to_seq: number } | null;
}

export interface Message {
  id?: string | null;
  role: MessageRole;
  content: ContentBlock[];
  tool_calls?: ToolCall[] | null;
  tool_call_id?: string | null;
  visibility?: 'all' | 'internal';
  metadata?: MessageMetadata | null;
}

export interface ToolCallResume {
  decision_id: string;
  action: 'resume' | 'cancel';
  result?: JsonValue;
  reason?: string | null;
  updated_at: number;
}

/** Externally tagged like the Rust enum: unit variants are bare strings. */
export type LiveRunCommand =
  'Cancel' | 'PendingBoundaryWake' | { Messages: Message[] } | { Decision: [string, ToolCallResume][] };

export interface LiveRunTarget {
  thread_id: string;
  run_id: string;
  dispatch_id?: string | null;
}

export type LiveDeliveryOutcome = 'Delivered' | 'NoSubscriber';

export interface LiveCommandReceipt {
  /** Tell the producer the run accepted the command. Idempotent; later calls are no-ops. */
  ack(): Promise<void>;
  /**
   * Tell the producer the run does not take the command (its executor does not read commands): the
   * producer sees `NoSubscriber` at once instead of after its timeout. Optional; after `ack` or `reject`
   * further calls are no-ops.
   */
  reject?(): Promise<void>;
}

export interface LiveRunCommandEntry {
  command: LiveRunCommand;
  receipt: LiveCommandReceipt;
}

export interface LiveRunCommandStream extends AsyncIterable<LiveRunCommandEntry> {
  /** Unsubscribe and end the iterator. Idempotent. */
  close(): Promise<void>;
}

export interface DispatchSignalReceipt {
  /** JetStream-style delivery count: 1 on first delivery; null when the transport cannot tell. */
  redeliveryAttempts(): number | null;
  ack(): Promise<void>;
  /** Redeliver now. */
  nack(): Promise<void>;
  /** Redeliver no earlier than `delayMs` from now. */
  nackWithDelay(delayMs: number): Promise<void>;
}

export interface DispatchSignalEntry {
  thread_id: string;
  dispatch_id: string;
  receipt: DispatchSignalReceipt;
}
