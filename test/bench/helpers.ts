/** Running the CLI as a separate process, for the bench and CLI tests. */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const CLI = join(ROOT, 'src/cli.ts');
export const BIN = join(ROOT, 'bin/awaken-mailbox.js');

export interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

export interface RunCliOptions {
  bin?: boolean;
  timeoutMs?: number;
  /** Extra `node` flags before the script (e.g. another `--import`). */
  nodeArgs?: string[];
  /** Environment overrides (undefined deletes a variable). */
  env?: Record<string, string | undefined>;
}

/** `node --import tsx src/cli.ts …args` (or the bin launcher); rejects after `timeoutMs`. */
export function runCli(args: string[], opts: RunCliOptions = {}): Promise<Run> {
  const nodeArgs = opts.nodeArgs ?? [];
  const argv = opts.bin ? [...nodeArgs, BIN, ...args] : ['--import', 'tsx', ...nodeArgs, CLI, ...args];
  const env = { ...process.env };
  for (const [k, v] of Object.entries(opts.env ?? {})) {
    if (v === undefined) delete env[k];
    else env[k] = v;
  }
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, argv, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], env });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`timed out: ${args.join(' ')}\n${stderr}`));
    }, opts.timeoutMs ?? 60_000);
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}
