import { describe, expect, it } from 'vitest';
import { ConfigError, flagName, flagsToSettings, INGEST_SETTINGS, loadIngestConfig, webhookUrls } from '../../ingest/config.js';

describe('ingest configuration', () => {
  it('defaults serve the one-machine demo (docs/contract.md#settings)', () => {
    const c = loadIngestConfig({});
    expect(c.ODOPULSE_MQTT_URL).toBeUndefined();
    expect(c.ODOPULSE_MQTT_PORT).toBe(1883);
    expect(c.ODOPULSE_HTTP_PORT).toBe(8080);
    expect(c.ODOPULSE_DATA_DIR).toBe('./data');
    expect(c.INFLUX_URL).toBe('http://127.0.0.1:8086');
    expect(c.INFLUX_ORG).toBe('odopulse');
    expect(c.INFLUX_BUCKET).toBe('telemetry');
    expect(c.ODOPULSE_WORKERS).toBeGreaterThanOrEqual(1);
  });

  it('flags override the environment', () => {
    const c = loadIngestConfig({ ODOPULSE_HTTP_PORT: '9000' }, { ODOPULSE_HTTP_PORT: '9100' });
    expect(c.ODOPULSE_HTTP_PORT).toBe(9100);
  });

  it('a bad value names the setting, its variable and its flag', () => {
    expect(() => loadIngestConfig({ ODOPULSE_HTTP_PORT: 'eighty' })).toThrow(ConfigError);
    expect(() => loadIngestConfig({ ODOPULSE_HTTP_PORT: 'eighty' })).toThrow(/ODOPULSE_HTTP_PORT \(--http-port\)/);
    expect(() => loadIngestConfig({ ODOPULSE_MQTT_URL: 'http://broker' })).toThrow(/ODOPULSE_MQTT_URL/);
    expect(() => loadIngestConfig({ INFLUX_URL: 'not a url' })).toThrow(/INFLUX_URL \(--influx-url\)/);
    expect(() => loadIngestConfig({ ODOPULSE_WORKERS: '0' })).toThrow(/ODOPULSE_WORKERS/);
  });

  it('a webhook URL needs a secret, and URLs are comma-separated', () => {
    expect(() => loadIngestConfig({ ODOPULSE_WEBHOOK_URL: 'http://a' })).toThrow(/ODOPULSE_WEBHOOK_SECRET/);
    const c = loadIngestConfig({ ODOPULSE_WEBHOOK_URL: 'http://a/x, http://b/y', ODOPULSE_WEBHOOK_SECRET: 's' });
    expect(webhookUrls(c)).toEqual(['http://a/x', 'http://b/y']);
  });

  it('webhook events are given up after ODOPULSE_WEBHOOK_GIVE_UP_HOURS (72), fractions allowed, 0 = never', () => {
    expect(loadIngestConfig({}).ODOPULSE_WEBHOOK_GIVE_UP_HOURS).toBe(72);
    expect(loadIngestConfig({ ODOPULSE_WEBHOOK_GIVE_UP_HOURS: '0.5' }).ODOPULSE_WEBHOOK_GIVE_UP_HOURS).toBe(0.5);
    expect(loadIngestConfig({}, { ODOPULSE_WEBHOOK_GIVE_UP_HOURS: '0' }).ODOPULSE_WEBHOOK_GIVE_UP_HOURS).toBe(0);
    expect(() => loadIngestConfig({ ODOPULSE_WEBHOOK_GIVE_UP_HOURS: '-1' })).toThrow(
      /ODOPULSE_WEBHOOK_GIVE_UP_HOURS \(--webhook-give-up-hours\)/,
    );
  });

  it('every setting has a flag the CLI maps back to it', () => {
    for (const name of Object.keys(INGEST_SETTINGS)) {
      const camel = flagName(name)
        .slice(2)
        .replace(/-([a-z0-9])/g, (_, ch: string) => ch.toUpperCase());
      expect(flagsToSettings({ [camel]: 'x' })).toEqual({ [name]: 'x' });
    }
    expect(flagName('INFLUX_URL')).toBe('--influx-url');
  });
});
