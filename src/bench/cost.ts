/**
 * What one measured phase of a bench run costs, per dispatch: CPU of Redis, nats-server, the coordinator and the
 * node processes, and the commands Redis executed. Every figure is a delta between a sample taken just before the
 * workload starts and one taken right after the last dispatch finished, so start-up (module loading, JIT,
 * connecting) and teardown are not charged.
 *
 * Sources: node processes answer a `cpu` request with their `process.cpuUsage()`; the coordinator reads its
 * own; Redis from `INFO cpu` (`used_cpu_sys` + `used_cpu_user`) and `INFO commandstats`; nats-server from
 * /proc/<pid>/stat when it is a local process (found by its listening port), else from the monitoring endpoint's
 * `/varz` `cpu` (a percentage, sampled every second and integrated), else unknown (null). Redis and nats-server
 * figures are deltas of the whole server: anything else using it during the phase is counted too.
 */
import { readFile, readdir, readlink } from 'node:fs/promises';
import { Redis } from 'ioredis';
import { hostPort } from './backend.js';
import type { NodeHandle } from './nodes.js';

/** CPU microseconds per dispatch of each party; null when it is not part of the phase or cannot be measured. */
export interface CpuPerDispatch {
  redis: number | null;
  nats: number | null;
  coordinator: number;
  nodes: number | null;
}

export interface RedisCommandShare {
  command: string;
  per_dispatch: number;
  usec_per_call: number;
}

/** From `INFO commandstats` deltas; commands run inside scripts count like those clients send. */
export interface RedisCommandsPerDispatch {
  /** Every command the server executed (INFO itself excluded). */
  total: number;
  /** EVALSHA + EVAL + FCALL (and their read-only forms). */
  scripts: number;
  /** Mean server time of one script call, the commands it ran included; null without script calls. */
  script_usec_per_call: number | null;
  /** The most frequent commands other than script calls. */
  top: RedisCommandShare[];
}

export interface PhaseCost {
  cpu_us_per_dispatch: CpuPerDispatch;
  redis_commands_per_dispatch: RedisCommandsPerDispatch | null;
  /** What the figures do not cover, one sentence each. */
  notes: string[];
}

const SCRIPT_COMMANDS = new Set(['evalsha', 'eval', 'evalsha_ro', 'eval_ro', 'fcall', 'fcall_ro']);
const TOP_COMMANDS = 10;
const NODE_CPU_TIMEOUT_MS = 2000;
const VARZ_TIMEOUT_MS = 500;
const VARZ_SAMPLE_MS = 1000;
/** The default nats-server monitoring port (`-m 8222`). */
const NATS_MONITOR_PORT = 8222;
/** /proc/<pid>/stat counts in USER_HZ, which Linux fixes at 100 for user space. */
const PROC_TICKS_PER_S = 100;

// ---- Redis INFO ----

/** `field:value` lines of an INFO reply (section headers and blank lines skipped). */
export function parseInfo(text: string): Map<string, string> {
  const fields = new Map<string, string>();
  for (const line of text.split(/\r?\n/)) {
    if (line === '' || line.startsWith('#')) continue;
    const colon = line.indexOf(':');
    if (colon > 0) fields.set(line.slice(0, colon), line.slice(colon + 1));
  }
  return fields;
}

/** Seconds of CPU the Redis server process used so far (all its threads, user + system); null if absent. */
export function redisCpuSeconds(info: Map<string, string>): number | null {
  const sys = Number(info.get('used_cpu_sys'));
  const user = Number(info.get('used_cpu_user'));
  return Number.isFinite(sys) && Number.isFinite(user) ? sys + user : null;
}

export interface CommandStat {
  calls: number;
  usec: number;
}

/** `cmdstat_<name>:calls=…,usec=…,…` lines of `INFO commandstats`, by lower-case command name. */
export function parseCommandStats(text: string): Map<string, CommandStat> {
  const stats = new Map<string, CommandStat>();
  for (const [key, value] of parseInfo(text)) {
    if (!key.startsWith('cmdstat_')) continue;
    const calls = /(?:^|,)calls=(\d+)/.exec(value);
    const usec = /(?:^|,)usec=(\d+)/.exec(value);
    if (calls && usec) {
      stats.set(key.slice('cmdstat_'.length).toLowerCase(), {
        calls: Number(calls[1]),
        usec: Number(usec[1]),
      });
    }
  }
  return stats;
}

const round = (v: number, digits: number): number => {
  const f = 10 ** digits;
  return Math.round(v * f) / f;
};

/** Per-dispatch command counts between two `INFO commandstats` samples. */
export function commandsPerDispatch(
  before: ReadonlyMap<string, CommandStat>,
  after: ReadonlyMap<string, CommandStat>,
  dispatches: number,
): RedisCommandsPerDispatch {
  let total = 0;
  let scriptCalls = 0;
  let scriptUsec = 0;
  const others: { command: string; calls: number; usec: number }[] = [];
  for (const [command, a] of after) {
    if (command === 'info') continue; // the samples themselves
    const b = before.get(command) ?? { calls: 0, usec: 0 };
    // A CONFIG RESETSTAT during the phase makes a counter go backwards: count what came after the reset.
    const calls = a.calls >= b.calls ? a.calls - b.calls : a.calls;
    const usec = a.usec >= b.usec ? a.usec - b.usec : a.usec;
    if (calls === 0) continue;
    total += calls;
    if (SCRIPT_COMMANDS.has(command)) {
      scriptCalls += calls;
      scriptUsec += usec;
    } else {
      others.push({ command, calls, usec });
    }
  }
  others.sort((x, y) => y.calls - x.calls || x.command.localeCompare(y.command));
  const n = Math.max(dispatches, 1);
  return {
    total: round(total / n, 2),
    scripts: round(scriptCalls / n, 2),
    script_usec_per_call: scriptCalls > 0 ? round(scriptUsec / scriptCalls, 1) : null,
    top: others.slice(0, TOP_COMMANDS).map((o) => ({
      command: o.command,
      per_dispatch: round(o.calls / n, 2),
      usec_per_call: round(o.usec / o.calls, 2),
    })),
  };
}

interface RedisSample {
  cpuS: number | null;
  commands: Map<string, CommandStat>;
}

async function sampleRedis(client: Redis): Promise<RedisSample> {
  const cpu = await client.info('cpu');
  const commands = await client.info('commandstats');
  return { cpuS: redisCpuSeconds(parseInfo(cpu)), commands: parseCommandStats(commands) };
}

// ---- nats-server ----

/** Inodes of the sockets listening on `port` (IPv4 and IPv6), from /proc/net/tcp{,6}. */
async function listeningInodes(port: number): Promise<Set<string>> {
  const inodes = new Set<string>();
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const cols = line.trim().split(/\s+/);
      const local = cols[1];
      if (!local || cols[3] !== '0A') continue; // 0A: LISTEN
      if (parseInt(local.slice(local.lastIndexOf(':') + 1), 16) === port && cols[9]) inodes.add(cols[9]);
    }
  }
  return inodes;
}

/** The local process listening on TCP `port` and its command name, or null (not local, not visible to us). */
export async function findListenerProcess(port: number): Promise<{ pid: number; comm: string } | null> {
  const inodes = await listeningInodes(port);
  if (inodes.size === 0) return null;
  const targets = new Set([...inodes].map((inode) => `socket:[${inode}]`));
  let pids: string[];
  try {
    pids = (await readdir('/proc')).filter((name) => /^\d+$/.test(name));
  } catch {
    return null;
  }
  for (const pid of pids) {
    let fds: string[];
    try {
      fds = await readdir(`/proc/${pid}/fd`);
    } catch {
      continue; // gone, or not ours to read
    }
    for (const fd of fds) {
      const link = await readlink(`/proc/${pid}/fd/${fd}`).catch(() => '');
      if (targets.has(link)) {
        const comm = (await readFile(`/proc/${pid}/comm`, 'utf8').catch(() => '')).trim();
        return { pid: Number(pid), comm };
      }
    }
  }
  return null;
}

/** User + system CPU microseconds a local process used so far, from /proc/<pid>/stat; null if unreadable. */
export async function procCpuMicros(pid: number): Promise<number | null> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may hold spaces and parentheses: count fields after its closing one.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const utime = Number(fields[11]);
    const stime = Number(fields[12]);
    if (!Number.isFinite(utime) || !Number.isFinite(stime)) return null;
    return ((utime + stime) * 1_000_000) / PROC_TICKS_PER_S;
  } catch {
    return null;
  }
}

const isLoopback = (host: string): boolean => host === 'localhost' || host === '::1' || /^127\./.test(host);

async function varzCpuPercent(url: string): Promise<number | null> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(VARZ_TIMEOUT_MS) });
    if (!res.ok) return null;
    const body = (await res.json()) as { cpu?: unknown };
    return typeof body.cpu === 'number' && Number.isFinite(body.cpu) ? body.cpu : null;
  } catch {
    return null;
  }
}

/** A cumulative CPU counter for nats-server, in microseconds. */
interface NatsCpuSource {
  /** How the figure is obtained, for the notes. */
  readonly how: string;
  read(): Promise<number | null>;
  stop(): void;
}

/** `/varz` gives the CPU percentage of about the last second: sample it every second and integrate. */
class VarzIntegrator implements NatsCpuSource {
  readonly how: string;
  private micros = 0;
  private lastAt = performance.now();
  private lastPercent: number;
  private readonly timer: NodeJS.Timeout;
  private failed = false;

  constructor(
    private readonly url: string,
    firstPercent: number,
  ) {
    this.how = `approximate: ${url} cpu % sampled every ${VARZ_SAMPLE_MS / 1000} s`;
    this.lastPercent = firstPercent;
    this.timer = setInterval(() => void this.tick(), VARZ_SAMPLE_MS);
    this.timer.unref();
  }

  private async tick(): Promise<void> {
    const percent = await varzCpuPercent(this.url);
    const now = performance.now();
    if (percent === null) this.failed = true;
    // The percentage describes the interval that just ended: charge it to that interval.
    const p = percent ?? this.lastPercent;
    this.micros += (p / 100) * (now - this.lastAt) * 1000;
    this.lastAt = now;
    this.lastPercent = p;
  }

  async read(): Promise<number | null> {
    await this.tick();
    return this.failed ? null : this.micros;
  }

  stop(): void {
    clearInterval(this.timer);
  }
}

async function natsCpuSource(natsUrl: string): Promise<{ source: NatsCpuSource | null; note: string }> {
  const { host, port } = hostPort(natsUrl, 4222);
  if (isLoopback(host)) {
    const proc = await findListenerProcess(port);
    // Behind a port forward (a container), the listener is a proxy, not the server.
    if (proc && proc.comm.includes('nats')) {
      return {
        source: { how: `/proc/${proc.pid}/stat`, read: () => procCpuMicros(proc.pid), stop: () => {} },
        note: '',
      };
    }
  }
  const varz = `http://${host.includes(':') ? `[${host}]` : host}:${NATS_MONITOR_PORT}/varz`;
  const first = await varzCpuPercent(varz);
  if (first !== null) return { source: new VarzIntegrator(varz, first), note: '' };
  return {
    source: null,
    note: `nats-server CPU unknown: not a local process and no monitoring endpoint at ${varz}`,
  };
}

// ---- the meter ----

export interface CostMeterOptions {
  /** The Redis the phase uses, or null. */
  redis: string | null;
  /** The NATS server the phase uses, or null. */
  nats: string | null;
  /** Node processes to ask for their CPU; null when the nodes run inside the coordinator process. */
  nodes: readonly NodeHandle[] | null;
}

const sumCpu = (u: NodeJS.CpuUsage): number => u.user + u.system;

/**
 * Samples every source at `begin()` and again at `end()`. Failures to measure never fail the run: the figure
 * becomes null and a note says why.
 */
export class CostMeter {
  private constructor(
    private readonly opts: CostMeterOptions,
    private readonly redis: Redis | null,
    private readonly redisStart: RedisSample | null,
    private readonly nats: NatsCpuSource | null,
    private readonly natsStart: number | null,
    private readonly nodesStart: (NodeJS.CpuUsage | null)[],
    private readonly coordinatorStart: NodeJS.CpuUsage,
    private readonly notes: string[],
  ) {}

  static async begin(opts: CostMeterOptions): Promise<CostMeter> {
    const notes: string[] = [];
    let redis: Redis | null = null;
    let redisStart: RedisSample | null = null;
    const redisPart = async (): Promise<void> => {
      if (!opts.redis) return;
      const client = new Redis(opts.redis, { lazyConnect: true, maxRetriesPerRequest: 1 });
      client.on('error', () => {}); // failures surface as rejected commands below
      try {
        await client.connect();
        redisStart = await sampleRedis(client);
        redis = client;
      } catch (err) {
        client.disconnect();
        notes.push(`Redis CPU and commands unknown: ${(err as Error).message}`);
      }
    };
    let nats: NatsCpuSource | null = null;
    let natsStart: number | null = null;
    const natsPart = async (): Promise<void> => {
      if (!opts.nats) return;
      const found = await natsCpuSource(opts.nats);
      if (found.note) notes.push(found.note);
      nats = found.source;
      natsStart = nats ? await nats.read() : null;
    };
    const [nodesStart] = await Promise.all([
      Promise.all((opts.nodes ?? []).map((n) => n.cpuUsage(NODE_CPU_TIMEOUT_MS))),
      redisPart(),
      natsPart(),
    ]);
    // Last, so the coordinator's own sampling work is not charged to the phase.
    const coordinatorStart = process.cpuUsage();
    return new CostMeter(opts, redis, redisStart, nats, natsStart, nodesStart, coordinatorStart, notes);
  }

  /** Samples again and returns the phase's cost per dispatch; closes the meter's connections. */
  async end(dispatches: number): Promise<PhaseCost> {
    const coordinatorUs = sumCpu(process.cpuUsage(this.coordinatorStart));
    const notes = [...this.notes];
    try {
      const [nodesEnd, redisEnd, natsEnd] = await Promise.all([
        Promise.all((this.opts.nodes ?? []).map((n) => n.cpuUsage(NODE_CPU_TIMEOUT_MS))),
        this.redis ? sampleRedis(this.redis).catch(() => null) : Promise.resolve(null),
        this.nats ? this.nats.read() : Promise.resolve(null),
      ]);
      const n = Math.max(dispatches, 1);
      const per = (us: number): number => round(us / n, 1);

      let nodesUs: number | null = null;
      if (this.opts.nodes) {
        let sum = 0;
        for (const [i, node] of this.opts.nodes.entries()) {
          const a = this.nodesStart[i];
          const b = nodesEnd[i];
          if (a && b) sum += sumCpu(b) - sumCpu(a);
          else notes.push(`${node.id} did not report its CPU (killed or unresponsive): not counted in nodes`);
        }
        nodesUs = sum;
      } else {
        notes.push('the nodes run inside the coordinator process: their CPU is in the coordinator figure');
      }

      let redisUs: number | null = null;
      let commands: RedisCommandsPerDispatch | null = null;
      if (this.redis && this.redisStart) {
        if (redisEnd) {
          if (redisEnd.cpuS !== null && this.redisStart.cpuS !== null) {
            redisUs = (redisEnd.cpuS - this.redisStart.cpuS) * 1_000_000;
          } else {
            notes.push('Redis INFO has no used_cpu_sys/used_cpu_user: Redis CPU unknown');
          }
          commands = commandsPerDispatch(this.redisStart.commands, redisEnd.commands, dispatches);
        } else {
          notes.push('Redis did not answer INFO after the phase: Redis CPU and commands unknown');
        }
      }
      if (redisUs !== null || commands !== null) {
        notes.push(
          'Redis figures are deltas of the whole server over the measured phase: anything else using it at ' +
            'the time is counted too',
        );
      }

      let natsUs: number | null = null;
      if (this.nats) {
        if (this.natsStart !== null && natsEnd !== null) natsUs = natsEnd - this.natsStart;
        else notes.push('nats-server CPU could not be sampled: unknown');
        if (natsUs !== null) {
          notes.push(
            `nats-server figure is a delta of the whole server (${this.nats.how}): anything else using it ` +
              'is counted too',
          );
        }
      }

      return {
        cpu_us_per_dispatch: {
          redis: redisUs !== null ? per(redisUs) : null,
          nats: natsUs !== null ? per(natsUs) : null,
          coordinator: per(coordinatorUs),
          nodes: nodesUs !== null ? per(nodesUs) : null,
        },
        redis_commands_per_dispatch: commands,
        notes,
      };
    } finally {
      this.close();
    }
  }

  /** Release the connections without measuring (the phase failed). */
  close(): void {
    this.nats?.stop();
    this.redis?.disconnect();
  }
}
