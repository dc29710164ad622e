// Child of bench/runner-noop.ts: runs the CLI's default command in-process and reports its own wall time and peak
// RSS on stderr as one JSON line (the parent keeps stdout for the run's JSON events).
import { runCommand } from '../provisioner/src/cli/commands/run';

const started = performance.now();
const code = await runCommand(process.argv.slice(2));
const wallMs = Math.round(performance.now() - started);
process.stderr.write(`${JSON.stringify({ bench: 'runner-noop', exitCode: code, wallMs, maxRssMb: Math.round(process.resourceUsage().maxRSS / 1024) })}\n`);
process.exit(code);
