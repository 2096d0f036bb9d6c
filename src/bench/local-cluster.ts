/**
 * A Redis Cluster and a JetStream cluster on this machine, from the local `redis-server`, `redis-cli` and
 * `nats-server` binaries: free loopback ports, a temp dir per node, every process stopped by its PID. Used by
 * the tests (test/cluster) and by `awaken-mailbox bench --local-cluster`, so a user can see a partitioned
 * namespace spread over several masters on one machine.
 *
 * Redis: `masters` masters with one replica each, `cluster-node-timeout` 1000 ms (a failover takes about two
 * seconds), `repl-diskless-sync-delay 0` (replicas sync at once), `cluster-require-full-coverage no` (the
 * other masters keep serving while one fails over), created with `redis-cli --cluster create`. Ready means:
 * every node reports `cluster_state:ok` and every master has its replica attached.
 *
 * NATS: `size` servers with JetStream in one cluster (routes between all of them). Ready means: every server
 * reports the same JetStream meta leader (its `/jsz` monitoring endpoint).
 *
 * Every wait polls a condition; none sleeps a fixed time.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';

const HOST = '127.0.0.1';
const POLL_MS = 50;

/** A free TCP port on the loopback interface (the OS picks it). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, HOST, () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

/** Distinct free ports. */
async function freePorts(count: number): Promise<number[]> {
  const ports = new Set<number>();
  while (ports.size < count) ports.add(await freePort());
  return [...ports];
}

/** Poll `check` until it holds (true) or `timeoutMs` passes (then throw naming `what`). */
export async function waitUntil(
  check: () => Promise<boolean>,
  timeoutMs: number,
  what: string,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown = null;
  while (Date.now() < deadline) {
    try {
      if (await check()) return;
    } catch (err) {
      last = err;
    }
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
  const why = last instanceof Error ? ` (last error: ${last.message})` : '';
  throw new Error(`${what}: not within ${timeoutMs} ms${why}`);
}

export function binaryOnPath(bin: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${bin}`]).status === 0;
}

function exited(child: ChildProcess): boolean {
  return child.exitCode !== null || child.signalCode !== null;
}

function waitExit(child: ChildProcess, timeoutMs: number): Promise<void> {
  if (exited(child)) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      if (child.pid !== undefined && !exited(child)) process.kill(child.pid, 'SIGKILL');
    }, timeoutMs);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
  });
}

/** One server process of a local cluster. */
export interface LocalNode {
  readonly name: string;
  readonly port: number;
  readonly dir: string;
  /** The PID of the running process (-1 when stopped). */
  readonly pid: number;
  readonly running: boolean;
  /** Send a signal by PID (SIGKILL to crash it, SIGSTOP / SIGCONT to pause it). */
  signal(sig: NodeJS.Signals): void;
  /** SIGKILL and wait until the process is gone. */
  kill(): Promise<void>;
  /** Start it again with the same port, dir and configuration. */
  restart(): Promise<void>;
}

/**
 * Every server process started here and still running, and every temp dir not yet removed: if this process
 * exits without stopping its clusters, the processes are killed and the dirs removed.
 */
const running = new Set<ChildProcess>();
const tempDirs = new Set<string>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once('exit', () => {
    for (const c of running) if (c.pid !== undefined && !exited(c)) process.kill(c.pid, 'SIGKILL');
    for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
  });
}

function track(child: ChildProcess): ChildProcess {
  installExitHook();
  running.add(child);
  child.once('exit', () => running.delete(child));
  return child;
}

/** A temp dir for a cluster, removed at exit unless `removeDir` ran first. */
function makeDir(prefix: string): string {
  installExitHook();
  const dir = mkdtempSync(join(tmpdir(), prefix));
  tempDirs.add(dir);
  return dir;
}

function removeDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
  tempDirs.delete(dir);
}

class Process implements LocalNode {
  #child: ChildProcess | null = null;
  readonly #start: () => ChildProcess;

  constructor(
    readonly name: string,
    readonly port: number,
    readonly dir: string,
    start: () => ChildProcess,
  ) {
    this.#start = () => track(start());
    this.#child = this.#start();
  }

  get pid(): number {
    return this.#child && !exited(this.#child) ? (this.#child.pid ?? -1) : -1;
  }

  get running(): boolean {
    return this.#child !== null && !exited(this.#child);
  }

  signal(sig: NodeJS.Signals): void {
    const pid = this.pid;
    if (pid > 0) process.kill(pid, sig);
  }

  async kill(): Promise<void> {
    const child = this.#child;
    if (child === null || exited(child)) return;
    if (child.pid !== undefined) process.kill(child.pid, 'SIGKILL');
    await waitExit(child, 5000);
  }

  async restart(): Promise<void> {
    await this.kill();
    this.#child = this.#start();
  }

  async stop(): Promise<void> {
    const child = this.#child;
    if (child === null || exited(child) || child.pid === undefined) return;
    try {
      process.kill(child.pid, 'SIGCONT');
    } catch {
      // Already gone.
    }
    process.kill(child.pid, 'SIGTERM');
    await waitExit(child, 5000);
  }
}

function launch(bin: string, argv: string[], cwd: string): ChildProcess {
  const child = spawn(bin, argv, { cwd, stdio: 'ignore' });
  child.unref();
  // A spawn failure (binary missing) surfaces as the readiness wait timing out; keep the error quiet here.
  child.on('error', () => undefined);
  return child;
}

// ---- Redis Cluster ----

export interface RedisClusterOptions {
  /** Masters (default 3); each gets one replica. */
  masters?: number;
  /** `cluster-node-timeout` (default 1000 ms). */
  nodeTimeoutMs?: number;
  /** How long start-up may take (default 30 s). */
  readyTimeoutMs?: number;
}

export interface LocalRedisCluster {
  /** `redis://127.0.0.1:<port>` of every node (masters and replicas): seeds for a Cluster client. */
  readonly seeds: string[];
  readonly nodes: readonly LocalNode[];
  readonly dir: string;
  /** The node currently serving `slot` as master (asks the cluster). */
  masterOfSlot(slot: number): Promise<LocalNode>;
  /** Nodes that are masters now. */
  masters(): Promise<LocalNode[]>;
  /** Resolves once every node says `cluster_state:ok` and every master has a replica in sync. */
  waitHealthy(timeoutMs?: number, among?: readonly LocalNode[]): Promise<void>;
  /** SIGTERM every node (by PID), wait for them, remove the temp dir. */
  stop(): Promise<void>;
}

async function withRedis<T>(port: number, fn: (r: Redis) => Promise<T>): Promise<T> {
  const r = new Redis({
    host: HOST,
    port,
    lazyConnect: true,
    maxRetriesPerRequest: 0,
    enableOfflineQueue: false,
    connectTimeout: 1000,
    commandTimeout: 2000,
    retryStrategy: () => null,
  });
  r.on('error', () => undefined);
  try {
    await r.connect();
    return await fn(r);
  } finally {
    r.disconnect();
  }
}

function infoField(info: string, field: string): string | undefined {
  const line = info.split('\r\n').find((l) => l.startsWith(`${field}:`));
  return line?.slice(field.length + 1);
}

/** `cluster_state:ok` on `node`, and as master a replica online, as replica the link to its master up. */
async function nodeHealthy(port: number): Promise<boolean> {
  return withRedis(port, async (r) => {
    const cluster = (await r.call('CLUSTER', 'INFO')) as string;
    if (infoField(cluster, 'cluster_state') !== 'ok') return false;
    const replication = await r.info('replication');
    const role = infoField(replication, 'role');
    if (role === 'master') return Number(infoField(replication, 'connected_slaves') ?? 0) >= 1;
    return infoField(replication, 'master_link_status') === 'up';
  });
}

/**
 * A Redis Cluster and, unless `nats` is false, a JetStream cluster, started together; if either fails to
 * start, the other is stopped before the error is thrown.
 */
export async function startClusters(
  nats: boolean,
): Promise<{ redis: LocalRedisCluster; nats: LocalNatsCluster | null }> {
  const [r, n] = await Promise.allSettled([
    startRedisCluster(),
    nats ? startNatsCluster() : Promise.resolve(null),
  ]);
  if (r.status === 'fulfilled' && n.status === 'fulfilled') return { redis: r.value, nats: n.value };
  await Promise.allSettled([
    r.status === 'fulfilled' ? r.value.stop() : null,
    n.status === 'fulfilled' ? n.value?.stop() : null,
  ]);
  throw r.status === 'rejected' ? r.reason : (n as PromiseRejectedResult).reason;
}

/** Start attempts: a port the OS called free can be taken by someone else before the server binds it. */
const START_ATTEMPTS = 3;

async function withRetries<T>(start: () => Promise<T>): Promise<T> {
  let last: unknown = null;
  for (let attempt = 0; attempt < START_ATTEMPTS; attempt++) {
    try {
      return await start();
    } catch (err) {
      last = err;
      if (!(err instanceof EarlyExit)) throw err;
    }
  }
  throw last;
}

/** A server process that ended during start-up (typically: its port was taken meanwhile). */
class EarlyExit extends Error {}

/** Poll until `ready` holds; fail at once (EarlyExit) if the process ended. */
async function waitStarted(node: Process, ready: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  let gone = false;
  await waitUntil(
    async () => {
      if (!node.running) {
        gone = true;
        return true;
      }
      return ready();
    },
    timeoutMs,
    `${node.name} on port ${node.port}`,
  );
  if (gone) throw new EarlyExit(`${node.name} exited during start-up (port ${node.port} taken?)`);
}

export function startRedisCluster(options: RedisClusterOptions = {}): Promise<LocalRedisCluster> {
  return withRetries(() => startRedisClusterOnce(options));
}

async function startRedisClusterOnce(options: RedisClusterOptions): Promise<LocalRedisCluster> {
  const masters = options.masters ?? 3;
  const nodeTimeout = options.nodeTimeoutMs ?? 1000;
  const readyTimeout = options.readyTimeoutMs ?? 30_000;
  const count = masters * 2;
  const dir = makeDir('awaken-redis-cluster-');
  const ports = await freePorts(count * 2);
  const nodes: Process[] = [];
  const stopAll = async (): Promise<void> => {
    await Promise.all(nodes.map((n) => n.stop()));
    removeDir(dir);
  };
  try {
    for (let i = 0; i < count; i++) {
      const port = ports[i] as number;
      const busPort = ports[count + i] as number;
      const nodeDir = join(dir, `node-${port}`);
      mkdirSync(nodeDir);
      const argv = [
        '--port',
        String(port),
        '--bind',
        HOST,
        '--dir',
        nodeDir,
        '--cluster-enabled',
        'yes',
        '--cluster-config-file',
        'nodes.conf',
        '--cluster-port',
        String(busPort),
        '--cluster-node-timeout',
        String(nodeTimeout),
        '--cluster-require-full-coverage',
        'no',
        '--cluster-allow-replica-migration',
        'no',
        '--repl-diskless-sync',
        'yes',
        '--repl-diskless-sync-delay',
        '0',
        '--save',
        '',
        '--appendonly',
        'no',
      ];
      nodes.push(new Process(`redis-${port}`, port, nodeDir, () => launch('redis-server', argv, nodeDir)));
    }
    await Promise.all(
      nodes.map((n) =>
        waitStarted(n, () => withRedis(n.port, async (r) => (await r.ping()) === 'PONG'), readyTimeout),
      ),
    );
    const create = spawnSync(
      'redis-cli',
      [
        '--cluster',
        'create',
        ...nodes.map((n) => `${HOST}:${n.port}`),
        '--cluster-replicas',
        '1',
        '--cluster-yes',
      ],
      { encoding: 'utf8', timeout: readyTimeout },
    );
    if (create.status !== 0) {
      throw new Error(`redis-cli --cluster create failed: ${create.stderr || create.stdout}`);
    }
    const cluster = localRedisCluster(dir, nodes, stopAll);
    await cluster.waitHealthy(readyTimeout);
    return cluster;
  } catch (err) {
    await stopAll();
    throw err;
  }
}

function localRedisCluster(
  dir: string,
  nodes: readonly Process[],
  stopAll: () => Promise<void>,
): LocalRedisCluster {
  const byPort = new Map(nodes.map((n) => [n.port, n]));
  const anyRunning = (): Process => {
    const n = nodes.find((x) => x.running);
    if (!n) throw new Error('no node of the cluster is running');
    return n;
  };
  return {
    seeds: nodes.map((n) => `redis://${HOST}:${n.port}`),
    nodes,
    dir,
    async masterOfSlot(slot: number): Promise<LocalNode> {
      const slots = (await withRedis(anyRunning().port, (r) => r.call('CLUSTER', 'SLOTS'))) as [
        number,
        number,
        [string, number, ...unknown[]],
      ][];
      const range = slots.find(([from, to]) => slot >= from && slot <= to);
      const node = range ? byPort.get(Number(range[2][1])) : undefined;
      if (!node) throw new Error(`no master serves slot ${slot}`);
      return node;
    },
    async masters(): Promise<LocalNode[]> {
      const out: LocalNode[] = [];
      for (const n of nodes) {
        if (!n.running) continue;
        const role = await withRedis(n.port, async (r) => infoField(await r.info('replication'), 'role'));
        if (role === 'master') out.push(n);
      }
      return out;
    },
    async waitHealthy(timeoutMs = 30_000, among: readonly LocalNode[] = nodes): Promise<void> {
      await waitUntil(
        async () => {
          for (const n of among) if (!n.running || !(await nodeHealthy(n.port))) return false;
          return true;
        },
        timeoutMs,
        'redis cluster healthy (cluster_state:ok, every master with a replica in sync)',
      );
    },
    stop: stopAll,
  };
}

// ---- NATS JetStream cluster ----

export interface NatsClusterOptions {
  /** Servers (default 3). */
  size?: number;
  readyTimeoutMs?: number;
}

export interface LocalNatsCluster {
  /** `nats://127.0.0.1:<port>` of every server (a client takes them all as its server list). */
  readonly urls: string[];
  readonly nodes: readonly LocalNode[];
  readonly dir: string;
  /** The server (by its `-n` name) running `stream`'s leader now. */
  streamLeader(stream: string): Promise<LocalNode>;
  /** Resolves once every running server agrees on a JetStream meta leader. */
  waitMetaLeader(timeoutMs?: number): Promise<void>;
  stop(): Promise<void>;
}

interface Jsz {
  meta_cluster?: { leader?: string };
  account_details?: { stream_detail?: { name: string; cluster?: { leader?: string } }[] }[];
}

async function jsz(monitorPort: number, query = ''): Promise<Jsz> {
  const res = await fetch(`http://${HOST}:${monitorPort}/jsz${query}`, { signal: AbortSignal.timeout(2000) });
  return (await res.json()) as Jsz;
}

export function startNatsCluster(options: NatsClusterOptions = {}): Promise<LocalNatsCluster> {
  return withRetries(() => startNatsClusterOnce(options));
}

async function startNatsClusterOnce(options: NatsClusterOptions): Promise<LocalNatsCluster> {
  const size = options.size ?? 3;
  const readyTimeout = options.readyTimeoutMs ?? 30_000;
  const dir = makeDir('awaken-nats-cluster-');
  const ports = await freePorts(size * 3);
  const clientPorts = ports.slice(0, size);
  const routePorts = ports.slice(size, size * 2);
  const monitorPorts = ports.slice(size * 2);
  const nodes: Process[] = [];
  const monitorOf = new Map<string, number>();
  const stopAll = async (): Promise<void> => {
    await Promise.all(nodes.map((n) => n.stop()));
    removeDir(dir);
  };
  try {
    for (let i = 0; i < size; i++) {
      const name = `n${i + 1}`;
      const nodeDir = join(dir, name);
      mkdirSync(nodeDir);
      const routes = routePorts
        .filter((_, j) => j !== i)
        .map((p) => `nats://${HOST}:${p}`)
        .join(',');
      const argv = [
        '-a',
        HOST,
        '-p',
        String(clientPorts[i]),
        '-m',
        String(monitorPorts[i]),
        '-n',
        name,
        '-js',
        '-sd',
        join(nodeDir, 'js'),
        '--cluster_name',
        'awaken-local',
        '--cluster',
        `nats://${HOST}:${routePorts[i]}`,
        '--routes',
        routes,
      ];
      monitorOf.set(name, monitorPorts[i] as number);
      nodes.push(
        new Process(name, clientPorts[i] as number, nodeDir, () => launch('nats-server', argv, nodeDir)),
      );
    }
    const cluster = localNatsCluster(dir, nodes, monitorOf, stopAll);
    await Promise.all(
      nodes.map((n) =>
        waitStarted(
          n,
          async () => (await jsz(monitorOf.get(n.name) as number).catch(() => null)) !== null,
          readyTimeout,
        ),
      ),
    );
    await cluster.waitMetaLeader(readyTimeout);
    return cluster;
  } catch (err) {
    await stopAll();
    throw err;
  }
}

function localNatsCluster(
  dir: string,
  nodes: readonly Process[],
  monitorOf: ReadonlyMap<string, number>,
  stopAll: () => Promise<void>,
): LocalNatsCluster {
  const byName = new Map(nodes.map((n) => [n.name, n]));
  return {
    urls: nodes.map((n) => `nats://${HOST}:${n.port}`),
    nodes,
    dir,
    async streamLeader(stream: string): Promise<LocalNode> {
      for (const n of nodes) {
        if (!n.running) continue;
        const info = await jsz(monitorOf.get(n.name) as number, '?streams=true').catch(() => null);
        for (const account of info?.account_details ?? []) {
          for (const s of account.stream_detail ?? []) {
            const leader = s.cluster?.leader;
            if (s.name === stream && leader && byName.has(leader)) return byName.get(leader) as LocalNode;
          }
        }
      }
      throw new Error(`no leader known for stream ${stream}`);
    },
    async waitMetaLeader(timeoutMs = 30_000): Promise<void> {
      await waitUntil(
        async () => {
          const leaders = new Set<string>();
          for (const n of nodes) {
            if (!n.running) continue;
            const leader = (await jsz(monitorOf.get(n.name) as number)).meta_cluster?.leader;
            if (!leader) return false;
            leaders.add(leader);
          }
          return leaders.size === 1;
        },
        timeoutMs,
        'JetStream meta leader elected',
      );
    },
    stop: stopAll,
  };
}
