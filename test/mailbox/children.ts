/** Start fixtures/mailbox-node.ts in a child process (tsx) and follow its JSON lines. */
import { spawn } from 'node:child_process';
import type { ChildProcessWithoutNullStreams } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { afterAll } from 'vitest';

const FIXTURE = fileURLToPath(new URL('./fixtures/mailbox-node.ts', import.meta.url));
const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const children = new Set<ChildProcessWithoutNullStreams>();

export interface Child {
  child: ChildProcessWithoutNullStreams;
  lines: Record<string, unknown>[];
  stderr: () => string;
  exited: Promise<number | null>;
}

export function startNode(args: Record<string, unknown>): Child {
  const child = spawn(process.execPath, ['--import', 'tsx', FIXTURE, JSON.stringify(args)], {
    cwd: ROOT,
    stdio: 'pipe',
  });
  children.add(child);
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const lines: Record<string, unknown>[] = [];
  createInterface({ input: child.stdout }).on('line', (line) =>
    lines.push(JSON.parse(line) as Record<string, unknown>),
  );
  const exited = new Promise<number | null>((resolve) =>
    child.once('exit', (code) => {
      children.delete(child);
      resolve(code);
    }),
  );
  return { child, lines, stderr: () => stderr, exited };
}

afterAll(() => {
  for (const child of children) child.kill('SIGKILL');
});
