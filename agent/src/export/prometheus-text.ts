// The /metrics body: Prometheus text exposition format 0.0.4 (which OpenMetrics scrapers also accept).
import type { AgentCounters } from '../observe/agent-counters';
import type { Aggregator } from '../observe/aggregator';
import { type SampleFamily, collectFamilies, formatNumber } from './samples';

export const metricsContentType = 'text/plain; version=0.0.4; charset=utf-8';

function escapeLabel(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

function escapeHelp(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
}

export function renderFamilies(families: readonly SampleFamily[]): string {
  const lines: string[] = [];
  for (const f of families) {
    lines.push(`# HELP ${f.name} ${escapeHelp(f.help)}`, `# TYPE ${f.name} ${f.type}`);
    for (const s of f.samples) {
      const labels = s.labels.length === 0 ? '' : `{${s.labels.map(([k, v]) => `${k}="${escapeLabel(v)}"`).join(',')}}`;
      lines.push(`${s.name}${labels} ${formatNumber(s.value)}`);
    }
  }
  return `${lines.join('\n')}\n`;
}

/** The whole /metrics body: per-exchange HTTP metrics, then the agent's own counters, then `extra`. */
export function renderMetrics(aggregator: Aggregator, counters: AgentCounters, extra: readonly SampleFamily[] = []): string {
  return renderFamilies(collectFamilies(aggregator, counters, extra));
}
