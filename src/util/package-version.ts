/**
 * The version of this package, read from its package.json (found by walking up from this module, which sits
 * at `src/util/` when run from the sources and at `dist/src/util/` once built).
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export function packageVersion(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 4; i++) {
    const file = join(dir, 'package.json');
    if (existsSync(file)) {
      try {
        const pkg = JSON.parse(readFileSync(file, 'utf8')) as { name?: unknown; version?: unknown };
        if (pkg.name === 'awaken-mailbox' && typeof pkg.version === 'string') return pkg.version;
      } catch {
        // Not ours or unreadable: keep walking up.
      }
    }
    dir = dirname(dir);
  }
  return 'unknown';
}
