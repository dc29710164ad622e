// epoch-agent entry point. The bundle (dist/agent/epoch-agent.cjs) runs this on Node 18.19+.
// Observation (agent/src/observe) and metrics (/metrics + remote-write, agent/src/export) attach through makeSink.
import { runCli } from './cli/commands';
import { createObservationSink, stopObservation } from './export/attach';

const version = process.env.EPOCH_AGENT_VERSION ?? 'dev';

runCli(process.argv.slice(2), {
  version,
  makeSink: (config, agent) => (config.observe.enabled ? createObservationSink(config, agent) : null),
  onStop: stopObservation,
}).then(
  (code) => {
    process.exitCode = code;
    // `run` resolves only after draining; handles left open (timers) must not keep the process alive.
    if (process.argv[2] === 'run') process.exit(code);
  },
  (e: Error) => {
    process.stderr.write(`epoch-agent: ${e.stack ?? e.message}\n`);
    process.exit(1);
  },
);
