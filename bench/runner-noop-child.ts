// Child of bench/runner-noop.ts: runs the CLI's default command in-process and reports, on stderr as one JSON line,
// its wall time, peak RSS and phase marks taken from the JSON events it prints (the parent keeps stdout for them).
import { runCommand } from '../provisioner/src/cli/commands/run';

const started = performance.now();
const marks: Record<string, number> = {};
const write = process.stdout.write.bind(process.stdout);
process.stdout.write = ((chunk: string | Uint8Array, ...rest: never[]) => {
  const text = typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString();
  const at = Math.round(performance.now() - started);
  for (const type of ['run-start', 'host-start', 'task-start', 'host-done', 'recap']) {
    if (text.includes(`"type":"${type}"`)) {
      marks[`first ${type}`] ??= at;
      marks[`last ${type}`] = at;
    }
  }
  return write(chunk, ...rest);
}) as typeof process.stdout.write;

const code = await runCommand(process.argv.slice(2));
const wallMs = Math.round(performance.now() - started);
process.stderr.write(`${JSON.stringify({ bench: 'runner-noop', exitCode: code, wallMs, maxRssMb: Math.round(process.resourceUsage().maxRSS / 1024), marks })}\n`);
process.exit(code);
