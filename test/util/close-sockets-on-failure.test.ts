/**
 * `closeSocketsOnFailure` tracks the sockets of one connect attempt with an AsyncLocalStorage scope. An
 * AsyncLocalStorage that ran once leaves Node's promise hooks installed for the whole process (every promise
 * then costs several times more), so the helper must uninstall them once no attempt is in flight. Checked in
 * a fresh process (the test runner may run hooks of its own): inside a promise continuation,
 * `executionAsyncId()` is 0 without promise hooks and a fresh id with them.
 */
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

const SCRIPT = `
import net from 'node:net';
import { executionAsyncId } from 'node:async_hooks';
import { closeSocketsOnFailure } from './src/util/close-sockets-on-failure.ts';
const hooked = () => Promise.resolve().then(() => executionAsyncId() !== 0);
const server = net.createServer(() => {});
await new Promise((r) => server.listen(0, '127.0.0.1', r));
const port = server.address().port;
const out = { before: await hooked() };
let leaked = null;
await closeSocketsOnFailure(async () => 'ok');
out.afterSuccess = await hooked();
await closeSocketsOnFailure(async () => {
  leaked = net.connect(port, '127.0.0.1');
  await new Promise((r) => leaked.on('connect', r));
  throw new Error('connect failed after the socket was accepted');
}).catch(() => undefined);
out.afterFailure = await hooked();
out.socketDestroyed = leaked.destroyed;
server.close();
console.log(JSON.stringify(out));
`;

describe('closeSocketsOnFailure', () => {
  it('destroys the sockets of a failed attempt and leaves no promise hooks installed', async () => {
    const { stdout } = await promisify(execFile)(
      process.execPath,
      ['--import', 'tsx', '--input-type=module', '-e', SCRIPT],
      { cwd: ROOT, timeout: 30_000 },
    );
    expect(JSON.parse(stdout.trim())).toEqual({
      before: false,
      afterSuccess: false,
      afterFailure: false,
      socketDestroyed: true,
    });
  });
});
