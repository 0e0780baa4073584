// The failures of the TelemetryStore port (store/ports.ts) its callers must tell apart: InfluxDB not
// there (wait and retry; reads answer 503) and InfluxDB refusing points as input (no retry can
// store them: the pipeline writes around them and dead-letters them, docs/contract.md#dead-letters).
// A third kind, TelemetryInputError (store/influx/schema.ts), is a refusal before anything is sent.

/** InfluxDB cannot be reached (not connected yet, or not answering): nothing is lost, try again later. */
export class TelemetryUnavailableError extends Error {
  override readonly name = 'TelemetryUnavailableError';
}

/** One write request InfluxDB refused as input: its status, the server's own message and the lines sent. */
export interface TelemetryRefusal {
  status: number;
  message: string;
  lines: string[];
}

/**
 * flush() found requests InfluxDB answered but refused as input (1.x: 400 `partial write: field
 * type conflict ...`, `... points beyond retention policy dropped=N`, `unable to parse ...`; 2.x:
 * 422, 400 `partial write has occurred ...`; 413 too large). Not an outage: a retry of the same
 * lines gets the same answer. On 1.x the good points of such a request were written all the same.
 */
export class TelemetryRefusedError extends Error {
  override readonly name = 'TelemetryRefusedError';

  constructor(readonly refusals: TelemetryRefusal[]) {
    const lines = refusals.reduce((n, r) => n + r.lines.length, 0);
    const first = refusals[0];
    super(
      `InfluxDB refused ${refusals.length} write request(s) (${lines} lines) as input: HTTP ${first?.status ?? '?'}: ${first?.message ?? ''}`,
    );
  }

  /** The first refused request's status. */
  get status(): number {
    return this.refusals[0]?.status ?? 0;
  }

  /** The server's reason for the first refused request, as it said it. */
  get serverMessage(): string {
    return this.refusals[0]?.message ?? '';
  }

  /** Every line of the refused requests (some of them may have been written: 1.x partial writes). */
  get refusedLines(): string[] {
    return this.refusals.flatMap((r) => r.lines);
  }
}
