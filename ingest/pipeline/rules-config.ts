// Loads the rule configuration file and reloads it on change without a restart. An invalid file is
// rejected with a message naming the field, and the configuration in force stays.
import { readFileSync } from 'node:fs';
import { DEFAULT_RULES_CONFIG, parseRulesConfig, type RulesConfig } from '../../rules/config.js';

export function loadRulesConfigFile(file: string | undefined): RulesConfig {
  if (!file) return DEFAULT_RULES_CONFIG;
  const r = parseRulesConfig(readFileSync(file, 'utf8'));
  if (!r.ok) throw new Error(`rule configuration ${file}: ${r.error}`);
  return r.config;
}

export function watchRulesConfig(
  file: string,
  onChange: (c: RulesConfig) => void,
  onError: (msg: string) => void,
  intervalMs = 1000,
): () => void {
  // Poll the content (a small file): unlike stat-based watching, no change can slip in between
  // reading the file at start-up and taking the first baseline.
  let last = safeRead(file);
  const timer = setInterval(() => {
    const text = safeRead(file);
    if (text === undefined || text === last) return;
    last = text;
    const r = parseRulesConfig(text);
    if (r.ok) onChange(r.config);
    else onError(`rule configuration ${file} rejected, previous configuration stays in force: ${r.error}`);
  }, intervalMs);
  timer.unref();
  return () => clearInterval(timer);
}

function safeRead(file: string): string | undefined {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
}
