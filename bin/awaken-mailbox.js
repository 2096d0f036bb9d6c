#!/usr/bin/env node
// The package bin: runs the compiled CLI (dist/src/cli.js) when present, else the TypeScript sources through tsx.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const compiled = new URL('../dist/src/cli.js', import.meta.url);
let cli;
if (existsSync(fileURLToPath(compiled))) {
  cli = await import(compiled.href);
} else {
  let register;
  try {
    ({ register } = await import('tsx/esm/api'));
  } catch {
    process.stderr.write(
      'awaken-mailbox: dist/src/cli.js is missing and tsx is not installed: run `npm run build` first\n',
    );
    process.exit(1);
  }
  register();
  cli = await import(new URL('../src/cli.ts', import.meta.url).href);
}
process.exit(await cli.main(process.argv.slice(2)));
