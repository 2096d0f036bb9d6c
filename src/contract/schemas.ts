import { z } from 'zod';
import type { JsonValue } from './types.js';
import { RUN_DISPATCH_STATUSES, RUN_STATUSES } from './types.js';

/** Integers the JS number type holds exactly; the Rust side uses u64 but ids and ms timestamps fit. */
export const u64 = z
  .number({ error: 'must be a number' })
  .refine((v) => Number.isSafeInteger(v) && v >= 0, 'must be a non-negative safe integer');
export const u32 = u64.refine((v) => v <= 0xffff_ffff, 'must fit in u32');
export const priority = u64.refine((v) => v <= 255, 'must be in 0..=255');
export const str = z.string({ error: 'must be a string' });
export const nullableStr = str.nullable().default(null);

export const jsonValue: z.ZodType<JsonValue> = z.lazy(() =>
  z.union([
    z.null(),
    z.boolean(),
    z.number(),
    z.string(),
    z.array(jsonValue),
    z.record(z.string(), jsonValue),
  ]),
);

export const runDispatchStatus = z.enum(RUN_DISPATCH_STATUSES, { error: 'must be a RunDispatchStatus' });
export const runStatus = z.enum(RUN_STATUSES, {
  error: 'must be a RunStatus (created|running|waiting|done)',
});

export const terminationReason = z.preprocess(
  // `plugin_requested` is the legacy input alias of `behavior_requested`.
  (v) =>
    v && typeof v === 'object' && (v as { type?: unknown }).type === 'plugin_requested'
      ? { ...v, type: 'behavior_requested' }
      : v,
  z.discriminatedUnion(
    'type',
    [
      z.object({ type: z.literal('natural_end') }),
      z.object({ type: z.literal('behavior_requested') }),
      z.object({
        type: z.literal('stopped'),
        value: z.object({ code: str, detail: str.nullish() }),
      }),
      z.object({ type: z.literal('cancelled') }),
      z.object({ type: z.literal('blocked'), value: str }),
      z.object({ type: z.literal('suspended') }),
      z.object({ type: z.literal('error'), value: str }),
    ],
    { error: 'must be a TerminationReason' },
  ),
);

/** A full dispatch record as stored or sent on the wire; missing optional fields become null. */
export const runDispatchSchema = z.object({
  dispatch_id: str,
  thread_id: str,
  run_id: str,
  priority: priority.default(128),
  dedupe_key: nullableStr,
  dispatch_epoch: u64.default(0),
  status: runDispatchStatus.default('Queued'),
  available_at: u64.optional(),
  attempt_count: u32.default(0),
  max_attempts: u32.default(5),
  last_error: nullableStr,
  claim_token: nullableStr,
  claimed_by: nullableStr,
  lease_until: u64.nullable().default(null),
  dispatch_instance_id: nullableStr,
  run_status: runStatus.nullable().default(null),
  termination: terminationReason.nullable().default(null),
  run_response: nullableStr,
  run_error: nullableStr,
  completed_at: u64.nullable().default(null),
  created_at: u64,
  updated_at: u64.optional(),
});

export const runDispatchResultSchema = z.object({
  run_id: str,
  dispatch_instance_id: str,
  status: runStatus,
  termination: terminationReason.nullish(),
  response: str.nullish(),
  error: str.nullish(),
});

const mediaSource = z.discriminatedUnion('type', [
  z.object({ type: z.literal('url'), url: str }),
  z.object({ type: z.literal('base64'), media_type: str, data: str }),
]);

export const contentBlock: z.ZodType = z.lazy(() =>
  z.discriminatedUnion('type', [
    z.object({ type: z.literal('text'), text: str }),
    z.object({ type: z.literal('image'), source: mediaSource }),
    z.object({ type: z.literal('document'), source: mediaSource, title: str.nullish() }),
    z.object({ type: z.literal('audio'), source: mediaSource }),
    z.object({ type: z.literal('video'), source: mediaSource }),
    z.object({ type: z.literal('tool_use'), id: str, name: str, input: jsonValue }),
    z.object({ type: z.literal('tool_result'), tool_use_id: str, content: z.array(contentBlock) }),
    z.object({ type: z.literal('thinking'), thinking: str }),
  ]),
);

export const messageSchema = z.object({
  id: str.nullish(),
  role: z.enum(['system', 'user', 'assistant', 'tool']),
  content: z.array(contentBlock),
  tool_calls: z.array(z.object({ id: str, name: str, arguments: jsonValue })).nullish(),
  tool_call_id: str.nullish(),
  visibility: z.enum(['all', 'internal']).optional(),
  metadata: z
    .object({
      run_id: str.nullish(),
      step_index: u32.nullish(),
      sender_agent_id: str.nullish(),
      compaction: z.object({ from_seq: u64, to_seq: u64 }).nullish(),
    })
    .nullish(),
});

export const toolCallResumeSchema = z.object({
  decision_id: str.default(''),
  action: z.enum(['resume', 'cancel']),
  result: jsonValue.optional(),
  reason: str.nullish(),
  updated_at: u64.default(0),
});

export const liveRunCommandSchema = z.union(
  [
    z.literal('Cancel'),
    z.literal('PendingBoundaryWake'),
    z.strictObject({ Messages: z.array(messageSchema) }),
    z.strictObject({ Decision: z.array(z.tuple([str, toolCallResumeSchema])) }),
  ],
  { error: 'must be a LiveRunCommand (Cancel | PendingBoundaryWake | {Messages} | {Decision})' },
);

export const liveRunTargetSchema = z.object({
  thread_id: str,
  run_id: str,
  dispatch_id: str.nullish(),
});

type Issue = z.core.$ZodIssue;

/**
 * The issue that names the bad field. A union that matched no branch reports one issue at its own path with a
 * branch-by-branch list inside; when exactly one branch got past the shape of the value (its issues all sit
 * below the union's path, e.g. `{Messages: [...]}` with a bad role inside), the input was meant for that
 * branch and its first issue is the one to show. Otherwise (no branch or several fit) the union's own
 * message is the best description.
 */
function innermost(issue: Issue, prefix: readonly PropertyKey[]): { issue: Issue; path: PropertyKey[] } {
  const path = [...prefix, ...issue.path];
  if (issue.code !== 'invalid_union' || issue.errors.length === 0) return { issue, path };
  const fitting = issue.errors.filter(
    (branch) => branch.length > 0 && branch.every((i) => i.path.length > 0 && i.code !== 'unrecognized_keys'),
  );
  const first = fitting.length === 1 ? fitting[0]?.[0] : undefined;
  return first === undefined ? { issue, path } : innermost(first, path);
}

/** The field the first zod issue is about (`<root>.<path>`) and what is wrong with it. */
export function locateZodError(err: z.ZodError, root: string): { field: string; problem: string } {
  const top = err.issues[0];
  if (!top) return { field: root, problem: 'invalid' };
  const { issue, path } = innermost(top, []);
  const field = [root, ...path.map(String)].filter((p) => p !== '').join('.');
  return { field, problem: issue.message };
}

/** Format the first zod issue as `<path>: <message>` so errors name the offending field. */
export function describeZodError(err: z.ZodError, root: string): string {
  const { field, problem } = locateZodError(err, root);
  return `${field}: ${problem}`;
}
