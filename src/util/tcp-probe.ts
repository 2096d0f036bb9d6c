import { Socket } from 'node:net';

/** Connect, optionally send `probe`, resolve with the first bytes received (null on any failure or timeout). */
export function tcpProbe(
  host: string,
  port: number,
  probe: string | null,
  timeoutMs = 1000,
): Promise<string | null> {
  return new Promise((resolve) => {
    const sock = new Socket();
    let done = false;
    const finish = (v: string | null): void => {
      if (done) return;
      done = true;
      sock.destroy();
      resolve(v);
    };
    sock.setTimeout(timeoutMs, () => finish(null));
    sock.once('error', () => finish(null));
    sock.once('data', (buf: Buffer) => finish(buf.toString('utf8')));
    sock.connect(port, host, () => {
      if (probe !== null) sock.write(probe);
    });
  });
}
