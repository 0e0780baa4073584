import { describe, expect, it } from 'vitest';
import {
  CodecError,
  SIZE_LIMITS,
  decodeAgentConfig,
  decodeAgentStatus,
  decodeHmiPrompt,
  decodePromptAck,
  decodeTelemetryBatch,
  encodeAgentConfig,
  encodeAgentStatus,
  encodeHmiPrompt,
  encodePromptAck,
  encodeTelemetryBatch,
} from '../../proto/codec.js';
import { parseReplayLine, type TelemetryBatch } from '../../proto/domain.js';
import { VSS } from '../../proto/signals.js';

const VIN = 'LSVAU2180N2183294';
const T0 = Date.parse('2026-03-01T08:00:00Z');

const batch: TelemetryBatch = {
  vin: VIN,
  bootId: 'boot-1',
  seq: 42,
  dropped: 3,
  samples: [
    {
      ts: T0,
      signals: { [VSS.odometer]: 4210.5, [VSS.soc]: 18, [VSS.lowVoltageSystemState]: 'OFF', [VSS.isCharging]: false },
      dtcs: ['P0A80'],
    },
    { ts: T0 + 1000, signals: { [VSS.speed]: 0 }, dtcs: [] },
    { ts: T0 + 2000, signals: {} },
  ],
};

function codecError(fn: () => unknown): CodecError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(CodecError);
    return err as CodecError;
  }
  throw new Error('expected a CodecError');
}

describe('codec round trips', () => {
  it('TelemetryBatch keeps values, kinds, and the difference between no DTC list and an empty one', () => {
    const back = decodeTelemetryBatch(encodeTelemetryBatch(batch));
    expect(back).toEqual(batch);
    expect(back.samples[1].dtcs).toEqual([]);
    expect(back.samples[2].dtcs).toBeUndefined();
  });

  it('AgentStatus birth and death', () => {
    for (const online of [true, false]) {
      const s = { vin: VIN, online, agentVersion: '0.1.0', configVersion: 7, bootId: 'b', ts: T0, spoolDropped: 2, spoolPending: 5 };
      expect(decodeAgentStatus(encodeAgentStatus(s))).toEqual(s);
    }
  });

  it('HmiPrompt and PromptAck', () => {
    const p = {
      promptId: 'p_1',
      kind: 'charging.low_soc',
      severity: 'warning' as const,
      title: 'Low charge',
      body: '18 % left',
      locale: 'en' as const,
      actions: [{ id: 'find_charger', label: 'Find a charger' }],
      createdAt: T0,
      expiresAt: 0,
      withdrawn: false,
    };
    expect(decodeHmiPrompt(encodeHmiPrompt(p))).toEqual(p);
    const a = { promptId: 'p_1', outcome: 'ACTED' as const, ts: T0, actionId: 'find_charger' };
    expect(decodePromptAck(encodePromptAck(a))).toEqual(a);
  });

  it('AgentConfig (sampling policy)', () => {
    const c = {
      version: 3,
      signals: [{ path: VSS.soc, periodMs: 60_000, deadband: 1 }],
      triggers: [
        { kind: 'soc_below' as const, threshold: 20 },
        { kind: 'new_dtc' as const, threshold: 0 },
      ],
      batchMaxSamples: 50,
      batchMaxDelayMs: 5000,
      locationEnabled: false,
      locationPrecisionDeg: 0.01,
    };
    expect(decodeAgentConfig(encodeAgentConfig(c))).toEqual(c);
  });
});

describe('codec rejects bad payloads with a reason', () => {
  const bytes = encodeTelemetryBatch(batch);

  it('truncated payloads are malformed', () => {
    for (const n of [1, 5, bytes.length - 1])
      expect(codecError(() => decodeTelemetryBatch(bytes.slice(0, n))).failure).toMatch(/malformed|invalid/);
  });

  it('empty payloads are malformed', () => {
    expect(codecError(() => decodeTelemetryBatch(new Uint8Array())).failure).toBe('malformed');
  });

  it('oversized payloads are refused before decoding', () => {
    const big = new Uint8Array(SIZE_LIMITS.telemetry + 1);
    const e = codecError(() => decodeTelemetryBatch(big));
    expect(e.failure).toBe('oversized');
    expect(e.message).toContain(String(SIZE_LIMITS.telemetry));
  });

  it('a payload of another type does not pass as telemetry', () => {
    const ack = encodePromptAck({ promptId: 'p_1', outcome: 'SHOWN', ts: T0 });
    expect(codecError(() => decodeTelemetryBatch(ack)).failure).toMatch(/malformed|invalid/);
    const status = encodeAgentStatus({
      vin: VIN,
      online: true,
      agentVersion: 'x',
      configVersion: 0,
      bootId: 'b',
      ts: T0,
      spoolDropped: 0,
      spoolPending: 0,
    });
    expect(() => decodeTelemetryBatch(status)).toThrow(CodecError);
  });

  it('wrong value types and out-of-range values are invalid, naming the field', () => {
    const wrongType = encodeTelemetryBatch({ ...batch, samples: [{ ts: T0, signals: { [VSS.soc]: true as unknown as number } }] });
    const e = codecError(() => decodeTelemetryBatch(wrongType));
    expect(e.failure).toBe('invalid');
    expect(e.message).toContain(VSS.soc);
    const outOfRange = encodeTelemetryBatch({ ...batch, samples: [{ ts: T0, signals: { [VSS.soc]: 140 } }] });
    expect(codecError(() => decodeTelemetryBatch(outOfRange)).failure).toBe('invalid');
  });

  it('unknown signals, bad VINs, bad DTCs and empty batches are invalid', () => {
    const unknown = encodeTelemetryBatch({ ...batch, samples: [{ ts: T0, signals: { 'Vehicle.Nope': 1 } as never }] });
    expect(codecError(() => decodeTelemetryBatch(unknown)).failure).toBe('invalid');
    expect(codecError(() => decodeTelemetryBatch(encodeTelemetryBatch({ ...batch, vin: 'NOT-A-VIN' }))).message).toContain('vin');
    expect(
      codecError(() => decodeTelemetryBatch(encodeTelemetryBatch({ ...batch, samples: [{ ts: T0, signals: {}, dtcs: ['X123'] }] })))
        .failure,
    ).toBe('invalid');
    expect(codecError(() => decodeTelemetryBatch(encodeTelemetryBatch({ ...batch, samples: [] }))).failure).toBe('invalid');
  });

  it('random bytes never crash the decoder: they decode or raise a CodecError', () => {
    let seed = 7;
    const rnd = () => (seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff;
    for (let i = 0; i < 500; i++) {
      const b = Uint8Array.from({ length: 1 + Math.floor(rnd() * 64) }, () => Math.floor(rnd() * 256));
      try {
        decodeTelemetryBatch(b);
      } catch (err) {
        expect(err).toBeInstanceOf(CodecError);
      }
    }
  });

  it('deeply nested garbage is rejected, not a stack overflow', () => {
    // field 4 (samples), wire type 2, nested 2,000 times
    let inner = new Uint8Array([0x08, 0x01]);
    for (let i = 0; i < 2000; i++) {
      const len = inner.length;
      const varint: number[] = [];
      let v = len;
      while (v > 127) {
        varint.push((v & 0x7f) | 0x80);
        v >>>= 7;
      }
      varint.push(v);
      inner = Uint8Array.from([0x22, ...varint, ...inner]);
    }
    expect(() => decodeTelemetryBatch(inner)).toThrow(CodecError);
  });
});

describe('replay lines', () => {
  it('parses the docs/contract.md example', () => {
    const r = parseReplayLine(
      '{"ts":"2026-03-01T08:00:00Z","vin":"LSVAU2180N2183294","signals":{"Vehicle.TraveledDistance":4210.5,"Vehicle.Powertrain.TractionBattery.StateOfCharge.Displayed":18.0,"Vehicle.LowVoltageSystemState":"OFF"},"dtcs":["P0A80"]}',
    );
    expect(r).toEqual({
      vin: VIN,
      ts: T0,
      signals: { [VSS.odometer]: 4210.5, [VSS.soc]: 18, [VSS.lowVoltageSystemState]: 'OFF' },
      dtcs: ['P0A80'],
    });
  });

  it('rejects bad lines with a message naming the problem', () => {
    expect(() => parseReplayLine('{"ts":"yesterday","vin":"LSVAU2180N2183294","signals":{}}')).toThrow(/ts/);
    expect(() => parseReplayLine('{"ts":"2026-03-01T08:00:00Z","vin":"LSVAU2180N2183294","signals":{"Vehicle.Speed":"fast"}}')).toThrow();
    expect(() => parseReplayLine('not json')).toThrow();
  });
});
