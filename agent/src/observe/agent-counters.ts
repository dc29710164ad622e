// The agent's own counters, shared by the proxy (which increments them), the health endpoint and the exporter.

export const agentCounterNames = [
  'connections_accepted',
  'connections_intercepted',
  'connections_refused_limit',
  'forge_cache_hits',
  'forge_cache_misses',
  'passthrough_static',
  'passthrough_learned',
  'passthrough_not_tls',
  'passthrough_learned_added',
  'upstream_verify_failed',
  'upstream_connect_failed',
  'loop_refused',
  'loop_relayed',
  'client_hello_invalid',
  'client_handshake_failed',
  'handshake_timeout',
  'idle_timeout',
  'original_destination_failed',
  'observe_parse_errors',
  'client_closed_early',
  'forge_failed',
  'connections_incoming',
  'passthrough_old_tls',
  'upstream_tls_failed',
] as const;

export type AgentCounterName = (typeof agentCounterNames)[number];

export class AgentCounters {
  private readonly values = new Map<AgentCounterName, number>(agentCounterNames.map((n) => [n, 0]));
  activeConnections = 0;
  /** Unexpired learned-passthrough entries right now; the agent installs the reader (gauge, not a counter). */
  learnedPassthroughEntries: () => number = () => 0;

  inc(name: AgentCounterName, by = 1): void {
    this.values.set(name, (this.values.get(name) ?? 0) + by);
  }

  get(name: AgentCounterName): number {
    return this.values.get(name) ?? 0;
  }

  snapshot(): Record<AgentCounterName, number> {
    return Object.fromEntries(this.values) as Record<AgentCounterName, number>;
  }
}
