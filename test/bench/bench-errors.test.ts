/**
 * `awaken-mailbox bench` refuses, up front and with a message that names the problem, what it cannot do: a Redis
 * that was named (by --redis or $REDIS_URL) but does not answer, and a `--baseline` peer whose package is not
 * installed. Neither runs any workload first.
 */
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { freePort, redisUrl } from '../support/servers.js';
import { ROOT, runCli as run } from './helpers.js';

const HIDE = ['--import', join(ROOT, 'test/bench/fixtures/hide-packages.mjs')];

let redis: string;
let unreachable: string;

beforeAll(async () => {
  redis = await redisUrl();
  unreachable = `redis://127.0.0.1:${await freePort()}`;
});

/** Nothing on stdout, and the run never got as far as choosing a backend or starting nodes. */
function expectNoWorkload(r: { stdout: string; stderr: string }): void {
  expect(r.stdout).toBe('');
  expect(r.stderr).not.toMatch(/^bench: /m);
}

describe('bench with a named Redis that does not answer', () => {
  it('--redis: exits 1 naming the URL and the option, no fallback to memory', async () => {
    const r = await run(['bench', '--redis', unreachable, '--dispatches', '10', '--progress', 'off']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`Redis is not reachable at ${unreachable} (given by --redis)`);
    expect(r.stderr).not.toMatch(/memory backend/);
    expectNoWorkload(r);
  });

  it('$REDIS_URL: the same, naming the variable', async () => {
    const r = await run(['bench', '--dispatches', '10', '--progress', 'off'], {
      env: { REDIS_URL: unreachable },
    });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`Redis is not reachable at ${unreachable} (given by $REDIS_URL)`);
    expectNoWorkload(r);
  });
});

describe('bench --baseline with the peer package missing', () => {
  for (const [hidden, baseline] of [
    ['groupmq', 'groupmq'],
    ['bullmq', 'bullmq'],
    ['groupmq', 'bullmq,groupmq'],
  ] as const) {
    it(`--baseline ${baseline} without ${hidden} installed: says so before running anything`, async () => {
      const r = await run(
        ['bench', '--backend', 'redis', '--redis', redis, '--no-nats', '--baseline', baseline].concat([
          '--dispatches',
          '100',
          '--progress',
          'off',
          '--json',
        ]),
        { nodeArgs: HIDE, env: { HIDE_PACKAGES: hidden } },
      );
      expect(r.code).toBe(1);
      expect(r.stderr).toContain(
        `--baseline ${hidden} needs the '${hidden}' package, which is not installed here`,
      );
      expect(r.stderr).toContain(`npm install --save-dev ${hidden}`);
      expectNoWorkload(r);
    });
  }
});
