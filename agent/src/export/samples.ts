// Flattens the aggregator's families and the agent's own counters into samples (name, labels, value), the
// common input of the text endpoint and remote-write. Histograms expand to _bucket{le}, _sum and _count.
import { type AgentCounters, agentCounterNames } from '../observe/agent-counters';
import type { Aggregator, MetricFamily } from '../observe/aggregator';

export interface Sample {
  name: string;
  labels: readonly (readonly [string, string])[];
  value: number;
}

export interface SampleFamily {
  name: string;
  help: string;
  type: 'counter' | 'gauge' | 'histogram';
  samples: Sample[];
}

/** Formats a bucket bound the way Prometheus clients do (`0.005`, `1e+06`, `+Inf`). */
export function formatNumber(v: number): string {
  if (v === Number.POSITIVE_INFINITY) return '+Inf';
  if (v === Number.NEGATIVE_INFINITY) return '-Inf';
  if (Number.isNaN(v)) return 'NaN';
  return String(v);
}

function fromFamily(f: MetricFamily): SampleFamily {
  const out: SampleFamily = { name: f.name, help: f.help, type: f.type, samples: [] };
  for (const s of f.series.values()) {
    const labels = f.labelNames.map((n, i) => [n, s.labels[i]!] as const);
    if (f.type === 'counter') {
      out.samples.push({ name: f.name, labels, value: s.value as number });
      continue;
    }
    const h = f.type === 'histogram' ? (s.value as import('../observe/aggregator').Histogram) : null;
    if (!h) continue;
    let cumulative = 0;
    for (let k = 0; k < f.bounds.length; k++) {
      cumulative += h.counts[k]!;
      out.samples.push({ name: `${f.name}_bucket`, labels: [...labels, ['le', formatNumber(f.bounds[k]!)]], value: cumulative });
    }
    out.samples.push({ name: `${f.name}_bucket`, labels: [...labels, ['le', '+Inf']], value: h.count });
    out.samples.push({ name: `${f.name}_sum`, labels, value: h.sum });
    out.samples.push({ name: `${f.name}_count`, labels, value: h.count });
  }
  return out;
}

const counterHelp: Partial<Record<(typeof agentCounterNames)[number], string>> = {
  connections_accepted: 'Connections accepted on the redirect listeners.',
  connections_intercepted: 'Connections intercepted (TLS terminated and observed).',
  forge_cache_hits: 'Forged certificate contexts served from the cache.',
  forge_cache_misses: 'Forged certificate contexts built.',
  passthrough_static: 'Connections passed through by the static passthrough list.',
  passthrough_learned: 'Connections passed through because the destination was learned.',
  upstream_verify_failed: 'Upstream certificates that failed verification.',
  loop_refused: 'Connections refused by the loop guard (destination was the agent itself).',
  loop_relayed: 'Our own upstream connections that came back to the agent (a stale conntrack NAT entry) and were relayed to their destination.',
  observe_parse_errors: 'Connections whose HTTP could not be parsed; they are relayed but no longer observed.',
};

/** The agent's own counters, as `epoch_agent_<name>_total`, plus the active-connections gauge. */
export function agentFamilies(counters: AgentCounters): SampleFamily[] {
  const out: SampleFamily[] = agentCounterNames.map((n) => ({
    name: `epoch_agent_${n}_total`,
    help: counterHelp[n] ?? `Agent counter ${n.replace(/_/g, ' ')}.`,
    type: 'counter' as const,
    samples: [{ name: `epoch_agent_${n}_total`, labels: [], value: counters.get(n) }],
  }));
  out.push({
    name: 'epoch_agent_connections_active',
    help: 'Connections currently open through the agent.',
    type: 'gauge',
    samples: [{ name: 'epoch_agent_connections_active', labels: [], value: counters.activeConnections }],
  });
  out.push({
    name: 'epoch_agent_passthrough_learned_entries',
    help: 'Destinations currently on the learned passthrough list (unexpired).',
    type: 'gauge',
    samples: [{ name: 'epoch_agent_passthrough_learned_entries', labels: [], value: counters.learnedPassthroughEntries() }],
  });
  return out;
}

export function collectFamilies(aggregator: Aggregator, counters: AgentCounters, extra: readonly SampleFamily[] = []): SampleFamily[] {
  return [...aggregator.families().map(fromFamily), ...agentFamilies(counters), ...extra];
}
