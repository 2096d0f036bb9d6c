/**
 * Redis cost of one dispatch lifecycle as the Mailbox drives it (enqueue, then the thread's chained
 * completeAndClaimNext), measured as deltas of `INFO commandstats` / `INFO cpu` on a Redis that nothing else
 * uses (it runs CONFIG RESETSTAT there, so the URL is required):
 *   npm run bench:lua -- <redis-url> [dispatches] [threads]
 * e.g. `redis-server --port 6390 --save '' --daemonize yes` then `npm run bench:lua -- redis://127.0.0.1:6390`.
 */
import { Redis } from 'ioredis';
import { queuedDispatch } from '../src/contract/helpers.js';
import { createMailboxStore } from '../src/redis/index.js';

const url = process.argv[2] ?? '';
if (!/^rediss?:\/\//.test(url)) {
  process.stderr.write(
    'usage: npm run bench:lua -- <redis-url of a server nothing else uses> [dispatches] [threads]\n',
  );
  process.exit(2);
}
const total = Number(process.argv[3] ?? 20000);
const threads = Number(process.argv[4] ?? 64);

function stats(info: string): Map<string, { calls: number; usec: number }> {
  const out = new Map<string, { calls: number; usec: number }>();
  for (const line of info.split('\n')) {
    const m = /^cmdstat_([^:]+):calls=(\d+),usec=(\d+)/.exec(line);
    if (m?.[1]) out.set(m[1], { calls: Number(m[2]), usec: Number(m[3]) });
  }
  return out;
}
function cpu(info: string): number {
  const u = /used_cpu_user:([\d.]+)/.exec(info);
  const s = /used_cpu_sys:([\d.]+)/.exec(info);
  return (Number(u?.[1]) + Number(s?.[1])) * 1e6;
}

const admin = new Redis(url);
const store = await createMailboxStore({
  redis: url,
  signals: 'redis-streams',
  namespace: `cost-${Date.now()}`,
});
const perThread = Math.ceil(total / threads);
let now = Date.now();
for (let t = 0; t < threads; t++) {
  for (let i = 0; i < perThread; i++) {
    await store.enqueue(
      queuedDispatch({
        dispatch_id: `d-${t}-${i}`,
        thread_id: `t-${t}`,
        run_id: `r-${t}-${i}`,
        created_at: now,
      }),
    );
  }
}
await admin.config('RESETSTAT');
const cpu0 = cpu(await admin.info('cpu'));
const t0 = performance.now();
await Promise.all(
  Array.from({ length: threads }, async (_, t) => {
    let cur = await store.claimAndStart(`t-${t}`, 'node-a', 30000, now, 'inst');
    while (cur) {
      const res = await store.completeAndClaimNext(
        cur.dispatch_id,
        cur.claim_token!,
        {
          run_id: cur.run_id,
          dispatch_instance_id: 'inst',
          status: 'done',
          termination: { type: 'natural_end' },
          response: 'ok',
          error: null,
        },
        ++now,
        { threadId: `t-${t}`, consumerId: 'node-a', leaseMs: 30000, dispatchInstanceId: 'inst' },
      );
      cur = res.next;
    }
  }),
);
const ms = performance.now() - t0;
const claimPhase = stats(await admin.info('commandstats'));
const cpu1 = cpu(await admin.info('cpu'));
const n = perThread * threads;
const rows = [...claimPhase.entries()].sort((a, b) => b[1].usec - a[1].usec);
/** Calls made from inside the scripts: everything but the script calls themselves and this tool's own. */
const OUTER = new Set(['fcall', 'evalsha', 'eval', 'info', 'config|resetstat']);
const inner = (phase: Map<string, { calls: number }>): number =>
  [...phase.entries()].reduce((sum, [name, s]) => (OUTER.has(name) ? sum : sum + s.calls), 0);
console.log(
  `claim+complete phase: ${n} dispatches in ${ms.toFixed(0)} ms; redis cpu ${((cpu1 - cpu0) / n).toFixed(1)} µs/dispatch`,
);
for (const [name, s] of rows.slice(0, 30))
  console.log(
    `  ${name.padEnd(18)} ${(s.calls / n).toFixed(2)}/d  ${(s.usec / n).toFixed(2)} µs/d  ${(s.usec / s.calls).toFixed(2)} µs/call`,
  );
console.log(`  inner commands: ${(inner(claimPhase) / n).toFixed(2)} per dispatch`);
// enqueue phase separately
await admin.config('RESETSTAT');
const c2 = cpu(await admin.info('cpu'));
const enqueues = 5000;
for (let i = 0; i < enqueues; i++)
  await store.enqueue(
    queuedDispatch({
      dispatch_id: `e-${i}`,
      thread_id: `t-${i % threads}`,
      run_id: `r-e-${i}`,
      created_at: now,
    }),
  );
const c3 = cpu(await admin.info('cpu'));
const enq = stats(await admin.info('commandstats'));
const script = enq.get('evalsha') ?? enq.get('fcall');
console.log(
  `enqueue: redis cpu ${((c3 - c2) / enqueues).toFixed(1)} µs/dispatch; script ${(script!.usec / script!.calls).toFixed(2)} µs/call; inner commands ${(inner(enq) / enqueues).toFixed(2)} per enqueue`,
);
for (const [name, s] of [...enq.entries()].sort((a, b) => b[1].usec - a[1].usec)) {
  if (OUTER.has(name)) continue;
  console.log(
    `  ${name.padEnd(18)} ${(s.calls / enqueues).toFixed(2)}/e  ${(s.usec / enqueues).toFixed(2)} µs/e  ${(s.usec / s.calls).toFixed(2)} µs/call`,
  );
}
await store.destroyNamespace();
await store.close();
await admin.quit();
