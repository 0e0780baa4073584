// The fault suite's load (test/faults/support/load.ts) against a broker that closes a connection
// after reading its CONNECT and before answering it, as ingest does when it is killed in the middle
// of a handshake (kill -9 with nothing unread on the socket: the kernel sends a FIN, not a reset).
// mqtt.js (5.x, reconnectPeriod 0) then emits only 'close': connectAsync neither resolved nor
// rejected, and the vehicle's loop waited on it forever, so it never sent another batch, without a
// stall warning (ingest-kill: "every planned DTC batch acknowledged" timed out, now and then).
import { Aedes } from 'aedes';
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Ledger } from '../faults/support/ledger.js';
import { FleetLoad } from '../faults/support/load.js';
import { waitFor } from '../support/wait.js';

const VINS = ['LKXHS000000000001', 'LKXHS000000000002'];

let broker: Aedes;
let server: net.Server;
let url: string;
/** Connections closed after their CONNECT, unanswered (one per vehicle: the first two). */
let dropped = 0;

beforeAll(async () => {
  broker = await Aedes.createBroker();
  server = net.createServer((socket) => {
    if (dropped < VINS.length) {
      dropped++;
      socket.once('data', () => socket.end()); // the CONNECT is read; no CONNACK, a clean close
      return;
    }
    broker.handle(socket);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  url = `mqtt://127.0.0.1:${(server.address() as net.AddressInfo).port}`;
});

afterAll(async () => {
  await new Promise<void>((r) => broker.close(() => r()));
  await new Promise<void>((r) => server.close(() => r()));
});

describe('fault load: a connection closed before its CONNACK', () => {
  it('is a failed connect: the vehicle connects again and goes on sending', async () => {
    const ledger = new Ledger();
    const load = new FleetLoad({ url: () => url, vins: VINS, ledger, ratePerVehicle: 20 }).start();
    const perVin = (vin: string) => [...ledger.acked].filter((k) => k.startsWith(`${vin}/`)).length;
    try {
      await waitFor(() => VINS.every((vin) => perVin(vin) >= 10), { what: '10 batches of each vehicle acknowledged', timeoutMs: 15_000 });
    } catch (err) {
      throw new Error(`${(err as Error).message}\n${load.explain(VINS.map((vin) => ({ vin, seq: 10 })))}`);
    }
    expect(dropped).toBe(VINS.length);
    expect(load.connects).toBe(VINS.length);
    expect(load.closedBeforeConnack).toBe(VINS.length);
    await load.stop(10_000);
  });
});
