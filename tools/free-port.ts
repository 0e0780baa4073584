// A free loopback TCP port for a server a test or benchmark is about to start.
// Port 0 would give one from the kernel's ephemeral range, which every outgoing connection also
// draws from: under a load test's thousands of client sockets such a port is often taken again
// before the server binds it. So: a random port below that range that binds now, and port 0 only
// if none is found.
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';

const LOWEST = 10_000;

/** The first port of the kernel's ephemeral range (Linux; 32768 elsewhere, IANA's is higher). */
function readEphemeralLow(): number {
  try {
    const low = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]);
    return Number.isInteger(low) && low > 0 ? low : 32_768;
  } catch {
    return 32_768;
  }
}
/** Read once per process: a system setting, not worth a file read per port. */
let ephemeralLow: number | undefined;

/** Binds `port` (0: any) on 127.0.0.1 and releases it; the port bound, or null if it was taken. */
function tryPort(port: number): Promise<number | null> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.once('error', (err: NodeJS.ErrnoException) => {
      if (port !== 0 && (err.code === 'EADDRINUSE' || err.code === 'EACCES')) resolve(null);
      else reject(err);
    });
    srv.listen({ port, host: '127.0.0.1', exclusive: true }, () => {
      const addr = srv.address();
      if (addr === null || typeof addr === 'string') {
        srv.close();
        reject(new Error('could not read the bound port'));
        return;
      }
      srv.close(() => resolve(addr.port));
    });
  });
}

export async function freePort(): Promise<number> {
  const high = (ephemeralLow ??= readEphemeralLow()) - 1;
  if (high > LOWEST + 1000) {
    for (let i = 0; i < 50; i++) {
      const port = await tryPort(LOWEST + Math.floor(Math.random() * (high - LOWEST + 1)));
      if (port !== null) return port;
    }
  }
  return (await tryPort(0))!;
}
