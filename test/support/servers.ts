/**
 * Finds Redis and NATS (JetStream) servers for tests, in this order (design.md §4):
 *   1. REDIS_URL / NATS_URL
 *   2. the local defaults 127.0.0.1:6379 and 127.0.0.1:4222
 *   3. `redis-server` / `nats-server` binaries on PATH, started on free ports in a temp dir
 *   4. testcontainers, when Docker is available
 *   5. otherwise a clear error naming these options.
 * Fault tests use `spawnRedis` / `spawnNats` directly: their own processes, stopped by PID.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tcpProbe } from '../../src/util/tcp-probe.js';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';

export interface SpawnedServer {
  url: string;
  host: string;
  port: number;
  pid: number;
  dir: string;
  /** SIGTERM then wait for exit; removes the temp dir unless `keepDir`. */
  stop(opts?: { keepDir?: boolean }): Promise<void>;
  /** Send a signal (SIGKILL, SIGSTOP, SIGCONT) by PID. */
  signal(sig: NodeJS.Signals): void;
  /**
   * Start the server again on the same port and dir. A running server is stopped first with `signal`:
   * SIGKILL (default, a crash: unflushed state is lost) or SIGTERM (a clean shutdown).
   */
  restart(opts?: { signal?: 'SIGKILL' | 'SIGTERM' }): Promise<void>;
  readonly process: ChildProcess;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

async function redisAnswers(host: string, port: number, password?: string): Promise<boolean> {
  const cmd = password ? `AUTH ${password}\r\nPING\r\n` : 'PING\r\n';
  const reply = await tcpProbe(host, port, cmd);
  return (reply !== null && reply.includes('PONG')) || (reply !== null && reply.startsWith('+OK'));
}

async function natsJetStreamAnswers(host: string, port: number): Promise<boolean> {
  const info = await tcpProbe(host, port, null);
  if (!info || !info.startsWith('INFO ')) return false;
  try {
    const json = JSON.parse(info.slice(5, info.indexOf('\r\n'))) as { jetstream?: boolean };
    return json.jetstream === true;
  } catch {
    return false;
  }
}

function onPath(bin: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${bin}`]).status === 0;
}

async function waitFor(check: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`${what} did not become ready within ${timeoutMs} ms`);
}

function waitExit(child: ChildProcess, timeoutMs: number): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
    }, timeoutMs);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
  });
}

interface SpawnSpec {
  bin: string;
  args: (port: number, dir: string) => string[];
  ready: (port: number) => Promise<boolean>;
  url: (port: number) => string;
}

async function spawnServer(spec: SpawnSpec, name: string): Promise<SpawnedServer> {
  const dir = mkdtempSync(join(tmpdir(), `awaken-${name}-`));
  const port = await freePort();
  let child: ChildProcess;
  const start = async (): Promise<void> => {
    child = spawn(spec.bin, spec.args(port, dir), { cwd: dir, stdio: 'ignore', detached: false });
    child.unref();
    await waitFor(() => spec.ready(port), 15_000, `${name} on port ${port}`);
  };
  await start();
  const server: SpawnedServer = {
    url: spec.url(port),
    host: '127.0.0.1',
    port,
    dir,
    get pid() {
      return child.pid ?? -1;
    },
    get process() {
      return child;
    },
    async stop(opts) {
      if (child.exitCode === null && child.signalCode === null) {
        try {
          process.kill(child.pid!, 'SIGCONT');
        } catch {
          /* already gone */
        }
        child.kill('SIGTERM');
        await waitExit(child, 5000);
      }
      if (!opts?.keepDir) rmSync(dir, { recursive: true, force: true });
    },
    signal(sig) {
      if (child.pid) process.kill(child.pid, sig);
    },
    async restart(opts) {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill(opts?.signal ?? 'SIGKILL');
        await waitExit(child, 5000);
      }
      await start();
    },
  };
  return server;
}

export interface RedisSpawnOptions {
  /** AOF with `appendfsync always`. */
  appendOnly?: boolean;
  requirePass?: string;
  extraArgs?: string[];
}

export function spawnRedis(opts: RedisSpawnOptions = {}): Promise<SpawnedServer> {
  return spawnServer(
    {
      bin: 'redis-server',
      args: (port, dir) => [
        '--port',
        String(port),
        '--bind',
        '127.0.0.1',
        '--dir',
        dir,
        '--save',
        '',
        '--appendonly',
        opts.appendOnly ? 'yes' : 'no',
        ...(opts.appendOnly ? ['--appendfsync', 'always'] : []),
        ...(opts.requirePass ? ['--requirepass', opts.requirePass] : []),
        ...(opts.extraArgs ?? []),
      ],
      ready: (port) => redisAnswers('127.0.0.1', port, opts.requirePass),
      url: (port) => `redis://127.0.0.1:${port}`,
    },
    'redis',
  );
}

export interface NatsSpawnOptions {
  user?: string;
  pass?: string;
  token?: string;
  extraArgs?: string[];
}

export function spawnNats(opts: NatsSpawnOptions = {}): Promise<SpawnedServer> {
  return spawnServer(
    {
      bin: 'nats-server',
      args: (port, dir) => [
        '-a',
        '127.0.0.1',
        '-p',
        String(port),
        '-js',
        '-sd',
        join(dir, 'js'),
        ...(opts.user ? ['--user', opts.user, '--pass', opts.pass ?? ''] : []),
        ...(opts.token ? ['--auth', opts.token] : []),
        ...(opts.extraArgs ?? []),
      ],
      ready: (port) => natsJetStreamAnswers('127.0.0.1', port),
      url: (port) => `nats://127.0.0.1:${port}`,
    },
    'nats',
  );
}

function parseHostPort(url: string, defaultPort: number): { host: string; port: number } {
  const u = new URL(url.includes('://') ? url : `tcp://${url}`);
  return { host: u.hostname || '127.0.0.1', port: u.port ? Number(u.port) : defaultPort };
}

const spawnedForSession: SpawnedServer[] = [];
process.once('exit', () => {
  for (const s of spawnedForSession) {
    try {
      s.signal('SIGKILL');
    } catch {
      /* gone */
    }
  }
});

async function viaTestcontainers(
  image: string,
  port: number,
  cmd: string[],
  scheme: string,
): Promise<string | null> {
  try {
    const { GenericContainer } = await import('testcontainers');
    const container = await new GenericContainer(image).withCommand(cmd).withExposedPorts(port).start();
    return `${scheme}://${container.getHost()}:${container.getMappedPort(port)}`;
  } catch {
    return null;
  }
}

let redisPromise: Promise<string> | null = null;
let natsPromise: Promise<string> | null = null;

const HOW_TO = `Set REDIS_URL / NATS_URL, run Redis on 127.0.0.1:6379 and nats-server -js on 127.0.0.1:4222, put redis-server / nats-server on PATH, or install Docker (testcontainers).`;

/** A Redis URL for tests (memoized per process). */
export function redisUrl(): Promise<string> {
  redisPromise ??= (async () => {
    const env = process.env.REDIS_URL;
    if (env) return env;
    if (await redisAnswers('127.0.0.1', 6379)) return 'redis://127.0.0.1:6379';
    if (onPath('redis-server')) {
      const s = await spawnRedis();
      spawnedForSession.push(s);
      return s.url;
    }
    const tc = await viaTestcontainers('redis:7', 6379, ['redis-server', '--save', ''], 'redis');
    if (tc) return tc;
    throw new Error(`No Redis server found. ${HOW_TO}`);
  })();
  return redisPromise;
}

/** A NATS URL with JetStream enabled for tests (memoized per process). */
export function natsUrl(): Promise<string> {
  natsPromise ??= (async () => {
    const env = process.env.NATS_URL;
    if (env) return env;
    if (await natsJetStreamAnswers('127.0.0.1', 4222)) return 'nats://127.0.0.1:4222';
    if (onPath('nats-server')) {
      const s = await spawnNats();
      spawnedForSession.push(s);
      return s.url;
    }
    const tc = await viaTestcontainers('nats:2.10-alpine', 4222, ['-js'], 'nats');
    if (tc) return tc;
    throw new Error(`No NATS server with JetStream found. ${HOW_TO}`);
  })();
  return natsPromise;
}

export { parseHostPort, redisAnswers, natsJetStreamAnswers };

/** A namespace unique to this test file and run: letters, digits, `_`, `-` (design.md §2). */
export function testNamespace(label: string): string {
  const clean = label.replace(/[^A-Za-z0-9_-]/g, '-').slice(0, 24);
  return `t-${clean}-${randomBytes(4).toString('hex')}`;
}
