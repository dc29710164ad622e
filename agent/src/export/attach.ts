// The hook the agent core calls (CliContext.makeSink in agent/src/cli/commands.ts): builds the pipeline,
// serves GET /metrics on the agent's loopback health server, starts remote-write, and returns the sink.
// Typed structurally so export/ does not import io/.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AgentConfig } from '../../../contracts/agent-config';
import { Logger } from '../log/logger';
import type { AgentCounters } from '../observe/agent-counters';
import type { ObservationSink } from '../observe/observer';
import { ObservationPipeline } from './pipeline';
import { metricsContentType } from './prometheus-text';

export interface MetricsHost {
  readonly counters: AgentCounters;
  readonly health: { route(path: string, handler: (req: IncomingMessage, res: ServerResponse) => void): void };
}

let current: ObservationPipeline | null = null;

/** makeSink for the agent: `runCli(argv, { version, makeSink: createObservationSink })`. */
export function createObservationSink(config: AgentConfig, host: MetricsHost, log: Logger = new Logger(config.log.level)): ObservationSink {
  const pipeline = new ObservationPipeline(config, host.counters, { log: log.child({ component: 'metrics' }) });
  host.health.route('/metrics', (_req, res) => {
    res.writeHead(200, { 'Content-Type': metricsContentType });
    res.end(pipeline.renderMetrics());
  });
  pipeline.start().catch((e: Error) => log.error('remote-write could not start; /metrics still works', { error: e.message, stateDir: config.stateDir }));
  current = pipeline;
  return pipeline.sink;
}

/** Writes a last snapshot to the spool and tries one send; call on drain. Safe to call when none exists. */
export async function stopObservation(): Promise<void> {
  const p = current;
  current = null;
  await p?.stop();
}
