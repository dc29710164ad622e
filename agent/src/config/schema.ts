// Validation for contracts/agent-config.ts. Every section has defaults except the CA files, so a short file works;
// unknown keys are errors (a typo must not silently become a default).
import { isIP } from 'node:net';
import { z } from 'zod';
import type { AgentConfig } from '../../../contracts/agent-config';

const port = z.number().int().min(1).max(65535);
const ipLiteral = z.string().refine((s) => isIP(s) !== 0, { message: 'expected an IPv4 or IPv6 literal' });
const listenAddress = z.strictObject({ host: ipLiteral, port });
const loopback = (s: string) => s === '::1' || s === 'localhost' || /^127\.\d+\.\d+\.\d+$/.test(s);
const file = z.string().min(1, 'expected a file path');

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

const passthroughRule = z.string().superRefine((s, ctx) => {
  const problem = passthroughRuleProblem(s);
  if (problem) ctx.addIssue({ code: 'custom', message: problem });
});

export const agentConfigSchema = z.strictObject({
  listen: z.array(listenAddress).min(1).default([
    { host: '127.0.0.1', port: 8443 },
    { host: '::1', port: 8443 },
  ]),
  health: listenAddress
    .refine((a) => loopback(a.host), { message: 'the health endpoint must listen on loopback (127.0.0.1 or ::1)' })
    .default({ host: '127.0.0.1', port: 9443 }),
  ca: z.strictObject({ certFile: file, keyFile: file }),
  upstream: z
    .strictObject({
      verify: z.boolean().default(true),
      caBundleFile: file.optional(),
      onVerifyFailure: z.enum(['refuse', 'forge-untrusted']).default('refuse'),
      connectTimeoutMs: z.number().int().min(100).max(120_000).default(5000),
    })
    .prefault({}),
  limits: z
    .strictObject({
      maxConnections: z.number().int().min(1).max(1_000_000).default(4096),
      handshakeTimeoutMs: z.number().int().min(100).max(120_000).default(10_000),
      idleTimeoutMs: z.number().int().min(1000).max(86_400_000).default(300_000),
    })
    .prefault({}),
  passthrough: z
    .strictObject({
      static: z.array(passthroughRule).default([]),
      learned: z
        .strictObject({
          enabled: z.boolean().default(true),
          maxEntries: z.number().int().min(1).max(1_000_000).default(1000),
          ttlSeconds: z.number().int().min(1).default(7 * 86400),
        })
        .prefault({}),
    })
    .prefault({}),
  incoming: z
    .strictObject({
      listen: z.array(listenAddress).min(1),
      certificates: z
        .array(z.strictObject({ serverNames: z.array(z.string().min(1)).min(1), certFile: file, keyFile: file }))
        .min(1),
    })
    .optional(),
  observe: z
    .strictObject({
      enabled: z.boolean().default(true),
      routeRules: z.array(z.strictObject({ match: z.string().min(1), replace: z.string() })).default([]),
      maxRoutesPerServer: z.number().int().min(1).default(200),
    })
    .prefault({}),
  metrics: z
    .strictObject({
      remoteWrite: z
        .strictObject({
          url: z.string().url(),
          intervalSeconds: z.number().int().min(1).default(30),
          maxSpoolBytes: z.number().int().min(0).default(16 * 1024 * 1024),
          headers: z.record(z.string(), z.string()).optional(),
        })
        .optional(),
    })
    .prefault({}),
  log: z
    .strictObject({
      level: z.enum(['debug', 'info', 'warn', 'error']).default('info'),
      connectLog: z.boolean().default(true),
    })
    .prefault({}),
  stateDir: z.string().min(1).default('/var/lib/epoch-agent'),
});

// Compile-time check that the validated shape is the shared contract.
type Validated = z.infer<typeof agentConfigSchema>;
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
  const r = agentConfigSchema.safeParse(input);
  if (r.success) return r.data;
  const problems = r.error.issues.map((i) => {
    const path = i.path.map((p) => (typeof p === 'number' ? `[${p}]` : `.${String(p)}`)).join('').replace(/^\./, '') || '(top level)';
    const got = i.code === 'unrecognized_keys' ? '' : ` (got ${describe(valueAt(input, i.path))})`;
    return `${path}: ${i.message}${got}`;
  });
  throw new ConfigError(source, problems);
}
