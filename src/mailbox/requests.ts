/** Boundary validation of Mailbox calls: bad input → `StorageError` kind `Validation` naming the field. */
import { uuidV7 as uuidv7 } from '../util/uuid.js';
import * as args from '../contract/args.js';
import { StorageError } from '../contract/errors.js';
import { DEFAULT_PRIORITY } from '../contract/helpers.js';
import type { LiveRunCommand, Message, ToolCallResume } from '../contract/types.js';
import type { SubmitRequest } from './types.js';

export interface ParsedSubmit {
  threadId: string;
  runId: string;
  dispatchId: string;
  priority: number;
  dedupeKey: string | null;
  maxAttempts: number;
}

function fail(message: string): never {
  throw StorageError.validation(message);
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

export function parseSubmit(req: SubmitRequest, defaultMaxAttempts: number): ParsedSubmit {
  if (!isRecord(req)) fail('request must be an object');
  const maxAttempts =
    req.maxAttempts == null ? defaultMaxAttempts : args.bounded('maxAttempts', req.maxAttempts, 0xffff_ffff);
  if (maxAttempts < 1) fail('maxAttempts must be at least 1');
  return {
    threadId: args.id('threadId', req.threadId),
    runId: req.runId == null ? uuidv7() : args.id('runId', req.runId),
    dispatchId: req.dispatchId == null ? uuidv7() : args.id('dispatchId', req.dispatchId),
    priority: req.priority == null ? DEFAULT_PRIORITY : args.bounded('priority', req.priority, 255),
    dedupeKey: req.dedupeKey == null ? null : args.id('dedupeKey', req.dedupeKey),
    maxAttempts,
  };
}

/** Validate and normalize `Messages` for live delivery / durable fallback. */
export function parseMessages(messages: unknown): Message[] {
  if (!Array.isArray(messages) || messages.length === 0) fail('messages must be a non-empty array');
  const command = args.liveCommand({ Messages: messages });
  if (typeof command !== 'object' || !('Messages' in command)) fail('messages must be a non-empty array');
  return command.Messages;
}

export function parseDecision(toolCallId: unknown, resume: unknown): LiveRunCommand {
  args.id('toolCallId', toolCallId);
  if (!isRecord(resume)) fail('resume must be an object');
  return args.liveCommand({ Decision: [[toolCallId, resume as unknown as ToolCallResume]] });
}
