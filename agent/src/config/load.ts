// Reads and validates the config file; JSON syntax errors carry line:column.
import { readFileSync } from 'node:fs';
import type { AgentConfig } from '../../../contracts/agent-config';
import { ConfigError, validateConfig } from './schema';

export function parseConfigText(text: string, source: string): AgentConfig {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (e) {
    const msg = (e as Error).message;
    const pos = Number(/position (\d+)/.exec(msg)?.[1]);
    const where = Number.isFinite(pos) ? `:${text.slice(0, pos).split('\n').length}:${pos - text.lastIndexOf('\n', pos - 1)}` : '';
    throw new ConfigError(`${source}${where}`, [`not valid JSON: ${msg}`]);
  }
  return validateConfig(data, source);
}

export function loadConfigFile(path: string): AgentConfig {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new ConfigError(path, [`cannot read: ${(e as Error).message}`]);
  }
  return parseConfigText(text, path);
}

/** `[ADDR:]PORT` or `[v6addr]:PORT` for the command-line flags. */
export function parseListenFlag(text: string, defaultHost: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]:|([^:[\]]+):)?(\d+)$/.exec(text);
  const port = Number(m?.[3]);
  if (!m || !Number.isInteger(port) || port < 1 || port > 65535) {
    throw new Error(`expected [ADDR:]PORT (e.g. 8443, 127.0.0.1:8443, [::1]:8443), got ${JSON.stringify(text)}`);
  }
  return { host: m[1] ?? m[2] ?? defaultHost, port };
}
