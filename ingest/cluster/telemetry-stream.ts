// The names the telemetry log's writer (telemetry-log.ts) and its partition readers
// (partition-reader.ts) share: the stream, its subjects and the odopulse headers of an entry (the
// layout: telemetry-log.ts). telemetry-log.ts re-exports the stream and subject names.
export const TELEMETRY_STREAM = 'ODOPULSE_TELEMETRY';
export const TELEMETRY_SUBJECT_PREFIX = 'odopulse.telemetry';

export const H_BOOT = 'Odopulse-Boot-Id';
export const H_SEQ = 'Odopulse-Seq';
export const H_RECEIVED = 'Odopulse-Received-At';

export const partitionSubjects = (partition: number): string => `${TELEMETRY_SUBJECT_PREFIX}.${partition}.*`;
