/** Resolve the servers once, so every test file uses the same ones (spawned or local). */
import { natsUrl, redisUrl } from './servers.js';

export default async function setup(): Promise<void> {
  process.env.REDIS_URL ??= await redisUrl();
  process.env.NATS_URL ??= await natsUrl();
}
