// The one `odopulse` command line. Each subcommand validates its settings and hands over to its part.
import { Command, Option } from 'commander';
import { PACKAGE_VERSION } from './proto/paths.js';

// The ingest settings (and zod with them) are loaded only for the commands that take them as flags
// (`ingest`, `demo`): the agent runs on the car, where every module is memory (agent/README.md#resource-use).
const ingestConfig = ['ingest', 'demo'].includes(process.argv[2]) ? await import('./ingest/config.js') : undefined;

const program = new Command('odopulse').version(PACKAGE_VERSION).description('odopulse connected-car telematics');

function addIngestOptions(cmd: Command): Command {
  if (!ingestConfig) return cmd;
  const { flagName } = ingestConfig;
  for (const [name, [, def, help]] of Object.entries(ingestConfig.INGEST_SETTINGS)) {
    cmd.addOption(
      new Option(`${flagName(name)} <value>`, `${help} [env ${name}${def === undefined ? '' : `, default ${JSON.stringify(def)}`}]`),
    );
  }
  return cmd;
}

function fail(err: unknown): never {
  process.stderr.write(`odopulse: ${err instanceof Error ? err.message : String(err)}\n`);
  // ConfigError (ingest/config.ts) by name: that module is loaded only for the commands using it
  process.exit(err instanceof Error && err.name === 'ConfigError' ? 2 : 1);
}

function onSignals(stop: () => Promise<unknown>) {
  let stopping = false;
  const handler = () => {
    if (stopping) process.exit(130);
    stopping = true;
    stop().then(
      () => process.exit(0),
      (e) => fail(e),
    );
  };
  process.on('SIGINT', handler);
  process.on('SIGTERM', handler);
}

addIngestOptions(
  program.command('ingest').description('run the ingest service: broker, pipeline, rules, prompts, HTTP API and console'),
).action(async (opts) => {
  try {
    const { loadIngestConfig, flagsToSettings } = ingestConfig ?? (await import('./ingest/config.js'));
    const cfg = loadIngestConfig(process.env, flagsToSettings(opts));
    const { startIngest } = await import('./ingest/main.js');
    const h = await startIngest(cfg);
    onSignals(() => h.stop());
  } catch (err) {
    fail(err);
  }
});

program
  .command('agent')
  .description('run the in-vehicle agent (replay file, simulated vehicle or Kuksa databroker)')
  .requiredOption('--vin <vin>', 'vehicle identification number')
  .option('--broker <url>', 'MQTT broker URL', 'mqtt://127.0.0.1:1883')
  .option('--replay <file>', 'replay JSONL file (docs/contract.md#replay-source)')
  .option('--simulate', 'use a simulated vehicle as the signal source')
  .option('--kuksa <address>', 'Kuksa databroker gRPC address (host:port)')
  .option('--kuksa-ca <file>', 'CA certificate (PEM) for TLS to the Kuksa databroker')
  .option('--kuksa-token-file <file>', 'file holding the Kuksa access token (JWT)')
  .option('--seed <n>', 'simulated vehicle: random seed')
  .option('--powertrain <p>', 'simulated vehicle: BEV | PHEV | ICE')
  .option('--speed <n>', 'replay speed factor; 0 = as fast as possible', '1')
  .option('--spool <dir>', 'spool directory (default $ODOPULSE_DATA_DIR/agent/<VIN>)')
  .option('--username <name>', 'MQTT username (default: the VIN)')
  .option('--password-file <file>', 'file holding the MQTT password or token')
  .option('--ca <file>', 'CA certificate (PEM) for TLS')
  .option('--cert <file>', 'client certificate (PEM) for mutual TLS')
  .option('--key <file>', 'client key (PEM) for mutual TLS')
  .option('--prefix <prefix>', 'topic prefix', 'v1')
  .option('--batch-max-samples <n>', 'samples per batch at most')
  .option('--batch-max-delay <ms>', 'longest a sample waits for its batch')
  .option('--flush-rate <n>', 'spool flush rate limit after a reconnect (batches/s)')
  .action(async (opts) => {
    try {
      const { runAgentCli } = await import('./agent/cli.js');
      const ac = new AbortController();
      onSignals(async () => ac.abort());
      process.exitCode = await runAgentCli(opts, ac.signal);
    } catch (err) {
      fail(err);
    }
  });

program
  .command('simulate')
  .description('drive a seeded, time-accelerated fleet against a broker (and register it through the API)')
  .option('--vehicles <n>', 'number of vehicles', '50')
  .option('--speedup <x>', 'simulated seconds per wall second', '3600')
  .option('--seed <s>', 'random seed', '1')
  .option('--duration <d>', 'wall duration, e.g. 90s, 10m, 1h', '10m')
  .option('--broker <url>', 'MQTT broker URL', 'mqtt://127.0.0.1:1883')
  .option('--api <url>', 'ingest HTTP API base URL (profiles, service records)', 'http://127.0.0.1:8080')
  .option('--api-key <key>', 'operator API key for --api [env ODOPULSE_API_KEY]')
  .option('--connections <mode>', 'per-vehicle | multiplex', 'per-vehicle')
  .option('--sample-every <ms>', 'simulated sampling interval (ms)')
  .option('--replay-dir <dir>', "also write each vehicle's readings as replay JSONL files here")
  .option('--hmi', 'a head unit per vehicle (VIN:hmi) that confirms prompts and answers campaign messages by persona')
  .option('--no-progress', 'no progress display')
  .action(async (opts) => {
    try {
      const { runSimulateCli } = await import('./simulator/cli.js');
      const ac = new AbortController();
      onSignals(async () => ac.abort());
      process.exitCode = await runSimulateCli(opts, ac.signal);
    } catch (err) {
      fail(err);
    }
  });

program
  .command('bench')
  .description('run a benchmark and print one JSON result (all | rules | agent | e2e | cluster)')
  .argument('[which]', 'benchmark', 'all')
  .option('--quick', 'short smoke-test run (figures not meaningful)')
  .option('--soak <seconds>', 'e2e: length of the memory soak at half load (default 120; 600 for the 10-minute soak)')
  .option('--out <dir>', 'e2e: folder for the result and the CPU profiles (default bench-results/<timestamp>)')
  .option('--no-profile', 'e2e: skip the profiled run (CPU profiles of the ingest threads)')
  .action(async (which: string, opts) => {
    try {
      const { runBenchCli } = await import('./bench/cli.js');
      process.exitCode = await runBenchCli(which, opts);
    } catch (err) {
      fail(err);
    }
  });

addIngestOptions(
  program
    .command('backtest')
    .description(
      'replay stored history from InfluxDB through a rule configuration and compare with the one in force; or, with --audience, count when a campaign audience would have reached each vehicle',
    )
    .option('--config <file>', 'rule configuration to try')
    .option('--audience <file>', 'a campaign audience (or a whole campaign body) as JSON: first reaches per day instead')
    .requiredOption('--from <iso>', 'start of the history window')
    .requiredOption('--to <iso>', 'end of the history window')
    .option('--vin <vin>', 'only this vehicle'),
).action(async (opts) => {
  try {
    const { loadIngestConfig, flagsToSettings } = ingestConfig ?? (await import('./ingest/config.js'));
    const cfg = loadIngestConfig(process.env, flagsToSettings(opts));
    if (opts.audience) {
      const { runAudienceBacktestCli } = await import('./tools/backtest-audience.js');
      process.exitCode = await runAudienceBacktestCli(cfg, { ...opts, audience: opts.audience as string });
    } else {
      if (!opts.config) throw new Error('backtest needs --config FILE (a rule configuration) or --audience FILE (a campaign audience)');
      const { runBacktestCli } = await import('./tools/backtest.js');
      process.exitCode = await runBacktestCli(cfg, { ...opts, config: opts.config as string });
    }
  } catch (err) {
    fail(err);
  }
});

const keys = program.command('keys').description('API keys for the HTTP API and console, stored hashed in the data dir');
const dataDirOption = () =>
  new Option('--data-dir <dir>', 'ingest data dir [env ODOPULSE_DATA_DIR]').env('ODOPULSE_DATA_DIR').default('./data');
const databaseOption = () =>
  new Option('--database-url <url>', "the cluster's PostgreSQL instead of the data dir [env ODOPULSE_DATABASE_URL]").env(
    'ODOPULSE_DATABASE_URL',
  );
type KeysPlace = { dataDir: string; databaseUrl?: string };
const place = (o: KeysPlace) => ({ dataDir: o.dataDir, databaseUrl: o.databaseUrl || undefined });
const collect = (v: string, prev: string[] = []) => [...prev, v];
const runKeys = async (fn: (m: typeof import('./tools/keys.js')) => Promise<string[]>) => {
  try {
    const m = await import('./tools/keys.js');
    for (const line of await fn(m)) process.stdout.write(`${line}\n`);
  } catch (err) {
    process.stderr.write(`odopulse: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(2);
  }
};
keys
  .command('create')
  .description('create a key; it is printed once, as the last line')
  .requiredOption('--role <role>', 'advisor | dealer_admin | operator | lifecycle | metrics')
  .option('--dealer <id>', 'a dealer the key is scoped to (advisor, dealer_admin; repeat for several)', collect)
  .option('--name <name>', 'who or what the key is for')
  .option('--expires <iso>', 'expiry (ISO 8601); default never')
  .option('--permission <p>', 'an extra permission: location:read (repeatable)', collect)
  .addOption(dataDirOption())
  .addOption(databaseOption())
  .action((o: { role: string; dealer?: string[]; name?: string; expires?: string; permission?: string[] } & KeysPlace) =>
    runKeys((m) => m.keysCreate(place(o), o)),
  );
keys
  .command('list')
  .description('id, role, dealers, permissions, state and name of every key (never the secrets)')
  .addOption(dataDirOption())
  .addOption(databaseOption())
  .action((o: KeysPlace) => runKeys((m) => m.keysList(place(o))));
keys
  .command('revoke <id>')
  .description('revoke a key at once (its console sessions end with it)')
  .addOption(dataDirOption())
  .addOption(databaseOption())
  .action((id: string, o: KeysPlace) => runKeys((m) => m.keysRevoke(place(o), id)));

addIngestOptions(
  program
    .command('demo')
    .description(
      'the whole stack on one machine: InfluxDB (started if needed), embedded broker, ingest, rules, a simulated fleet, the console',
    )
    .option('--vehicles <n>', 'simulated vehicles', '200')
    .option('--speedup <x>', 'simulated seconds per wall second', '20000')
    .option('--seed <s>', 'random seed', '7'),
).action(async (opts) => {
  try {
    const { runDemo } = await import('./demo.js');
    const { flagsToSettings } = ingestConfig ?? (await import('./ingest/config.js'));
    await runDemo(opts, flagsToSettings(opts), onSignals);
  } catch (err) {
    fail(err);
  }
});

program.parseAsync(process.argv).catch(fail);
