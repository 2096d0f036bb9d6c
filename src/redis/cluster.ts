/**
 * Redis Cluster plumbing: telling a Cluster client from a single-server one, the slot of a key (CRC16 of its
 * hash tag, as Redis computes it), the master connection that serves a slot (for `WAIT` and per-node
 * commands such as `FUNCTION LOAD` and `SCAN`), and the client options under which a Cluster rides out a
 * failover instead of failing calls.
 */
import type { Cluster, ClusterOptions, Redis } from 'ioredis';

/** A single-server ioredis client or an ioredis Cluster: the commands the store sends exist on both. */
export type RedisClient = Redis | Cluster;

export function isCluster(client: unknown): client is Cluster {
  return (
    typeof client === 'object' && client !== null && (client as { isCluster?: unknown }).isCluster === true
  );
}

const CRC16_TABLE = (() => {
  const table = new Uint16Array(256);
  for (let i = 0; i < 256; i++) {
    let crc = i << 8;
    for (let bit = 0; bit < 8; bit++)
      crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
    table[i] = crc;
  }
  return table;
})();

/** CRC16/XMODEM, the checksum Redis Cluster hashes keys with. */
function crc16(bytes: Uint8Array): number {
  let crc = 0;
  for (const b of bytes) crc = ((crc << 8) & 0xffff) ^ (CRC16_TABLE[((crc >> 8) ^ b) & 0xff] as number);
  return crc;
}

export const CLUSTER_SLOTS = 16384;

/** The cluster slot of `key`: the CRC16 of its hash tag (the first non-empty `{...}`), else of the key. */
export function keySlot(key: string): number {
  const bytes = Buffer.from(key, 'utf8');
  const open = bytes.indexOf(0x7b); // '{'
  if (open !== -1) {
    const close = bytes.indexOf(0x7d, open + 1); // '}'
    if (close > open + 1) return crc16(bytes.subarray(open + 1, close)) % CLUSTER_SLOTS;
  }
  return crc16(bytes) % CLUSTER_SLOTS;
}

/** `host:port` of a node connection, the way ioredis keys its node pool. */
export function nodeKey(node: Redis): string {
  return `${node.options.host ?? '127.0.0.1'}:${node.options.port ?? 6379}`;
}

/**
 * The connection a Cluster client sends the commands of `slot` to (the slot's master, as this client
 * currently knows it), or null before the slot map is known.
 */
export function masterForSlot(cluster: Cluster, slot: number): Redis | null {
  const owner = cluster.slots[slot]?.[0];
  if (owner === undefined) return null;
  for (const node of cluster.nodes('master')) if (nodeKey(node) === owner) return node;
  for (const node of cluster.nodes('all')) if (nodeKey(node) === owner) return node;
  return null;
}

/** The connection that serves `key`: the client itself on a single server, the slot's master in a Cluster. */
export function connectionForKey(client: RedisClient, key: string): Redis | null {
  return isCluster(client) ? masterForSlot(client, keySlot(key)) : client;
}

/** Every master connection (a single server is its own only master). */
export function masterConnections(client: RedisClient): Redis[] {
  return isCluster(client) ? client.nodes('master') : [client];
}

/** Delay between retries of a command whose node went away (a failover in progress). */
export const FAILOVER_RETRY_DELAY_MS = 200;

/**
 * Cluster client options for connections the store opens: commands whose master died are retried every
 * `FAILOVER_RETRY_DELAY_MS` until the replica took over, for about `commandTimeoutMs` (ioredis's defaults give
 * up after 16 quick redirections, well before a failover completes); reads and writes go to masters only.
 */
export function ownedClusterOptions(
  commandTimeoutMs: number,
  redisOptions: ClusterOptions['redisOptions'],
): ClusterOptions {
  return {
    lazyConnect: true,
    enableAutoPipelining: true,
    enableOfflineQueue: true,
    scaleReads: 'master',
    retryDelayOnFailover: FAILOVER_RETRY_DELAY_MS,
    retryDelayOnClusterDown: FAILOVER_RETRY_DELAY_MS,
    retryDelayOnTryAgain: FAILOVER_RETRY_DELAY_MS,
    maxRedirections: Math.max(16, Math.ceil(commandTimeoutMs / FAILOVER_RETRY_DELAY_MS) + 4),
    slotsRefreshTimeout: Math.min(commandTimeoutMs, 2000),
    clusterRetryStrategy: (times: number) => Math.min(50 * 2 ** Math.min(times, 6), 2000),
    redisOptions: {
      connectTimeout: commandTimeoutMs,
      maxRetriesPerRequest: 0,
      ...redisOptions,
    },
  };
}

/**
 * Resolve once a Cluster client knows the slot map (`ready`): connects a lazy one, waits for one that is
 * connecting. Bound it with a deadline: a cluster that never becomes ready never resolves this.
 */
export async function clusterReady(cluster: Cluster): Promise<void> {
  if (cluster.status === 'ready') return;
  if (cluster.status === 'wait') {
    await cluster.connect();
    return;
  }
  await new Promise<void>((resolve) => cluster.once('ready', () => resolve()));
}
