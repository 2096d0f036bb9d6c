/** The `--baseline` peers by name, and the up-front check that their packages are installed. */
import { bullmqDriver } from './bullmq-baseline.js';
import { loadBullmq } from './bullmq-worker.js';
import { groupmqDriver } from './groupmq-baseline.js';
import { loadGroupmq } from './groupmq-worker.js';
import type { PeerDriver } from './peer-baseline.js';
import type { BaselineName } from './results.js';

export const PEER_DRIVERS: Record<BaselineName, PeerDriver> = {
  bullmq: bullmqDriver,
  groupmq: groupmqDriver,
};

const LOADERS: Record<BaselineName, () => Promise<unknown>> = {
  bullmq: loadBullmq,
  groupmq: loadGroupmq,
};

/**
 * Import every requested peer package now, so a missing one is reported before the Mailbox workload runs
 * (not after minutes of it). Throws the first failure, naming the package.
 */
export async function ensurePeerPackages(names: readonly BaselineName[]): Promise<void> {
  for (const name of names) await LOADERS[name]();
}
