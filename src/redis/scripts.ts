/**
 * Lua scripts (lua/*.lua): each one is `prelude.lua` + its body, loaded once per process, called with
 * EVALSHA and re-sent with EVAL (which caches it again) when the server answers NOSCRIPT (restart,
 * SCRIPT FLUSH, failover). Replies use the envelope described in lua/README.md.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Redis } from 'ioredis';
import { StorageError } from '../contract/errors.js';
import type { StorageErrorKind } from '../contract/errors.js';

export const SCRIPT_NAMES = [
  'enqueue',
  'claim',
  'claim_dispatch',
  'ack',
  'record_dispatch_start',
  'record_run_result',
  'nack',
  'dead_letter',
  'cancel',
  'extend_lease',
  'interrupt',
  'supersede_claimed',
  'reclaim_expired_leases',
  'purge_terminal',
  'sweep_due_signals',
  'list_dispatches',
  'list_terminal_dispatches',
  // Fused operations (src/contract/fused.ts).
  'claim_and_start',
  'claim_dispatch_and_start',
  'complete_and_ack',
  'complete_and_claim_next',
] as const;

export type ScriptName = (typeof SCRIPT_NAMES)[number];

export interface LoadedScript {
  readonly name: ScriptName;
  readonly source: string;
  readonly sha: string;
}

/** Walk up from this module to the package's `lua/` directory (works from src/ and from dist/src/). */
export function findLuaDir(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    const candidate = join(dir, 'lua');
    if (existsSync(join(candidate, 'prelude.lua'))) return candidate;
    dir = dirname(dir);
  }
  throw StorageError.io('cannot find the lua/ directory of awaken-mailbox');
}

let cached: Record<ScriptName, LoadedScript> | null = null;

export function loadScripts(): Record<ScriptName, LoadedScript> {
  if (cached) return cached;
  const dir = findLuaDir();
  const prelude = readFileSync(join(dir, 'prelude.lua'), 'utf8');
  const scripts = {} as Record<ScriptName, LoadedScript>;
  for (const name of SCRIPT_NAMES) {
    const source = `${prelude}\n${readFileSync(join(dir, `${name}.lua`), 'utf8')}`;
    scripts[name] = { name, source, sha: createHash('sha1').update(source).digest('hex') };
  }
  cached = scripts;
  return scripts;
}

function isNoScript(err: unknown): boolean {
  return err instanceof Error && err.message.startsWith('NOSCRIPT');
}

export class ScriptRunner {
  readonly #redis: Redis;
  readonly #scripts: Record<ScriptName, LoadedScript>;

  constructor(redis: Redis, scripts: Record<ScriptName, LoadedScript> = loadScripts()) {
    this.#redis = redis;
    this.#scripts = scripts;
  }

  /** One round trip in the common case; two after the server lost its script cache. */
  async eval(name: ScriptName, keys: readonly string[], args: readonly string[]): Promise<unknown> {
    const script = this.#scripts[name];
    try {
      return await this.#redis.evalsha(script.sha, keys.length, ...keys, ...args);
    } catch (err) {
      if (!isNoScript(err)) throw err;
      return await this.#redis.eval(script.source, keys.length, ...keys, ...args);
    }
  }

  /** SCRIPT LOAD every script in one pipeline (also proves the connection works). */
  async preload(): Promise<void> {
    const pipeline = this.#redis.pipeline();
    for (const name of SCRIPT_NAMES) pipeline.script('LOAD', this.#scripts[name].source);
    const results = (await pipeline.exec()) ?? [];
    for (const [err] of results) if (err) throw err;
  }
}

const KINDS: readonly StorageErrorKind[] = [
  'Validation',
  'NotFound',
  'AlreadyExists',
  'VersionConflict',
  'Io',
  'Serialization',
];

/** The StorageError a script answered as `kind, detail[, expected, actual]` (malformed → Serialization). */
export function scriptError(
  name: ScriptName,
  kind: unknown,
  detail: unknown,
  expected?: unknown,
  actual?: unknown,
): StorageError {
  if (typeof kind !== 'string' || !KINDS.includes(kind as StorageErrorKind) || typeof detail !== 'string') {
    return StorageError.serialization(`script ${name}: malformed error reply`);
  }
  const versions: [number, number] | undefined =
    kind === 'VersionConflict' ? [Number(expected), Number(actual)] : undefined;
  return StorageError.fromKind(kind as StorageErrorKind, detail, versions);
}

/** Unwrap `{'ok', ...}` into its payload; turn `{'err', kind, detail, expected, actual}` into a StorageError. */
export function unwrapReply(name: ScriptName, reply: unknown): unknown[] {
  if (!Array.isArray(reply) || reply.length === 0) {
    throw StorageError.serialization(`script ${name}: unexpected reply shape`);
  }
  const [tag, ...rest] = reply as unknown[];
  if (tag === 'ok') return rest;
  if (tag === 'err') {
    const [kind, detail, expected, actual] = rest;
    throw scriptError(name, kind, detail, expected, actual);
  }
  throw StorageError.serialization(`script ${name}: unexpected reply tag`);
}
