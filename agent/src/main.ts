// epoch-agent entry point. The bundle (dist/agent/epoch-agent.cjs) runs this on Node 18.19+.
// The observation sink and metrics routes hook in through CliContext.makeSink (agent.setSink / agent.health.route).
import { runCli } from './cli/commands';

const version = process.env.EPOCH_AGENT_VERSION ?? 'dev';

runCli(process.argv.slice(2), { version }).then(
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
