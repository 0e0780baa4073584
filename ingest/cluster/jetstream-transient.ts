// Which JetStream failures are worth another attempt (a leader election, no answer in time), and a
// bounded retry of a request on them: shared by the telemetry log's appends, stream set-up and reads.
import { JetStreamApiError } from '@nats-io/jetstream';
import { errors } from '@nats-io/transport-node';

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms).unref());

/** Worth another attempt with the same message id: no stream leader (election), no answer in time, the connection between servers. */
export function transient(err: unknown): boolean {
  if (err instanceof errors.TimeoutError || err instanceof errors.NoRespondersError) return true;
  if (err instanceof errors.RequestError) return err.isNoResponders();
  // the client's name for "no responders" on a publish (its class is not exported)
  if (err instanceof Error && err.name === 'JetStreamNotEnabled') return transient(err.cause);
  if (err instanceof errors.ConnectionError || err instanceof errors.DrainingConnectionError) return false;
  // 503: the proposal failed (no quorum, leader stepping down); 500 with 10074: not the leader (any more)
  if (err instanceof JetStreamApiError) return err.status === 503 || err.code === 10074;
  return false;
}

/** `fn` again after a transient failure, until `forMs` have passed (then its last error). */
export async function retryTransient<T>(fn: () => Promise<T>, forMs: number): Promise<T> {
  const deadline = Date.now() + forMs;
  for (;;) {
    try {
      return await fn();
    } catch (err) {
      if (!transient(err) || Date.now() >= deadline) throw err;
      await sleep(250);
    }
  }
}
