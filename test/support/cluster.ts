/**
 * Local clusters for the scale-out tests: a 6-node Redis Cluster (3 masters, 3 replicas) and a 3-node
 * JetStream cluster, started from the `redis-server`, `redis-cli` and `nats-server` binaries on free loopback
 * ports and stopped by PID (src/bench/local-cluster.ts, shared with `bench --local-cluster`).
 */
import { Cluster } from 'ioredis';
import { binaryOnPath } from '../../src/bench/local-cluster.js';

export {
  startClusters,
  startNatsCluster,
  startRedisCluster,
  waitUntil,
  type LocalNatsCluster,
  type LocalNode,
  type LocalRedisCluster,
} from '../../src/bench/local-cluster.js';

/** Whether the binaries the cluster tests need are on PATH (the tests are skipped otherwise). */
export const clusterBinaries: boolean = ['redis-server', 'redis-cli', 'nats-server'].every(binaryOnPath);

/** A plain Cluster client for hand edits and checks in tests (not the store's). */
export function rawCluster(seeds: readonly string[]): Cluster {
  const cluster = new Cluster(
    seeds.map((s) => {
      const u = new URL(s);
      return { host: u.hostname, port: Number(u.port) };
    }),
    { retryDelayOnFailover: 200, maxRedirections: 64 },
  );
  cluster.on('error', () => undefined);
  return cluster;
}
