// tools/nats-local.ts against a real nats-server: a port taken between freePort() and the server's
// bind (another test file's process, in CI) makes that start fail fast and try again on new ports,
// instead of waiting out the ready timeout and failing the test (seen in CI: "bind: address already in use").
import { existsSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';

const taken = vi.hoisted(() => ({ port: 0, handedOut: 0 }));
vi.mock('../../tools/free-port.js', async (importOriginal) => {
  const real = await importOriginal<typeof import('../../tools/free-port.js')>();
  return {
    // the first port handed out is one that is already bound
    freePort: async () => (taken.handedOut++ === 0 ? taken.port : real.freePort()),
  };
});

const { NATS_SERVER, startNatsCluster } = await import('../../tools/nats-local.js');
const haveNats = NATS_SERVER.startsWith('/') ? existsSync(NATS_SERVER) : true;

describe.skipIf(!haveNats)('nats-local start-up', () => {
  let holder: Server;
  beforeAll(async () => {
    holder = createServer();
    await new Promise<void>((r) => holder.listen(0, '127.0.0.1', () => r()));
    taken.port = (holder.address() as { port: number }).port;
  });
  afterAll(() => new Promise<void>((r) => holder.close(() => r())));

  it('a client port taken before nats-server binds it: started again on other ports, healthy', async () => {
    const t0 = Date.now();
    const cluster = await startNatsCluster({ nodes: 1, readyTimeoutMs: 20_000 });
    try {
      expect(cluster.nodes[0].port).not.toBe(taken.port);
      expect(taken.handedOut).toBeGreaterThan(3); // one set of three ports, then another
      expect(cluster.running(0)).toBe(true);
      expect((await cluster.healthz(0)).status).toBe('ok');
      // the failed start was noticed when the server exited, not at the ready timeout
      expect(Date.now() - t0).toBeLessThan(20_000);
    } finally {
      await cluster.close();
    }
  });
});
