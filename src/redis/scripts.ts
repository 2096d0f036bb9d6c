/**
 * Lua scripts (lua/*.lua): `prelude.lua` holds the shared operations, each other file one store method's
 * body. On Redis 7+ they are loaded ONCE per server as a Redis Functions library (`FUNCTION LOAD`) and called
 * with `FCALL`: the prelude then runs once at load time instead of on every call. The library and function
 * names carry a hash of the sources, so nodes running different versions of this package never call each
 * other's code; a server that lost its functions (restart without persistence, `FUNCTION FLUSH`, a new
 * failover target) answers "Function not found" and the library is loaded again before the call is re-sent.
 * Servers without Functions get the same code as one EVAL script per method (prelude + body), called with
 * EVALSHA and re-sent with EVAL on NOSCRIPT. Replies use the envelope described in lua/README.md.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { StorageError } from '../contract/errors.js';
import type { StorageErrorKind } from '../contract/errors.js';
import { isCluster, masterConnections, type RedisClient } from './cluster.js';

export const SCRIPT_NAMES = [
  'enqueue',
  'enqueue_many',
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
  'complete_and_claim_next_many',
  // Hand-back additions (src/contract/fused.ts `HandBackMailboxStore`).
  'release_claim',
  // Dead-letter additions (src/contract/dead-letters.ts).
  'requeue_dead_letter',
  'purge_dead_letters',
  // Cancel requests (src/contract/cancel-requests.ts).
  'request_run_cancel',
] as const;

export type ScriptName = (typeof SCRIPT_NAMES)[number];

export interface LoadedScript {
  readonly name: ScriptName;
  /** The EVAL form: prelude + body, bound to the call's KEYS / ARGV. */
  readonly source: string;
  readonly sha: string;
  /** The name this method is registered under in the Functions library. */
  readonly functionName: string;
}

export interface LuaLibrary {
  /** `awaken_mailbox_<version>`. */
  readonly name: string;
  /** The `FUNCTION LOAD` source: the prelude once, then one registered function per method. */
  readonly source: string;
  readonly scripts: Readonly<Record<ScriptName, LoadedScript>>;
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

let cached: LuaLibrary | null = null;

export function loadLibrary(): LuaLibrary {
  if (cached) return cached;
  const dir = findLuaDir();
  const prelude = readFileSync(join(dir, 'prelude.lua'), 'utf8');
  const bodies = SCRIPT_NAMES.map((name) => [name, readFileSync(join(dir, `${name}.lua`), 'utf8')] as const);
  const version = createHash('sha1')
    .update(prelude)
    .update(bodies.map(([name, body]) => `\0${name}\0${body}`).join(''))
    .digest('hex')
    .slice(0, 16);
  const libraryName = `awaken_mailbox_${version}`;
  const scripts = {} as Record<ScriptName, LoadedScript>;
  const registrations: string[] = [];
  for (const [name, body] of bodies) {
    // The EVAL form keeps the server's KEYS / ARGV before the prelude's locals of the same names shadow them.
    const source = `local KEYS_IN, ARGV_IN = KEYS, ARGV\n${prelude}\nbegin(KEYS_IN, ARGV_IN)\n${body}`;
    const functionName = `awaken_${version}_${name}`;
    scripts[name] = {
      name,
      source,
      sha: createHash('sha1').update(source).digest('hex'),
      functionName,
    };
    registrations.push(
      `redis.register_function('${functionName}', function(keys, argv)\nbegin(keys, argv)\n${body}\nend)`,
    );
  }
  cached = {
    name: libraryName,
    source: `#!lua name=${libraryName}\n${prelude}\n${registrations.join('\n')}\n`,
    scripts,
  };
  return cached;
}

function startsWith(err: unknown, prefix: string): boolean {
  return err instanceof Error && err.message.startsWith(prefix);
}

const FUNCTION_MISSING = 'ERR Function not found';

/** How the runner calls the Lua code: a Functions library (Redis 7+) or EVAL scripts. */
export type LuaMode = 'functions' | 'eval';

/**
 * Runs the library's functions. On a Redis Cluster every master needs the library (a `FUNCTION LOAD`
 * through the Cluster client reaches one random node): it is loaded on each master, and again on every
 * master when one answers "Function not found" (a node added or replaced after the load; replicas inherit
 * functions from their master, so a failover alone keeps them).
 */
export class ScriptRunner {
  readonly #redis: RedisClient;
  readonly #library: LuaLibrary;
  #mode: LuaMode;

  constructor(redis: RedisClient, mode: LuaMode = 'functions', library: LuaLibrary = loadLibrary()) {
    this.#redis = redis;
    this.#library = library;
    this.#mode = mode;
  }

  get mode(): LuaMode {
    return this.#mode;
  }

  /** One round trip in the common case; two more after the server lost its functions or script cache. */
  async eval(name: ScriptName, keys: readonly string[], args: readonly string[]): Promise<unknown> {
    const script = this.#library.scripts[name];
    if (this.#mode === 'functions') {
      try {
        return await this.#redis.fcall(script.functionName, keys.length, ...keys, ...args);
      } catch (err) {
        if (!startsWith(err, FUNCTION_MISSING)) throw err;
        await this.#loadLibrary();
        return await this.#redis.fcall(script.functionName, keys.length, ...keys, ...args);
      }
    }
    try {
      return await this.#redis.evalsha(script.sha, keys.length, ...keys, ...args);
    } catch (err) {
      if (!startsWith(err, 'NOSCRIPT')) throw err;
      return await this.#redis.eval(script.source, keys.length, ...keys, ...args);
    }
  }

  /**
   * Load the Lua code (also proves the connection works). A server without Functions (before Redis 7)
   * switches this runner to EVAL scripts.
   */
  async preload(): Promise<void> {
    if (this.#mode === 'functions') {
      try {
        await this.#loadLibrary();
        return;
      } catch (err) {
        if (!/unknown command|unknown subcommand/i.test(err instanceof Error ? err.message : '')) throw err;
        this.#mode = 'eval';
      }
    }
    // EVALSHA falls back to EVAL on NOSCRIPT, so this only saves the first call per node a round trip.
    await Promise.all(
      masterConnections(this.#redis).map(async (node) => {
        const pipeline = node.pipeline();
        for (const name of SCRIPT_NAMES) pipeline.script('LOAD', this.#library.scripts[name].source);
        const results = (await pipeline.exec()) ?? [];
        for (const [err] of results) if (err) throw err;
      }),
    );
  }

  /**
   * `FUNCTION LOAD` on the server, or on every master of a Cluster; a library of the same version already
   * there (another node loaded it) is fine.
   */
  async #loadLibrary(): Promise<void> {
    const load = async (node: RedisClient): Promise<void> => {
      try {
        await node.function('LOAD', this.#library.source);
      } catch (err) {
        if (!/already exists/i.test(err instanceof Error ? err.message : '')) throw err;
      }
    };
    if (!isCluster(this.#redis)) return load(this.#redis);
    const masters = masterConnections(this.#redis);
    if (masters.length === 0) throw StorageError.io('redis cluster: no master node known yet');
    await Promise.all(masters.map(load));
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
