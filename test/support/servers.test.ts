import { connect } from '@nats-io/transport-node';
import { jetstreamManager } from '@nats-io/jetstream';
import { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { natsUrl, redisUrl, spawnNats, spawnRedis, testNamespace, type SpawnedServer } from './servers.js';

describe('test server finder', () => {
  const spawned: SpawnedServer[] = [];
  afterAll(async () => {
    await Promise.all(spawned.map((s) => s.stop()));
  });

  it('finds a Redis and a NATS with JetStream', async () => {
    const redis = new Redis(await redisUrl(), { lazyConnect: true, maxRetriesPerRequest: 1 });
    await redis.connect();
    expect(await redis.ping()).toBe('PONG');
    redis.disconnect();
    const nc = await connect({ servers: await natsUrl() });
    const jsm = await jetstreamManager(nc);
    const info = await jsm.getAccountInfo();
    expect(info.limits).toBeDefined();
    await nc.close();
  });

  it('spawns its own redis-server and nats-server on free ports and stops them by PID', async () => {
    const r = await spawnRedis({ appendOnly: true });
    const n = await spawnNats();
    spawned.push(r, n);
    expect(r.pid).toBeGreaterThan(0);
    expect(n.pid).toBeGreaterThan(0);
    const redis = new Redis(r.url, { lazyConnect: true, maxRetriesPerRequest: 1 });
    await redis.connect();
    await redis.set('k', 'v');
    expect(await redis.get('k')).toBe('v');
    expect(await redis.config('GET', 'appendonly')).toEqual(['appendonly', 'yes']);
    redis.disconnect();
    const nc = await connect({ servers: n.url });
    const jsm = await jetstreamManager(nc);
    await jsm.streams.add({ name: 'PROBE', subjects: ['probe.>'] });
    expect((await jsm.streams.info('PROBE')).config.name).toBe('PROBE');
    await nc.close();

    const pid = r.pid;
    await r.stop({ keepDir: true });
    expect(() => process.kill(pid, 0)).toThrow();
    await r.restart();
    const again = new Redis(r.url, { lazyConnect: true, maxRetriesPerRequest: 1 });
    await again.connect();
    expect(await again.get('k')).toBe('v'); // AOF kept the write across the restart
    again.disconnect();
  });

  it('makes namespaces of the allowed alphabet, unique per call', () => {
    const a = testNamespace('my file.test');
    const b = testNamespace('my file.test');
    expect(a).toMatch(/^[A-Za-z0-9_-]+$/);
    expect(a).not.toBe(b);
  });
});
