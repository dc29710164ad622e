// Renders /etc/epoch-agent/agent.json (contracts/agent-config.ts) from the agent_service parameters.
// The agent itself validates the result on the host (`epoch-agent check-config`) before it replaces the live file.
import { z } from 'zod';
import type { AgentConfig } from '../../../../contracts/agent-config';
import { caDir, stateDir } from './layout';

const port = z.number().int().min(1).max(65535);
const address = z.object({ host: z.string().min(1), port }).strict();

export const agentConfigParams = z
  .object({
    // Same defaults as the agent (agent/src/config/schema.ts) and the firewall module's agentPort: REDIRECT in nat
    // OUTPUT delivers to loopback, so the proxy needs no wider listener.
    listen: z.array(address).min(1).default([
      { host: '127.0.0.1', port: 8443 },
      { host: '::1', port: 8443 },
    ]),
    health: address.default({ host: '127.0.0.1', port: 9443 }),
    ca_cert: z.string().startsWith('/').default(`${caDir}/ca.crt`),
    ca_key: z.string().startsWith('/').default(`${caDir}/ca.key`),
    upstream_verify: z.boolean().default(true),
    upstream_ca_bundle: z.string().startsWith('/').optional(),
    on_verify_failure: z.enum(['refuse', 'forge-untrusted']).default('refuse'),
    connect_timeout_ms: z.number().int().positive().default(5000),
    max_connections: z.number().int().positive().default(4096),
    handshake_timeout_ms: z.number().int().positive().default(10_000),
    idle_timeout_ms: z.number().int().positive().default(300_000),
    passthrough: z.array(z.string().min(1)).default([]),
    learned_passthrough: z
      .object({ enabled: z.boolean().default(true), max_entries: z.number().int().positive().default(1000), ttl_seconds: z.number().int().positive().default(7 * 86400) })
      .strict()
      .default({ enabled: true, max_entries: 1000, ttl_seconds: 7 * 86400 }),
    incoming: z
      .object({
        listen: z.array(address).min(1),
        certificates: z.array(z.object({ server_names: z.array(z.string().min(1)).min(1), cert_file: z.string().startsWith('/'), key_file: z.string().startsWith('/') }).strict()).min(1),
      })
      .strict()
      .optional(),
    observe: z.boolean().default(true),
    route_rules: z.array(z.object({ match: z.string(), replace: z.string() }).strict()).default([]),
    max_routes_per_server: z.number().int().positive().default(200),
    remote_write: z
      .object({
        url: z.string().url(),
        interval_seconds: z.number().int().positive().default(30),
        max_spool_bytes: z.number().int().min(0).default(16 * 1024 * 1024),
        headers: z.record(z.string(), z.string()).optional(),
      })
      .strict()
      .optional(),
    log_level: z.enum(['debug', 'info', 'warn', 'error']).default('info'),
    connect_log: z.boolean().default(true),
  })
  .strict();
export type AgentConfigParams = z.infer<typeof agentConfigParams>;

export function renderAgentConfig(p: AgentConfigParams): AgentConfig {
  return {
    listen: p.listen,
    health: p.health,
    ca: { certFile: p.ca_cert, keyFile: p.ca_key },
    upstream: {
      verify: p.upstream_verify,
      ...(p.upstream_ca_bundle && { caBundleFile: p.upstream_ca_bundle }),
      onVerifyFailure: p.on_verify_failure,
      connectTimeoutMs: p.connect_timeout_ms,
    },
    limits: { maxConnections: p.max_connections, handshakeTimeoutMs: p.handshake_timeout_ms, idleTimeoutMs: p.idle_timeout_ms },
    passthrough: {
      static: p.passthrough,
      learned: { enabled: p.learned_passthrough.enabled, maxEntries: p.learned_passthrough.max_entries, ttlSeconds: p.learned_passthrough.ttl_seconds },
    },
    ...(p.incoming && {
      incoming: {
        listen: p.incoming.listen,
        certificates: p.incoming.certificates.map((c) => ({ serverNames: c.server_names, certFile: c.cert_file, keyFile: c.key_file })),
      },
    }),
    observe: { enabled: p.observe, routeRules: p.route_rules, maxRoutesPerServer: p.max_routes_per_server },
    metrics: {
      ...(p.remote_write && {
        remoteWrite: {
          url: p.remote_write.url,
          intervalSeconds: p.remote_write.interval_seconds,
          maxSpoolBytes: p.remote_write.max_spool_bytes,
          ...(p.remote_write.headers && { headers: p.remote_write.headers }),
        },
      }),
    },
    log: { level: p.log_level, connectLog: p.connect_log },
    stateDir,
  };
}

/** Key files the agent reads: they must be 0600 and owned by the agent user. */
export function keyFilesOf(config: AgentConfig): string[] {
  return [config.ca.keyFile, ...(config.incoming?.certificates.map((c) => c.keyFile) ?? [])];
}

/** The config carries a secret when remote-write headers (tokens) are set: then it is never diffed in clear. */
export const configHasSecrets = (config: AgentConfig) => Object.keys(config.metrics.remoteWrite?.headers ?? {}).length > 0;
