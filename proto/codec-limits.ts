// The codec's size limits and its error, in a module of their own: both codecs use them, the
// protobufjs one (codec-core.ts, re-exported by codec.ts) and the agent's hand-written wire codec
// (agent-wire.ts), which must not load protobufjs to get them.

/** Size limit per payload kind, checked before decoding. */
export const SIZE_LIMITS = {
  telemetry: 256 * 1024,
  status: 4 * 1024,
  prompt: 16 * 1024,
  ack: 1024,
  config: 64 * 1024,
} as const;
export type PayloadKind = keyof typeof SIZE_LIMITS;

export type CodecFailure = 'oversized' | 'malformed' | 'invalid';

/** A payload that cannot be accepted; `reason` is what the dead-letter store records. */
export class CodecError extends Error {
  constructor(
    readonly kind: PayloadKind,
    readonly failure: CodecFailure,
    message: string,
  ) {
    super(`${kind}: ${failure}: ${message}`);
    this.name = 'CodecError';
  }
}
