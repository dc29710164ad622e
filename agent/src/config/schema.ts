// Validation for contracts/agent-config.ts. Every section has defaults except the CA files, so a short file works;
// unknown keys are errors (a typo must not silently become a default).
import { isIP } from 'node:net';
import type { AgentConfig } from '../../../contracts/agent-config';
import { array, boolean, integer, object, oneOf, optional, record, refine, section, string, validate, withDefault } from './validate';

const port = integer(1, 65535);
const ipLiteral = refine(string(), (s) => (isIP(s) !== 0 ? null : 'expected an IPv4 or IPv6 literal'));
const listenAddress = object({ host: ipLiteral, port });
const loopback = (s: string) => s === '::1' || s === 'localhost' || /^127\.\d+\.\d+\.\d+$/.test(s);
const file = string({ minLength: 1, message: 'expected a file path' });

export function passthroughRuleProblem(rule: string): string | null {
  const slash = rule.indexOf('/');
  if (slash >= 0) {
    const v = isIP(rule.slice(0, slash));
    const bitsText = rule.slice(slash + 1);
    const bits = Number(bitsText);
    if (v === 0 || bitsText === '' || !Number.isInteger(bits) || bits < 0 || bits > (v === 4 ? 32 : 128)) {
      return 'expected a CIDR like 198.18.0.0/15 or fd00::/8';
    }
    return null;
  }
  if (isIP(rule)) return null;
  return /^[a-z0-9*_.-]+$/i.test(rule) && rule.length <= 253 ? null : 'expected an SNI glob (*.example.com), an IP or a CIDR';
}

const passthroughRule = refine(string(), passthroughRuleProblem);
const httpUrl = refine(string(), (s) => {
  try {
    return ['http:', 'https:'].includes(new URL(s).protocol) ? null : 'Invalid URL: expected http:// or https://';
  } catch {
    return 'Invalid URL';
  }
});

export const agentConfigSchema = object({
  listen: withDefault(array(listenAddress, { minItems: 1 }), [
    { host: '127.0.0.1', port: 8443 },
    { host: '::1', port: 8443 },
  ]),
  health: withDefault(
    refine(listenAddress, (a) => (loopback(a.host) ? null : 'the health endpoint must listen on loopback (127.0.0.1 or ::1)')),
    { host: '127.0.0.1', port: 9443 },
  ),
  ca: object({ certFile: file, keyFile: file }),
  upstream: section(
    object({
      verify: withDefault(boolean(), true),
      caBundleFile: optional(file),
      onVerifyFailure: withDefault(oneOf(['refuse', 'forge-untrusted']), 'refuse'),
      connectTimeoutMs: withDefault(integer(100, 120_000), 5000),
    }),
  ),
  limits: section(
    object({
      maxConnections: withDefault(integer(1, 1_000_000), 4096),
      handshakeTimeoutMs: withDefault(integer(100, 120_000), 10_000),
      idleTimeoutMs: withDefault(integer(1000, 86_400_000), 300_000),
    }),
  ),
  passthrough: section(
    object({
      static: withDefault(array(passthroughRule), []),
      learned: section(
        object({
          enabled: withDefault(boolean(), true),
          maxEntries: withDefault(integer(1, 1_000_000), 1000),
          ttlSeconds: withDefault(integer(1), 7 * 86400),
        }),
      ),
    }),
  ),
  incoming: optional(
    object({
      listen: array(listenAddress, { minItems: 1 }),
      certificates: array(object({ serverNames: array(string({ minLength: 1 }), { minItems: 1 }), certFile: file, keyFile: file }), { minItems: 1 }),
    }),
  ),
  observe: section(
    object({
      enabled: withDefault(boolean(), true),
      routeRules: withDefault(array(object({ match: string({ minLength: 1 }), replace: string() })), []),
      maxRoutesPerServer: withDefault(integer(1), 200),
    }),
  ),
  metrics: section(
    object({
      remoteWrite: optional(
        object({
          url: httpUrl,
          intervalSeconds: withDefault(integer(1), 30),
          maxSpoolBytes: withDefault(integer(0), 16 * 1024 * 1024),
          headers: optional(record(string())),
        }),
      ),
    }),
  ),
  log: section(
    object({
      level: withDefault(oneOf(['debug', 'info', 'warn', 'error']), 'info'),
      connectLog: withDefault(boolean(), true),
    }),
  ),
  stateDir: withDefault(string({ minLength: 1 }), '/var/lib/epoch-agent'),
});

// Compile-time check that the validated shape is the shared contract.
type Validated = typeof agentConfigSchema extends (...args: never[]) => infer R ? Exclude<R, symbol> : never;
export const validatedIsContract = (v: Validated): AgentConfig => v;

export class ConfigError extends Error {
  constructor(
    readonly source: string,
    readonly problems: string[],
  ) {
    super(`${source}: invalid configuration:\n  ${problems.join('\n  ')}`);
  }
}

function describe(value: unknown): string {
  const s = JSON.stringify(value);
  return s === undefined ? 'nothing' : s.length > 60 ? `${s.slice(0, 57)}...` : s;
}

function valueAt(input: unknown, path: readonly PropertyKey[]): unknown {
  let v = input;
  for (const k of path) v = v && typeof v === 'object' ? (v as Record<PropertyKey, unknown>)[k] : undefined;
  return v;
}

/** Validates parsed JSON; problems are `path.to.field: what was expected (got actual)`. */
export function validateConfig(input: unknown, source = 'config'): AgentConfig {
  const r = validate(agentConfigSchema, input);
  if (r.ok) return r.value;
  const problems = r.issues.map((i) => {
    const path = i.path.map((p) => (typeof p === 'number' ? `[${p}]` : `.${String(p)}`)).join('').replace(/^\./, '') || '(top level)';
    const got = i.showValue ? ` (got ${describe(valueAt(input, i.path))})` : '';
    return `${path}: ${i.message}${got}`;
  });
  throw new ConfigError(source, problems);
}
