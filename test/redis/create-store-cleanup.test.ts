/**
 * A `createMailboxStore` that fails closes whatever it opened (issue: a `nats:` URL pointing at a listener that is
 * not NATS rejected after the connect timeout but left the socket open, so the process never exited).
 *
 * Each case runs the create in a child process (fixtures/create-store-fail.ts) that does nothing after the
 * rejection: the test waits for the child's `exit` event, which only comes when nothing is left open.
 */
import { spawn } from 'node:child_process';
import { createServer } from 'node:net';
import type { Server, Socket } from 'node:net';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { redisUrl, testNamespace } from '../support/servers.js';

const FIXTURE = fileURLToPath(new URL('./fixtures/create-store-fail.ts', import.meta.url));
const ROOT = fileURLToPath(new URL('../../', import.meta.url));
/** Far above the 500 ms connect timeout the cases use (plus tsx start-up on a busy machine). */
const EXIT_WITHIN_MS = 45_000;

/** A plain TCP listener that accepts connections and never says anything (not Redis, not NATS). */
let silent: Server;
let silentPort: number;
const accepted = new Set<Socket>();
let redis: string;

beforeAll(async () => {
  redis = await redisUrl();
  silent = createServer((socket) => {
    accepted.add(socket);
    socket.on('error', () => undefined);
    socket.on('close', () => accepted.delete(socket));
  });
  await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
  const address = silent.address();
  silentPort = typeof address === 'object' && address !== null ? address.port : 0;
});

afterAll(async () => {
  for (const socket of accepted) socket.destroy();
  await new Promise<void>((resolve) => silent?.close(() => resolve()));
});

interface ChildResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  output: { kind?: string | null; message?: string; created?: boolean } | null;
  stderr: string;
}

function runCreate(options: Record<string, unknown>): Promise<ChildResult> {
  const child = spawn(process.execPath, ['--import', 'tsx', FIXTURE, JSON.stringify(options)], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(
        new Error(
          `the child did not exit within ${EXIT_WITHIN_MS} ms after createMailboxStore: something it opened ` +
            `was left open (child said: ${stdout.trim() || '(nothing)'}; stderr: ${stderr.trim()})`,
        ),
      );
    }, EXIT_WITHIN_MS);
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      const line = stdout.trim().split('\n')[0];
      resolve({ code, signal, output: line ? (JSON.parse(line) as ChildResult['output']) : null, stderr });
    });
  });
}

describe('a failed createMailboxStore leaves nothing open', () => {
  it(
    'nats: a listener that is not NATS → Io naming the handshake, and the process exits by itself',
    { timeout: EXIT_WITHIN_MS + 15_000 },
    async () => {
      const r = await runCreate({
        redis,
        nats: `nats://127.0.0.1:${silentPort}`,
        namespace: testNamespace('create-fail'),
        commandTimeoutMs: 500,
      });
      expect(r.code, r.stderr).toBe(0);
      expect(r.output?.kind).toBe('Io');
      expect(r.output?.message).toContain(`NATS at nats://127.0.0.1:${silentPort}`);
      expect(r.output?.message).toMatch(/no NATS handshake within 500 ms/);
    },
  );

  it(
    'redis: a listener that is not Redis → Io naming the server, and the process exits by itself',
    { timeout: EXIT_WITHIN_MS + 15_000 },
    async () => {
      const r = await runCreate({
        redis: `redis://127.0.0.1:${silentPort}`,
        namespace: testNamespace('create-fail'),
        commandTimeoutMs: 500,
      });
      expect(r.code, r.stderr).toBe(0);
      expect(r.output?.kind).toBe('Io');
      expect(r.output?.message).toContain(`Redis at 127.0.0.1:${silentPort} is unreachable`);
    },
  );
});
