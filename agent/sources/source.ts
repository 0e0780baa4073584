// What every signal source (replay file, simulated vehicle, Kuksa databroker) offers the agent.
import type { Sample } from '../../proto/domain.js';

export interface SignalSource {
  /** Begin delivering samples; resolves once the source is running. */
  start(onSample: (s: Sample) => void): Promise<void>;
  /** Stop delivering (idempotent); `done` resolves afterwards. */
  stop(): Promise<void>;
  /** Resolves when the source has no more samples (end of a replay file, or stopped). */
  readonly done: Promise<void>;
}

/** A problem with one input item that was skipped (line numbers for files). */
export interface SourceIssue {
  line?: number;
  reason: string;
}
