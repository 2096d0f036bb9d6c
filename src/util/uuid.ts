/**
 * UUID v7 (RFC 9562) for claim tokens and generated ids, from a pooled random buffer: the `uuid` package
 * reads the system's random source once per id, which showed up at ~3 % of a busy node's CPU. Ids made
 * within one millisecond are strictly increasing (a counter in the 42 bits after the timestamp, started
 * at a random value each millisecond), so ids generated in order also sort in order, like `uuid`'s v7.
 */
import { randomFillSync } from 'node:crypto';

const POOL_SIZE = 4096;
const pool = Buffer.allocUnsafe(POOL_SIZE);
let poolAt = POOL_SIZE;

function randomBytes(n: number): number {
  if (poolAt + n > POOL_SIZE) {
    randomFillSync(pool);
    poolAt = 0;
  }
  const at = poolAt;
  poolAt += n;
  return at;
}

const HEX: string[] = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));

let lastMs = -1;
/** 42-bit counter: 12 bits in rand_a, the next 30 in rand_b (below the variant bits). */
let counter = 0;
const COUNTER_MAX = 2 ** 42 - 1;

export function uuidV7(now: number = Date.now()): string {
  let ms = now;
  if (ms > lastMs) {
    const at = randomBytes(5);
    // Start below 2^41 so a millisecond has room for at least 2^41 increments.
    counter = (pool[at]! & 0x01) * 2 ** 40 + pool.readUInt32BE(at + 1) * 2 ** 8 + (pool[at]! >> 1);
    lastMs = ms;
  } else {
    ms = lastMs;
    counter++;
    if (counter > COUNTER_MAX) {
      lastMs = ++ms;
      counter = 0;
    }
  }
  const hi12 = Math.floor(counter / 2 ** 30);
  const lo30 = counter % 2 ** 30;
  const r = randomBytes(4);
  const b = new Array<number>(16);
  // 48-bit big-endian milliseconds.
  const msHi = Math.floor(ms / 2 ** 32);
  const msLo = ms >>> 0;
  b[0] = (msHi >>> 8) & 0xff;
  b[1] = msHi & 0xff;
  b[2] = msLo >>> 24;
  b[3] = (msLo >>> 16) & 0xff;
  b[4] = (msLo >>> 8) & 0xff;
  b[5] = msLo & 0xff;
  b[6] = 0x70 | (hi12 >>> 8); // version 7
  b[7] = hi12 & 0xff;
  b[8] = 0x80 | (lo30 >>> 24); // variant 10xx
  b[9] = (lo30 >>> 16) & 0xff;
  b[10] = (lo30 >>> 8) & 0xff;
  b[11] = lo30 & 0xff;
  b[12] = pool[r]!;
  b[13] = pool[r + 1]!;
  b[14] = pool[r + 2]!;
  b[15] = pool[r + 3]!;
  const h = (i: number): string => HEX[b[i]!]!;
  return (
    h(0) +
    h(1) +
    h(2) +
    h(3) +
    '-' +
    h(4) +
    h(5) +
    '-' +
    h(6) +
    h(7) +
    '-' +
    h(8) +
    h(9) +
    '-' +
    h(10) +
    h(11) +
    h(12) +
    h(13) +
    h(14) +
    h(15)
  );
}
