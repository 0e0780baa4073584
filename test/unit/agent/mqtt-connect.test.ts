import { describe, expect, it } from 'vitest';
import { brokerEndpoint } from '../../../agent/mqtt-connect.js';

describe('brokerEndpoint (what mqtt.connect makes of a broker URL)', () => {
  it.each([
    ['mqtt://127.0.0.1:1883', { secure: false, host: '127.0.0.1', port: 1883 }],
    ['tcp://broker.example', { secure: false, host: 'broker.example', port: 1883 }],
    ['mqtts://broker.example', { secure: true, host: 'broker.example', port: 8883 }],
    ['tls://broker.example:9000', { secure: true, host: 'broker.example', port: 9000 }],
    ['ssl://[::1]:8884', { secure: true, host: '::1', port: 8884 }],
    ['mqtt://u%40x:p%3Aw@h:1', { secure: false, host: 'h', port: 1, username: 'u@x', password: 'p:w' }],
  ])('%s', (url, want) => expect(brokerEndpoint(url)).toEqual(want));

  it('refuses other transports', () => {
    expect(() => brokerEndpoint('ws://h:80')).toThrow(/unsupported broker protocol ws/);
  });
});
